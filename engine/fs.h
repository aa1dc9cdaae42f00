// rlft::fs — the few file operations a run needs, with errors that name the path and the
// system's reason ("cannot create directory 'runs/ppo' (at 'runs'): Permission denied").
//
// Nothing on disk is left half-written: checkpoints and config.json go through
// atomic_write_file (temporary file in the same directory, fsync, rename over the target,
// fsync the directory), so a crash leaves either the old file or the new one, never a mix.
// POSIX only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rlft::fs {

// Replaces `path` with `bytes` atomically. The temporary file ("<dir>/.<name>.tmp.<random>")
// is removed on any failure and the old file, if any, is left untouched. A new file gets the
// usual permissions (0666 minus the umask).
void atomic_write_file(const std::string& path, std::string_view bytes);

// Renames the file at `from` over `to` (replacing what is there) atomically, in one directory,
// and makes the rename durable. A missing `from` is an error naming both paths.
void rename_file(const std::string& from, const std::string& to);

// The whole file as bytes. A pipe or device is read up to kMaxStreamBytes (so /dev/zero is an
// error, not the end of memory); a regular file too large for memory is an error naming it.
inline constexpr size_t kMaxStreamBytes = size_t(1) << 30;
std::string read_file(const std::string& path);

// Appends `line` and '\n' with one write() (for metrics.jsonl). `line` must not contain a
// newline. If the write fails part-way (disk full), the file is truncated back to its old
// length so no partial line stays behind. Not fsynced: a metrics line is not worth a disk flush
// (sync_file makes the lines durable when it matters: before a checkpoint).
void append_line(const std::string& path, std::string_view line);

// Flushes the file at `path` to disk (fsync): what was written to it survives a crash of the
// machine. A missing or unreadable file, or a failed flush, is an error naming the path.
void sync_file(const std::string& path);
// What this process has made durable (sync_file, and atomic_write_file's file), for the tests of
// that ordering (a trainer's metrics.jsonl is on disk through step N before its checkpoint of
// step N): the size the file now at `path` had when this process last flushed it, or −1 (never,
// since the last forget_flushes, or no such file). Files are told apart by device and
// inode.
int64_t synced_size(const std::string& path);
// The order of that last flush among this process's flushes of files, sync_file's and
// atomic_write_file's (1, 2, …: a flush made later has a larger number), or −1 as above: the log
// flushed before the checkpoint was written has the smaller number.
int64_t flush_order(const std::string& path);
// Forgets every recorded flush (its size and its order), so a test starts from none.
void forget_flushes();

// mkdir -p: creates `path` and any missing parents (mode 0777 minus the umask). An existing
// directory is fine; an existing non-directory is an error.
void make_dirs(const std::string& path);

// True when something exists at `path` (follows symlinks).
bool exists(const std::string& path);
// True when `path` is a directory (follows symlinks).
bool is_dir(const std::string& path);

// Removes the file (or symlink) at `path`; nothing there is fine. A directory there, or a
// failure, is an error naming the path.
void remove_file(const std::string& path);

// `path` from the root: as it is when it starts with '/', else the working directory, '/', and
// `path` without its leading "./" (nothing else is rewritten: "a/../b" stays, as a symlinked
// "a" would make its lexical removal wrong). An empty path, or a working directory that cannot
// be read, is an error.
std::string absolute_path(const std::string& path);

}  // namespace rlft::fs
