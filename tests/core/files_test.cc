#include "core/files.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <vector>

#include "tests/support/temp_dir.h"

using namespace engram::core;
using engram::test::TempDir;

namespace {

std::string contents(const std::filesystem::path& p) {
  auto text = read_file(p, 1 << 20);
  REQUIRE(text.has_value());
  return *text;
}

unsigned mode_of(const std::filesystem::path& p) {
  return static_cast<unsigned>(std::filesystem::status(p).permissions() &
                               std::filesystem::perms::mask);
}

// The names in `dir`, sorted: no temporary file may be left behind.
std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Sets the umask for one scope.
struct Umask {
  mode_t old;
  explicit Umask(mode_t m) : old(::umask(m)) {}
  ~Umask() { ::umask(old); }
};

}  // namespace

TEST_CASE("files: write_new_file writes once, a second write returns false and keeps the first") {
  TempDir dir;
  const auto path = dir / "key";
  auto first = write_new_file(path, "first", 0600);
  REQUIRE(first.has_value());
  CHECK(*first);
  auto second = write_new_file(path, "second", 0600);
  REQUIRE(second.has_value());
  CHECK_FALSE(*second);
  CHECK(contents(path) == "first");
  CHECK(names_in(dir.path()) == std::vector<std::string>{"key"});
}

TEST_CASE("files: the mode is exactly the one asked for, whatever the umask") {
  TempDir dir;
  {
    // A umask of 0 would leave 0666 from a plain open(); 0600 must hold.
    const Umask loose(0);
    REQUIRE(write_new_file(dir / "secret", "s", 0600).has_value());
    REQUIRE(replace_file(dir / "replaced", "r", 0600).has_value());
  }
  CHECK(mode_of(dir / "secret") == 0600);
  CHECK(mode_of(dir / "replaced") == 0600);
  {
    // And a strict umask cannot take away bits that were asked for.
    const Umask strict(077);
    REQUIRE(write_new_file(dir / "public", "p", 0644).has_value());
  }
  CHECK(mode_of(dir / "public") == 0644);
}

TEST_CASE("files: replace_file creates, then replaces, leaving no temporary file") {
  TempDir dir;
  const auto path = dir / "checkpoints.jsonl";
  REQUIRE(replace_file(path, "one\n", 0644).has_value());
  CHECK(contents(path) == "one\n");
  REQUIRE(replace_file(path, "two\n", 0644).has_value());
  CHECK(contents(path) == "two\n");
  CHECK(mode_of(path) == 0644);

  // Written in pieces.
  REQUIRE(replace_file(path, 0644, [](FileWriter& w) -> result<void> {
            for (const char* piece : {"a", "b", "c"}) {
              if (auto s = w.write(piece); !s) return s;
            }
            return {};
          }).has_value());
  CHECK(contents(path) == "abc");

  // A failing fill leaves the old file and no temporary file.
  auto failed = replace_file(path, 0644, [](FileWriter& w) -> result<void> {
    if (auto s = w.write("partial"); !s) return s;
    return make_error(errc::invalid_argument, "stop");
  });
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().code == errc::invalid_argument);
  CHECK(contents(path) == "abc");
  CHECK(names_in(dir.path()) == std::vector<std::string>{"checkpoints.jsonl"});
}

TEST_CASE("files: a missing parent is an io_error naming the path, and nothing is left") {
  TempDir dir;
  auto w = write_new_file(dir / "no-such-dir" / "f", "x", 0600);
  REQUIRE_FALSE(w.has_value());
  CHECK(w.error().code == errc::io_error);
  CHECK(w.error().message.find("no-such-dir") != std::string::npos);
  auto r = replace_file(dir / "no-such-dir" / "f", "x", 0600);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == errc::io_error);
  CHECK(names_in(dir.path()).empty());
}

TEST_CASE("files: read_file reads whole files up to the bound and names what is wrong") {
  TempDir dir;
  const auto path = dir / "f";
  REQUIRE(replace_file(path, "0123456789", 0644).has_value());

  auto exact = read_file(path, 10);
  REQUIRE(exact.has_value());
  CHECK(*exact == "0123456789");

  auto over = read_file(path, 9);
  REQUIRE_FALSE(over.has_value());
  CHECK(over.error().code == errc::invalid_argument);
  CHECK(over.error().message.find(path.string()) != std::string::npos);
  auto over_corrupt = read_file(path, 9, errc::corruption);
  REQUIRE_FALSE(over_corrupt.has_value());
  CHECK(over_corrupt.error().code == errc::corruption);

  auto missing = read_file(dir / "missing", 10);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == errc::not_found);
  CHECK(missing.error().message.find("missing") != std::string::npos);

  auto a_dir = read_file(dir.path(), 10);
  REQUIRE_FALSE(a_dir.has_value());
  CHECK(a_dir.error().code == errc::invalid_argument);
}

TEST_CASE("files: create_dirs_synced makes every missing level and accepts existing ones") {
  TempDir dir;
  const auto deep = dir.path() / "a" / "b" / "c";
  REQUIRE(create_dirs_synced(deep, 0700).has_value());
  CHECK(std::filesystem::is_directory(deep));
  REQUIRE(create_dirs_synced(deep, 0700).has_value());
  REQUIRE(fsync_dir(deep).has_value());

  REQUIRE(replace_file(dir / "file", "x", 0644).has_value());
  auto under_file = create_dirs_synced(dir.path() / "file" / "sub", 0700);
  REQUIRE_FALSE(under_file.has_value());
  CHECK(under_file.error().code == errc::io_error);
  // ENOTDIR from stat(): "<dir>/file/sub: Not a directory".
  CHECK(under_file.error().message.find((dir / "file").string()) != std::string::npos);
  CHECK(under_file.error().message.find("ot a directory") != std::string::npos);

  // A file where the directory itself should be.
  auto is_file = create_dirs_synced(dir / "file", 0700);
  REQUIRE_FALSE(is_file.has_value());
  CHECK(is_file.error().code == errc::io_error);
  CHECK(is_file.error().message.find("is not a directory") != std::string::npos);
}
