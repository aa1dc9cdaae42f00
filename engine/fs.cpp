// rlft::fs — POSIX implementation. Every system call is checked; errors quote the path and
// strerror(errno).
#include "engine/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <utility>

#include "engine/error.h"

namespace rlft::fs {
namespace {

std::string reason(int err) { return std::strerror(err); }

// Closes a descriptor on scope exit unless released.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

// Writes all of `bytes`, retrying on EINTR and short writes. Returns 0 or an errno.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    bytes.remove_prefix(size_t(n));
  }
  return 0;
}

// "dir/name" → "dir"; "name" → "."; "/name" → "/".
std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A rename is durable only once the directory entry is on disk. Returns 0 or an errno
// (a filesystem that cannot fsync a directory counts as done).
int fsync_dir(const std::string& dir) {
  Fd d;
  d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.fd < 0) return errno;
  if (::fsync(d.fd) != 0 && errno != EINVAL && errno != ENOTSUP) return errno;
  return 0;
}

// What this process flushed (synced_size, flush_order), by device and inode.
struct Flush {
  int64_t size = -1;
  int64_t order = -1;
};
std::mutex g_flush_mutex;
std::map<std::pair<dev_t, ino_t>, Flush> g_flushes;
int64_t g_flush_count = 0;

// `replaced`: the file a rename took the place of, whose record goes with it (so a run that
// rewrites its checkpoints keeps one record per file, not one per write).
void record_flush(const struct stat& st, const struct stat* replaced = nullptr) {
  const std::lock_guard<std::mutex> lock(g_flush_mutex);
  if (replaced) g_flushes.erase({replaced->st_dev, replaced->st_ino});
  g_flushes[{st.st_dev, st.st_ino}] = {int64_t(st.st_size), ++g_flush_count};
}

Flush flush_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  const std::lock_guard<std::mutex> lock(g_flush_mutex);
  const auto it = g_flushes.find({st.st_dev, st.st_ino});
  return it == g_flushes.end() ? Flush{} : it->second;
}

}  // namespace

void atomic_write_file(const std::string& path, std::string_view bytes) {
  RLFT_CHECK(!path.empty() && path.back() != '/', "atomic_write_file: '", path,
             "' is not a file path");
  const std::string dir = parent_dir(path);

  // A fresh name per call: pid, a process-wide counter and the clock; O_EXCL makes a clash an
  // EEXIST, retried with the next name.
  static std::atomic<uint64_t> counter{0};
  std::string temp;
  Fd file;
  for (int attempt = 0; file.fd < 0; ++attempt) {
    const uint64_t salt = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    temp =
        str(dir, "/.", base_name(path), ".tmp.", ::getpid(), ".", counter++, ".", salt % 1000003);
    file.fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (file.fd < 0 && (errno != EEXIST || attempt > 100)) {
      throw Error(str("cannot write '", path, "': cannot create a temporary file in '", dir,
                      "': ", reason(errno)));
    }
  }
  const auto fail = [&](const char* step, int err) {
    if (file.fd >= 0) ::close(file.release());
    ::unlink(temp.c_str());
    throw Error(str("cannot write '", path, "': ", step, " '", temp, "': ", reason(err)));
  };
  // The file it replaces keeps its permissions (a config.json made private with chmod 600
  // stays private): the temporary file takes them before it is renamed over it.
  struct stat old;
  const bool replaces = ::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode);
  if (replaces && ::fchmod(file.fd, old.st_mode & 07777) != 0) fail("chmod of", errno);
  if (const int err = write_all(file.fd, bytes)) fail("write to", err);
  struct stat written {};
  if (::fsync(file.fd) != 0) fail("fsync of", errno);
  if (::fstat(file.fd, &written) != 0) fail("stat of", errno);
  if (::close(file.release()) != 0) fail("close of", errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("rename over it of", errno);
  if (const int err = fsync_dir(dir))
    throw Error(
        str("wrote '", path, "' but could not fsync its directory '", dir, "': ", reason(err)));
  record_flush(written, replaces ? &old : nullptr);  // the inode the rename put at `path`
}

void rename_file(const std::string& from, const std::string& to) {
  RLFT_CHECK(parent_dir(from) == parent_dir(to), "rename_file: '", from, "' and '", to,
             "' are in different directories");
  struct stat st;
  if (::lstat(from.c_str(), &st) != 0)
    throw Error(str("cannot rename '", from, "' to '", to, "': ", reason(errno)));
  if (S_ISDIR(st.st_mode))
    throw Error(str("cannot rename '", from, "': it is a directory, not a file"));
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw Error(str("cannot rename '", from, "' to '", to, "': ", reason(errno)));
  if (const int err = fsync_dir(parent_dir(to)))
    throw Error(str("renamed '", from, "' to '", to,
                    "' but could not fsync their directory: ", reason(err)));
}

std::string read_file(const std::string& path) {
  Fd file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) throw Error(str("cannot read '", path, "': ", reason(errno)));
  struct stat st;
  if (::fstat(file.fd, &st) != 0) throw Error(str("cannot read '", path, "': ", reason(errno)));
  if (S_ISDIR(st.st_mode)) throw Error(str("cannot read '", path, "': Is a directory"));
  std::string bytes;
  const bool regular = S_ISREG(st.st_mode);
  try {
    if (regular) bytes.reserve(size_t(st.st_size));
  } catch (const std::bad_alloc&) {
    throw Error(str("cannot read '", path, "': its ", st.st_size, " bytes do not fit in memory"));
  }
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(file.fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(str("cannot read '", path, "': ", reason(errno)));
    }
    if (n == 0) return bytes;
    // A pipe or device (/dev/zero) has no size: stop at kMaxStreamBytes, not at memory's end.
    if (!regular && bytes.size() + size_t(n) > kMaxStreamBytes)
      throw Error(str("cannot read '", path, "': not a regular file, and more than ",
                      kMaxStreamBytes >> 20, " MiB came from it"));
    bytes.append(buf, size_t(n));
  }
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void remove_file(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw Error(str("cannot remove '", path, "': ", reason(errno)));
  }
  if (S_ISDIR(st.st_mode))
    throw Error(str("cannot remove '", path, "': it is a directory, not a file"));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw Error(str("cannot remove '", path, "': ", reason(errno)));
}

void append_line(const std::string& path, std::string_view line) {
  RLFT_CHECK(line.find('\n') == std::string_view::npos, "append_line '", path,
             "': the line contains a newline");
  Fd file;
  file.fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (file.fd < 0) throw Error(str("cannot append to '", path, "': ", reason(errno)));
  struct stat st;
  if (::fstat(file.fd, &st) != 0) {
    throw Error(str("cannot append to '", path, "': ", reason(errno)));
  }
  std::string buf;
  buf.reserve(line.size() + 1);
  buf.append(line);
  buf += '\n';
  if (const int err = write_all(file.fd, buf)) {
    // Drop the partial line (best effort: the truncate itself may fail on a full disk).
    [[maybe_unused]] const int ignored = ::ftruncate(file.fd, st.st_size);
    throw Error(str("cannot append to '", path, "': ", reason(err)));
  }
  if (::close(file.release()) != 0) {
    throw Error(str("cannot append to '", path, "': ", reason(errno)));
  }
}

void sync_file(const std::string& path) {
  Fd file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) throw Error(str("cannot flush '", path, "' to disk: ", reason(errno)));
  struct stat st {};
  // The size before the flush: every byte of it is on disk once fsync returns.
  if (::fstat(file.fd, &st) != 0 || ::fsync(file.fd) != 0)
    throw Error(str("cannot flush '", path, "' to disk: ", reason(errno)));
  record_flush(st);
}

int64_t synced_size(const std::string& path) { return flush_of(path).size; }

int64_t flush_order(const std::string& path) { return flush_of(path).order; }

void forget_flushes() {
  const std::lock_guard<std::mutex> lock(g_flush_mutex);
  g_flushes.clear();
}

void make_dirs(const std::string& path) {
  RLFT_CHECK(!path.empty(), "make_dirs: empty path");
  // Create each prefix ending before a '/', then the path itself.
  for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    const std::string prefix = path.substr(0, end);
    if (!prefix.empty() && prefix.back() != '/') {
      if (::mkdir(prefix.c_str(), 0777) != 0) {
        const int err = errno;
        struct stat st;
        if (::stat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
          const std::string at = prefix == path ? "" : str(" (at '", prefix, "')");
          if (err == EEXIST) {
            throw Error(str("cannot create directory '", path, "'", at,
                            ": it exists and is not a directory"));
          }
          throw Error(str("cannot create directory '", path, "'", at, ": ", reason(err)));
        }
      }
    }
    if (end == std::string::npos) return;
  }
}

std::string absolute_path(const std::string& path) {
  if (path.empty()) throw Error("absolute_path: empty path");
  if (path.front() == '/') return path;
  std::string rest = path;
  while (rest.size() >= 2 && rest[0] == '.' && rest[1] == '/') {
    size_t i = 1;
    while (i < rest.size() && rest[i] == '/') ++i;
    rest.erase(0, i);
  }
  if (rest == ".") rest.clear();
  std::string cwd(256, '\0');
  while (::getcwd(cwd.data(), cwd.size()) == nullptr) {
    if (errno != ERANGE)
      throw Error(str("cannot resolve '", path, "': the working directory: ", reason(errno)));
    cwd.resize(cwd.size() * 2);
  }
  cwd.resize(std::strlen(cwd.c_str()));
  if (rest.empty()) return cwd;
  return cwd == "/" ? "/" + rest : cwd + "/" + rest;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace rlft::fs
