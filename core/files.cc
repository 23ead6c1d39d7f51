#include "core/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/crypto.h"
#include "core/sha256.h"

namespace engram::core {
namespace {

// Directories deeper than this are a mistake, not a layout.
constexpr size_t kMaxCreatedDirDepth = 64;

std::filesystem::path temp_beside(const std::filesystem::path& path) {
  std::array<uint8_t, 8> nonce{};
  random_bytes(nonce);
  // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on "." + string.
  std::string name = ".";
  name += path.filename().string();
  name += ".tmp-";
  name += to_hex(nonce);
  return path.parent_path() / name;
}

// Writes a temporary file beside `path` with exactly `mode`, filled by
// `fill` and fsynced. Returns its name; removes it on failure.
result<std::filesystem::path> write_temp(const std::filesystem::path& path, mode_t mode,
                                         const std::function<result<void>(FileWriter&)>& fill) {
  const std::filesystem::path tmp = temp_beside(path);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return os_error(tmp, errno);
  auto fail = [&](Error e) -> result<std::filesystem::path> {
    ::unlink(tmp.c_str());
    return e;
  };
  // The umask may only remove bits; a key file must not depend on it.
  if (::fchmod(fd.get(), mode) != 0) return fail(os_error(tmp, errno));
  FileWriter writer(fd.get(), tmp);
  if (auto s = fill(writer); !s) return fail(s.error());
  if (::fsync(fd.get()) != 0) return fail(os_error(tmp, errno));
  return tmp;
}

// Renames `tmp` to `path` without replacing it: false (and `tmp` removed)
// when `path` already exists.
result<bool> rename_no_replace(const std::filesystem::path& tmp,
                               const std::filesystem::path& path) {
  int rc = ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
    // File systems without RENAME_NOREPLACE: link() is just as exclusive.
    rc = ::link(tmp.c_str(), path.c_str());
    const int err = errno;
    ::unlink(tmp.c_str());
    errno = err;
  }
  if (rc != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    if (err == EEXIST) return false;
    return os_error(path, err);
  }
  return true;
}

}  // namespace

Error os_error(const std::filesystem::path& path, int err, errc code) {
  return make_error(code, path.string() + ": " + std::strerror(err));
}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

result<void> FileWriter::write(std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(path_, errno);
    done += static_cast<size_t>(n);
  }
  return {};
}

result<bool> write_new_file(const std::filesystem::path& path, std::string_view bytes,
                            mode_t mode) {
  auto tmp = write_temp(path, mode, [&](FileWriter& w) { return w.write(bytes); });
  if (!tmp) return tmp.error();
  auto placed = rename_no_replace(*tmp, path);
  if (!placed || !*placed) return placed;
  if (auto s = fsync_dir(path.parent_path()); !s) return s.error();
  return true;
}

result<void> replace_file(const std::filesystem::path& path, std::string_view bytes, mode_t mode) {
  return replace_file(path, mode, [&](FileWriter& w) { return w.write(bytes); });
}

result<void> replace_file(const std::filesystem::path& path, mode_t mode,
                          const std::function<result<void>(FileWriter&)>& fill) {
  auto tmp = write_temp(path, mode, fill);
  if (!tmp) return tmp.error();
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp->c_str());
    return os_error(path, err);
  }
  return fsync_dir(path.parent_path());
}

result<void> fsync_dir(const std::filesystem::path& dir) {
  const std::filesystem::path d = dir.empty() ? std::filesystem::path(".") : dir;
  UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return os_error(d, errno);
  if (::fsync(fd.get()) != 0) return os_error(d, errno);
  return {};
}

result<void> create_dirs_synced(const std::filesystem::path& dir, mode_t mode) {
  if (dir.empty()) return {};
  std::vector<std::filesystem::path> missing;
  std::filesystem::path p = dir;
  while (!p.empty()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return make_error(errc::io_error, p.string() + " is not a directory");
      }
      break;
    }
    if (errno != ENOENT) return os_error(p, errno);
    if (missing.size() >= kMaxCreatedDirDepth) {
      return make_error(errc::io_error, fmt::format("{}: more than {} missing directories",
                                                    dir.string(), kMaxCreatedDirDepth));
    }
    missing.push_back(p);
    const std::filesystem::path parent = p.parent_path();
    if (parent == p) break;
    p = parent;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), mode) != 0 && errno != EEXIST) return os_error(*it, errno);
    if (auto s = fsync_dir(it->parent_path()); !s) return s;
  }
  return {};
}

result<std::string> read_file(const std::filesystem::path& path, size_t max_bytes, errc too_big) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    return os_error(path, err, err == ENOENT ? errc::not_found : errc::io_error);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return os_error(path, errno);
  if (!S_ISREG(st.st_mode)) {
    return make_error(errc::invalid_argument, path.string() + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return make_error(too_big, fmt::format("{} is larger than {} bytes", path.string(), max_bytes));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(path, errno);
    if (n == 0) break;  // shrank while we read; the caller parses what is there
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return text;
}

}  // namespace engram::core
