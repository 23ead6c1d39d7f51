#include "core/log_tree.h"
#include "core/merkle.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <map>

#include "core/keys.h"
#include "core/log.h"
#include "tests/support/log_fixture.h"
#include "tests/support/raw_db.h"

using namespace engram;
using namespace engram::core;
using engram::test::event;
using engram::test::open_or_die;
using engram::test::TempDir;

namespace {

Hash256 event_hash(uint64_t i) {
  Sha256 h;
  h.update(fmt::format("event-{}", i));
  return h.finish();
}

// RFC 6962's MTH, straight from its definition.
Hash256 reference_root(const std::vector<Hash256>& leaves, size_t from, size_t n) {
  if (n == 0) return merkle::empty_root();
  if (n == 1) return leaves[from];
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return merkle::node_hash(reference_root(leaves, from, k),
                           reference_root(leaves, from + k, n - k));
}

// A tree kept in memory the way the writer keeps it in the log.
struct MemorySource final : merkle::Source {
  std::vector<Hash256> leaf_hashes;
  std::map<std::pair<int, uint64_t>, Hash256> stored;
  merkle::Frontier frontier;
  size_t leaf_reads = 0;

  void append(const Hash256& event) {
    const Hash256 leaf = merkle::leaf_hash(event);
    leaf_hashes.push_back(leaf);
    frontier.append(leaf, [&](merkle::NodeId id, const Hash256& h) {
      CHECK(stored.emplace(std::make_pair(id.level, id.index), h).second);
    });
  }
  result<Hash256> node(merkle::NodeId id) override {
    auto it = stored.find({id.level, id.index});
    if (it == stored.end()) return make_error(errc::corruption, "missing node");
    return it->second;
  }
  result<std::vector<Hash256>> leaves(uint64_t first, uint64_t count) override {
    REQUIRE(count <= merkle::kChunkLeaves);
    REQUIRE(first + count <= leaf_hashes.size());
    leaf_reads += count;
    return std::vector<Hash256>(leaf_hashes.begin() + static_cast<ptrdiff_t>(first),
                                leaf_hashes.begin() + static_cast<ptrdiff_t>(first + count));
  }
};

}  // namespace

TEST_CASE("merkle: the frontier's root and stored nodes agree with RFC 6962's definition") {
  MemorySource t;
  CHECK(t.frontier.root() == merkle::empty_root());
  for (uint64_t i = 0; i < 1100; ++i) {
    t.append(event_hash(i));
    const size_t n = t.leaf_hashes.size();
    if (n <= 20 || n % 97 == 0 || n == 1024 || n == 1100) {
      const Hash256 expected = reference_root(t.leaf_hashes, 0, n);
      CHECK(t.frontier.root() == expected);
      auto r = merkle::root(t, n);
      REQUIRE(r);
      CHECK(*r == expected);
    }
  }
  // Nodes of 256 leaves and more are stored: 4 at level 8, 2 at 9, 1 at 10.
  CHECK(t.stored.size() == 7);
  CHECK(t.stored.at({10, 0}) == reference_root(t.leaf_hashes, 0, 1024));
  CHECK(t.stored.at({8, 3}) == reference_root(t.leaf_hashes, 768, 256));
}

TEST_CASE("merkle: inclusion proofs verify for every leaf and fail when anything changes") {
  MemorySource t;
  for (uint64_t i = 0; i < 600; ++i) t.append(event_hash(i));
  for (uint64_t n : {1, 2, 3, 7, 8, 9, 255, 256, 257, 511, 512, 513, 600}) {
    const Hash256 root = reference_root(t.leaf_hashes, 0, n);
    for (uint64_t m = 0; m < n; m += (n > 40 ? 13 : 1)) {
      auto proof = merkle::inclusion_proof(t, m, n);
      REQUIRE(proof);
      CHECK(proof->size() <= 10);
      CHECK(merkle::verify_inclusion(m, n, t.leaf_hashes[m], *proof, root));
      // Another leaf, another index, a damaged path: all fail.
      CHECK_FALSE(merkle::verify_inclusion(m, n, t.leaf_hashes[(m + 1) % 600], *proof, root));
      if (n > 1)
        CHECK_FALSE(merkle::verify_inclusion((m + 1) % n, n, t.leaf_hashes[m], *proof, root));
      // The root binds the size: the root of the next tree refuses the proof.
      CHECK_FALSE(merkle::verify_inclusion(m, n + 1, t.leaf_hashes[m], *proof,
                                           reference_root(t.leaf_hashes, 0, n + 1)));
      if (!proof->empty()) {
        auto bad = *proof;
        bad.back()[0] ^= 1;
        CHECK_FALSE(merkle::verify_inclusion(m, n, t.leaf_hashes[m], bad, root));
      }
    }
  }
  CHECK_FALSE(merkle::inclusion_proof(t, 5, 5));
}

TEST_CASE(
    "merkle: consistency proofs verify between any two sizes and fail for a rewritten prefix") {
  MemorySource t;
  for (uint64_t i = 0; i < 700; ++i) t.append(event_hash(i));
  for (uint64_t n : {1, 2, 5, 8, 256, 300, 512, 700}) {
    const Hash256 new_root = reference_root(t.leaf_hashes, 0, n);
    for (uint64_t m = 1; m <= n; m += (n > 40 ? 37 : 1)) {
      const Hash256 old_root = reference_root(t.leaf_hashes, 0, m);
      auto proof = merkle::consistency_proof(t, m, n);
      REQUIRE(proof);
      CHECK(proof->size() <= 2 * 10);
      CHECK(merkle::verify_consistency(m, n, old_root, new_root, *proof));
      if (m < n) {
        // A log rewritten below m has another old root.
        auto other = t.leaf_hashes;
        other[m - 1][0] ^= 1;
        CHECK_FALSE(
            merkle::verify_consistency(m, n, reference_root(other, 0, m), new_root, *proof));
        CHECK_FALSE(
            merkle::verify_consistency(m, n, old_root, reference_root(other, 0, n), *proof));
      }
    }
  }
  CHECK_FALSE(merkle::consistency_proof(t, 0, 5));
  CHECK_FALSE(merkle::consistency_proof(t, 6, 5));
}

TEST_CASE("merkle: a proof reads at most a few hundred leaves, however large the tree") {
  MemorySource t;
  for (uint64_t i = 0; i < 5000; ++i) t.append(event_hash(i));
  t.leaf_reads = 0;
  auto proof = merkle::inclusion_proof(t, 1234, 4999);
  REQUIRE(proof);
  CHECK(t.leaf_reads <= 2 * merkle::kChunkLeaves);
  CHECK(merkle::verify_inclusion(1234, 4999, t.leaf_hashes[1234], *proof,
                                 reference_root(t.leaf_hashes, 0, 4999)));
}

TEST_CASE("log: the writer keeps the tree, and roots and proofs survive a reopen and a lost tree") {
  TempDir dir;
  std::vector<Hash256> leaves;
  auto record = [&](Log& log) {
    auto all = log.read_all(Position(leaves.size() + 1), 10'000);
    REQUIRE(all);
    for (const auto& e : *all) leaves.push_back(merkle::leaf_hash(e.hash()));
  };
  auto fill = [&](Log& log, int appends) {
    for (int i = 0; i < appends; ++i) {
      std::vector<EventData> batch;
      for (int k = 0; k < 1 + i % 7; ++k) batch.push_back(event("E", "p" + std::to_string(i)));
      REQUIRE(log.append("s" + std::to_string(i % 5), ExpectedVersion::any(), batch));
    }
    record(log);
  };
  {
    auto log = open_or_die(dir.path());
    CHECK(core::LogTree(*log).root(Position(0)).value() == merkle::empty_root());
    fill(*log, 100);
    CHECK(core::LogTree(*log).root(log->head().position).value() == reference_root(leaves, 0, leaves.size()));
  }
  {
    auto log = open_or_die(dir.path());  // the frontier is reloaded from the stored nodes
    fill(*log, 60);
    const uint64_t n = leaves.size();
    REQUIRE(n > 512);
    CHECK(core::LogTree(*log).root(Position(n)).value() == reference_root(leaves, 0, n));
    auto proof = core::LogTree(*log).inclusion_proof(Position(300), Position(n));
    REQUIRE(proof);
    CHECK(merkle::verify_inclusion(299, n, leaves[299], *proof, reference_root(leaves, 0, n)));
    auto cons = core::LogTree(*log).consistency_proof(Position(257), Position(n));
    REQUIRE(cons);
    CHECK(merkle::verify_consistency(257, n, reference_root(leaves, 0, 257),
                                     reference_root(leaves, 0, n), *cons));
    auto past = core::LogTree(*log).root(Position(n + 1));
    REQUIRE_FALSE(past);
    CHECK(past.error().code == errc::invalid_argument);
    CHECK_FALSE(core::LogTree(*log).inclusion_proof(Position(0), Position(n)));
  }
  {
    // A log whose tree is gone (written before it existed) gets it rebuilt at open.
    test::RawDb raw(dir.path());
    raw.clear(keys::kMerkleCf);
  }
  {
    auto log = open_or_die(dir.path());
    fill(*log, 10);
    const uint64_t n = leaves.size();
    CHECK(core::LogTree(*log).root(Position(n)).value() == reference_root(leaves, 0, n));
  }
}
