#include "core/checkpointer.h"

#include <doctest/doctest.h>

#include <thread>

#include "core/data_dir.h"
#include "core/log_tree.h"
#include "core/merkle.h"
#include "tests/support/log_fixture.h"

using namespace engram;
using namespace engram::core;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::TempDir;

namespace {

void append_n(Log& log, int n) {
  for (int i = 0; i < n; ++i) {
    REQUIRE(log.append("s", ExpectedVersion::any(), std::vector<EventData>{event("E")}));
  }
}

// Every checkpoint in the file signs the log's real head hash and tree root.
void check_all(const Log& log, const std::filesystem::path& file, const PublicKey& key) {
  auto cs = read_checkpoints(file);
  REQUIRE(cs);
  for (const auto& c : *cs) {
    CHECK(c.signature_valid());
    CHECK(c.key == key);
    CHECK(c.log_id == log.log_id());
    auto e = log.read_all(c.position, 1);
    REQUIRE(e);
    REQUIRE_FALSE(e->empty());
    CHECK(e->front().hash() == c.head_hash);
    CHECK(LogTree(log).root(c.position).value() == c.tree_root);
  }
}

}  // namespace

TEST_CASE("checkpointer: signs every N events, at stop, and not twice after a restart") {
  TempDir dir;
  const auto file = DataDir(dir.path()).checkpoints_file();
  auto log = open_or_die(dir.path());
  const auto key_file = dir.path() / "audit" / "signing-key.pem";
  SigningKey key = SigningKey::load_or_create(key_file).value();
  const PublicKey pub = key.public_key();
  {
    Checkpointer cp(*log, std::move(key), CheckpointFile(file),
                    CheckpointerOptions{.every_events = 10, .interval_ms = 3'600'000});
    // Each threshold passed signs once, within a few polls. The second batch
    // waits for the first checkpoint: the checkpointer signs the head it
    // sees, so 25 events appended at once could be one checkpoint at 25.
    auto wait_signed = [&](size_t n) {
      for (int i = 0; i < 250 && cp.signed_count() < n; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      return cp.signed_count();
    };
    append_n(*log, 12);
    CHECK(wait_signed(1) == 1);
    append_n(*log, 13);
    CHECK(wait_signed(2) == 2);
    append_n(*log, 3);
  }  // stop: the final head is signed
  auto cs = read_checkpoints(file);
  REQUIRE(cs);
  REQUIRE(cs->size() >= 3);
  CHECK(cs->back().position == Position(28));
  for (size_t i = 1; i < cs->size(); ++i) CHECK((*cs)[i].position > (*cs)[i - 1].position);
  check_all(*log, file, pub);

  // A restart with the same key and nothing new signs nothing...
  const size_t before = cs->size();
  {
    Checkpointer cp(*log, SigningKey::load_or_create(key_file).value(), CheckpointFile(file),
                    CheckpointerOptions{.every_events = 10, .interval_ms = 100});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CHECK(read_checkpoints(file)->size() == before);
  // ...while a new key is a new signer: it signs the head once.
  {
    Checkpointer cp(*log, SigningKey::generate(), CheckpointFile(file),
                    CheckpointerOptions{.every_events = 10, .interval_ms = 100});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CHECK(read_checkpoints(file)->size() == before + 1);
}

TEST_CASE("checkpointer: the interval signs a head that moved by fewer than N events") {
  TempDir dir;
  const auto file = DataDir(dir.path()).checkpoints_file();
  auto log = open_or_die(dir.path());
  Checkpointer cp(*log, SigningKey::generate(), CheckpointFile(file),
                  CheckpointerOptions{.every_events = 1'000'000, .interval_ms = 100});
  append_n(*log, 3);
  for (int i = 0; i < 100 && cp.signed_count() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(cp.signed_count() == 1);
  auto pos = cp.sign_now();
  REQUIRE(pos);
  CHECK(*pos == Position(3));
  CHECK(cp.signed_count() == 1);  // nothing new: not signed again
}
