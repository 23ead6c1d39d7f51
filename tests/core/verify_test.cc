// Log::verify over the whole log (tree, stream index, heads), and the
// secondary open that audits a running writer.

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "core/keys.h"
#include "core/log.h"
#include "core/log_tree.h"
#include "core/merkle.h"
#include "tests/support/log_fixture.h"
#include "tests/support/raw_db.h"

using namespace engram;
using namespace engram::core;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::RawDb;
using engram::test::TempDir;

namespace {

void fill(const std::filesystem::path& dir, int n) {
  auto log = open_or_die(dir);
  for (int i = 0; i < n; ++i) {
    const std::vector<EventData> e{event("E", "payload-" + std::to_string(i))};
    REQUIRE(log->append("s" + std::to_string(i % 3), ExpectedVersion::any(), e));
  }
}

VerifyReport verify_read_only(const std::filesystem::path& dir, size_t threads = 2) {
  LogOptions ro;
  ro.read_only = true;
  auto log = Log::open(dir, ro);
  REQUIRE(log);
  auto report = (*log)->verify(Position(1), Position(UINT64_MAX), {}, threads);
  REQUIRE(report);
  return *report;
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("verify: the whole log checks tree, index and heads, with any number of hashers") {
  TempDir dir;
  fill(dir.path(), 5000);
  Hash256 root{};
  {
    auto log = open_or_die(dir.path());
    root = core::LogTree(*log).root(Position(5000)).value();
  }
  for (size_t threads : {0, 1, 3}) {
    const VerifyReport r = verify_read_only(dir.path(), threads);
    CHECK(r.ok());
    CHECK(r.whole_log);
    CHECK(r.events_checked == 5000);
    CHECK(r.tree_root == root);
    CHECK(r.tree_nodes_checked ==
          5000 / 256 + 5000 / 512 + 5000 / 1024 + 5000 / 2048 + 5000 / 4096);
    CHECK(r.index_entries_checked == 5000);
    CHECK(r.streams_checked == 3);
  }
}

TEST_CASE("verify: a damaged index, head or tree is named") {
  TempDir dir;
  fill(dir.path(), 600);
  REQUIRE(verify_read_only(dir.path()).ok());

  SUBCASE("a stream index entry pointed at another event") {
    {
      RawDb raw(dir.path());
      raw.put(keys::kStreamIndexCf, keys::stream_index_key("s1", StreamVersion(10)),
              keys::position_key(Position(30)));
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.problem, "stream index entry 's1' version 10 points at position 30"));
    CHECK(*r.first_bad == Position(30));
  }
  SUBCASE("a stream index entry removed") {
    {
      RawDb raw(dir.path());
      raw.del(keys::kStreamIndexCf, keys::stream_index_key("s2", StreamVersion(100)));
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.problem, "stream index of 's2' lacks version 100"));
  }
  SUBCASE("a stream head rewound") {
    {
      RawDb raw(dir.path());
      raw.put(keys::kStreamHeadsCf, "s0", keys::be64(150));
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.problem, "stream 's0': its head says version 150"));
  }
  SUBCASE("a stored Merkle node replaced") {
    {
      RawDb raw(dir.path());
      raw.put(keys::kMerkleCf, keys::merkle_node_key(8, 1), std::string(32, 'x'));
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(*r.first_bad == Position(512));
    CHECK(contains(r.problem, "Merkle node (level 8, index 1)"));
  }
  SUBCASE("the first of several bad events is the one named") {
    {
      RawDb raw(dir.path());
      raw.del(keys::kEventsCf, keys::position_key(Position(590)));
      std::string v = raw.get(keys::kEventsCf, keys::position_key(Position(100)));
      v[v.find("payload-99")] = 'P';
      raw.put(keys::kEventsCf, keys::position_key(Position(100)), v);
    }
    for (size_t threads : {0, 2}) {
      const VerifyReport r = verify_read_only(dir.path(), threads);
      REQUIRE_FALSE(r.ok());
      CHECK(*r.first_bad == Position(100));
    }
  }
}

TEST_CASE("secondary open: follows a running writer without blocking it") {
  TempDir dir;
  auto writer = open_or_die(dir.path());
  REQUIRE(writer->append("s", ExpectedVersion::any(), std::vector<EventData>{event("A")}));

  LogOptions so;
  so.read_only = true;
  so.secondary_dir = dir.path() / "secondary";
  auto secondary = Log::open(dir.path(), so);
  REQUIRE(secondary);
  Log& audit = **secondary;
  CHECK(audit.head().position == Position(1));
  CHECK(audit.log_id() == writer->log_id());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> appended{0};
  std::thread load([&] {
    while (!stop) {
      std::vector<EventData> batch(5, event("B"));
      for (auto& e : batch) e.id = Uuid::v7_now();
      REQUIRE(writer->append("s" + std::to_string(appended % 7), ExpectedVersion::any(), batch));
      appended += 5;
    }
  });
  uint64_t last = 1;
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    auto head = audit.catch_up();
    REQUIRE(head);
    CHECK(head->position.value() >= last);
    last = head->position.value();
    auto report = audit.verify(Position(1), head->position);
    REQUIRE(report);
    CHECK(report->ok());
    CHECK(report->events_checked == head->position.value());
    CHECK(report->index_entries_checked == head->position.value());
    CHECK(core::LogTree(audit).root(head->position).value() == report->tree_root);
  }
  stop = true;
  load.join();
  CHECK(last > 1);
  auto not_secondary = writer->catch_up();
  REQUIRE_FALSE(not_secondary);
  CHECK(not_secondary.error().code == errc::invalid_argument);
}

TEST_CASE("verify: a log of several chunks folds links and the tree above them") {
  TempDir dir;
  constexpr uint64_t kEvents = 140'000;  // over two chunks of 2^16, so level-17 nodes exist
  {
    auto log = open_or_die(dir.path());
    for (uint64_t done = 0; done < kEvents; done += 1000) {
      std::vector<EventData> batch;
      for (int i = 0; i < 1000; ++i) batch.push_back(event("E", "p" + std::to_string(done + i)));
      REQUIRE(log->append("s" + std::to_string(done % 7), ExpectedVersion::any(), batch));
    }
  }
  uint64_t nodes = 0;
  for (int level = 8; level < 64; ++level) nodes += kEvents >> level;
  Hash256 root{};
  {
    LogOptions ro;
    ro.read_only = true;
    auto log = open_or_die(dir.path(), ro);
    root = core::LogTree(*log).root(Position(kEvents)).value();
    for (size_t threads : {0, 2}) {
      auto r = log->verify(Position(1), Position(UINT64_MAX), {}, threads);
      REQUIRE(r);
      CHECK(r->ok());
      CHECK(r->events_checked == kEvents);
      CHECK(r->tree_root == root);
      CHECK(r->tree_nodes_checked == nodes);
      CHECK(r->index_entries_checked == kEvents);
      // A range inside the log links into its first chunk from the event before.
      auto part = log->verify(Position(70'000), Position(135'000), {}, threads);
      REQUIRE(part);
      CHECK(part->ok());
      CHECK(part->events_checked == 65'001);
    }
  }
  SUBCASE("a bad event in a later chunk, and a bad node above the chunks") {
    {
      RawDb raw(dir.path());
      raw.put(keys::kMerkleCf, keys::merkle_node_key(17, 0), std::string(32, 'x'));
      raw.del(keys::kEventsCf, keys::position_key(Position(131'073)));
    }
    const VerifyReport r = verify_read_only(dir.path());
    REQUIRE_FALSE(r.ok());
    CHECK(*r.first_bad == Position(131'072));  // the node completed there comes first
    CHECK(contains(r.problem, "Merkle node (level 17, index 0)"));
  }
  SUBCASE("the link between two chunks") {
    {
      RawDb raw(dir.path());
      raw.del(keys::kEventsCf, keys::position_key(Position(65'537)));
    }
    const VerifyReport r = verify_read_only(dir.path(), 0);
    REQUIRE_FALSE(r.ok());
    CHECK(*r.first_bad == Position(65'537));
    CHECK(contains(r.problem, "event missing"));
  }
}
