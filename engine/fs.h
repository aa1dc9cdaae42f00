// rlft::fs — the few file operations a run needs, with errors that name the path and the
// system's reason ("cannot create directory 'runs/ppo' (at 'runs'): Permission denied").
//
// Nothing on disk is left half-written: checkpoints and config.json go through
// atomic_write_file (temporary file in the same directory, fsync, rename over the target,
// fsync the directory), so a crash leaves either the old file or the new one, never a mix.
// POSIX only.
#pragma once

#include <string>
#include <string_view>

namespace rlft::fs {

// Replaces `path` with `bytes` atomically. The temporary file ("<dir>/.<name>.tmp.<random>")
// is removed on any failure and the old file, if any, is left untouched. A new file gets the
// usual permissions (0666 minus the umask).
void atomic_write_file(const std::string& path, std::string_view bytes);

// The whole file as bytes.
std::string read_file(const std::string& path);

// Appends `line` and '\n' with one write() (for metrics.jsonl). `line` must not contain a
// newline. If the write fails part-way (disk full), the file is truncated back to its old
// length so no partial line stays behind. Not fsynced: a metrics line is not worth a disk flush.
void append_line(const std::string& path, std::string_view line);

// mkdir -p: creates `path` and any missing parents (mode 0777 minus the umask). An existing
// directory is fine; an existing non-directory is an error.
void make_dirs(const std::string& path);

// True when something exists at `path` (follows symlinks).
bool exists(const std::string& path);

}  // namespace rlft::fs
