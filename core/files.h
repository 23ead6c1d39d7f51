#pragma once

// Careful file writing for small durable files (keys, key rings, checkpoint
// files): a reader sees either the old file or the whole new one, never a
// torn one, and a file a call reported as written survives a crash.
//
// Contract
// - New content goes to a temporary file beside the target (".<name>.tmp-<hex>",
//   created O_EXCL with exactly `mode`, the umask notwithstanding), is
//   fsynced, renamed into place and then the directory is fsynced. On failure
//   the temporary file is removed.
// - Errors are errc::io_error with "<path>: <strerror>" naming the file that
//   failed (the temporary file for failures while writing it), unless a
//   function says otherwise.

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace engram::core {

// An error naming `path` and strerror(err).
Error os_error(const std::filesystem::path& path, int err, errc code = errc::io_error);

// Owns a file descriptor; closes it on destruction. -1 is none.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  void reset(int fd = -1) noexcept;

 private:
  int fd_;
};

// Writes whole buffers to the temporary file that replace_file() fills.
class FileWriter {
 public:
  FileWriter(int fd, const std::filesystem::path& path) : fd_(fd), path_(path) {}
  // All of `bytes` (retrying short writes and EINTR).
  result<void> write(std::string_view bytes);

 private:
  int fd_;
  const std::filesystem::path& path_;
};

// Writes `bytes` to a new file at `path` with `mode`, so that a reader sees
// no file or the whole file. false, writing nothing, when `path` already
// exists (a concurrent creator won; its file stays). The parent must exist.
result<bool> write_new_file(const std::filesystem::path& path, std::string_view bytes, mode_t mode);

// Writes `bytes` over `path` (created when missing) atomically with `mode`.
// The parent must exist.
result<void> replace_file(const std::filesystem::path& path, std::string_view bytes, mode_t mode);
// The same, for content too large to hold at once: `fill` writes it in pieces
// and may fail, which leaves `path` as it was.
result<void> replace_file(const std::filesystem::path& path, mode_t mode,
                          const std::function<result<void>(FileWriter&)>& fill);

// fsyncs a directory, so that entries created or renamed in it survive a
// crash. An empty path is the current directory.
result<void> fsync_dir(const std::filesystem::path& dir);

// Creates `dir` and its missing ancestors with `mode` (less the umask),
// fsyncing the parent of each new one, so that a crash cannot lose a
// directory a durable file is in. io_error when a part of the path exists
// and is not a directory, or when more than 64 levels are missing.
result<void> create_dirs_synced(const std::filesystem::path& dir, mode_t mode);

// The whole of a regular file of at most `max_bytes`. not_found when it is
// missing; invalid_argument when it is not a regular file; `too_big` when it
// is larger than `max_bytes`. A file that shrinks while read gives what was there.
result<std::string> read_file(const std::filesystem::path& path, size_t max_bytes,
                              errc too_big = errc::invalid_argument);

}  // namespace engram::core
