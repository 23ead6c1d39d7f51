#include "projections/vector_index.h"

#include <doctest/doctest.h>

#include <faiss/utils/distances.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "tests/support/gate.h"

using engram::core::errc;
using engram::projections::vector_id;
using engram::projections::VectorIndex;

namespace {

constexpr size_t kDims = 16;

std::vector<float> unit(std::mt19937& rng) {
  std::normal_distribution<float> n;
  std::vector<float> v(kDims);
  float sum = 0;
  for (float& x : v) {
    x = n(rng);
    sum += x * x;
  }
  for (float& x : v) x /= std::sqrt(sum);
  return v;
}

VectorIndex::Options options() {
  VectorIndex::Options o;
  o.dimensions = kDims;
  return o;
}

}  // namespace

TEST_CASE("vector index: upsert replaces, remove forgets, filters and bounds hold") {
  std::mt19937 rng(7);
  VectorIndex index(options());
  const auto a = unit(rng);
  const auto b = unit(rng);
  REQUIRE(index.upsert(1, a));
  REQUIRE(index.upsert(2, b));
  CHECK(index.size() == 2);
  auto hits = index.search(a, 2);
  REQUIRE(hits);
  REQUIRE(hits->size() == 2);
  CHECK((*hits)[0].id == 1);
  CHECK((*hits)[0].score == doctest::Approx(1.0));

  // Replacing id 1 with b's vector: both ids now match b exactly.
  REQUIRE(index.upsert(1, b));
  CHECK(index.size() == 2);
  CHECK(index.search(b, 2)->at(1).score == doctest::Approx(1.0));
  // A filter keeps only the ids it accepts.
  auto only2 = index.search(b, 2, [](int64_t id, const VectorIndex::Payload&) { return id == 2; });
  REQUIRE(only2->size() == 1);
  CHECK(only2->front().id == 2);
  index.remove(2);
  index.remove(99);  // unknown: nothing happens
  CHECK(index.size() == 1);

  // Bad input is refused and changes nothing.
  CHECK(index.upsert(3, std::vector<float>(kDims - 1, 0.1f)).error().code ==
        errc::invalid_argument);
  const std::vector<int64_t> ids = {4, 5};
  CHECK(index.upsert_many(ids, a).error().code == errc::invalid_argument);
  CHECK(index.size() == 1);
  CHECK(index.search(std::vector<float>(kDims + 1, 0.1f), 1).error().code ==
        errc::invalid_argument);
  CHECK(index.search(a, 0).error().code == errc::invalid_argument);
  CHECK(index.search(a, VectorIndex::kMaxK + 1).error().code == errc::invalid_argument);
  CHECK(vector_id("m1") == vector_id("m1"));
  CHECK(vector_id("m1") != vector_id("m2"));
  CHECK(vector_id("m1") >= 0);
}

TEST_CASE("vector index: a serialized index comes back whole, a damaged one is refused") {
  std::mt19937 rng(11);
  VectorIndex index(options());
  for (int64_t id = 0; id < 50; ++id) REQUIRE(index.upsert(id, unit(rng)));
  std::string bytes;
  index.serialize(bytes);
  auto back = VectorIndex::deserialize(bytes, options());
  REQUIRE(back);
  CHECK((*back)->size() == 50);
  const auto q = unit(rng);
  CHECK((*back)->search(q, 5)->front().id == index.search(q, 5)->front().id);

  VectorIndex::Options other = options();
  other.dimensions = kDims * 2;
  CHECK(VectorIndex::deserialize(bytes, other).error().code == errc::corruption);
  CHECK(VectorIndex::deserialize(bytes.substr(0, bytes.size() / 2), options()).error().code ==
        errc::corruption);
  CHECK(VectorIndex::deserialize("not an index", options()).error().code == errc::corruption);
}

namespace {

std::vector<int64_t> ids_of(const std::vector<VectorIndex::Hit>& hits) {
  std::vector<int64_t> out;
  for (const auto& h : hits) out.push_back(h.id);
  return out;
}

}  // namespace

TEST_CASE("vector index: a search completes while an add is held, and sees it once published") {
  std::mt19937 rng(3);
  engram::test::Gate gate;
  VectorIndex::Options o = options();
  o.before_publish = [&](std::string_view work) { gate.hook(work); };
  VectorIndex index(o);
  const auto a = unit(rng);
  const auto b = unit(rng);
  REQUIRE(index.upsert(1, a));

  gate.arm("add");
  bool added = false;
  std::jthread writer([&] { added = index.upsert(2, b).has_value(); });
  gate.wait_until_holding();
  const auto during = engram::test::run_while_held(gate, [&] { return index.search(b, 2); });
  REQUIRE(during);
  CHECK(ids_of(*during) == std::vector<int64_t>{1});  // the add is not published yet
  CHECK(index.size() == 1);
  gate.release();
  writer.join();
  CHECK(added);
  const auto after = index.search(b, 2);
  REQUIRE(after);
  CHECK(ids_of(*after) == std::vector<int64_t>{2, 1});
  CHECK(after->front().score == doctest::Approx(1.0));
  CHECK(index.size() == 2);
}

TEST_CASE("vector index: searches run on while k-means retrains, and see the new lists after") {
  std::mt19937 rng(5);
  engram::test::Gate gate;
  VectorIndex::Options o = options();
  o.ivf_min_vectors = 200;
  o.nlist = 4;
  o.nprobe = 4;  // every list: exact, so answers are comparable
  o.before_publish = [&](std::string_view work) { gate.hook(work); };
  VectorIndex index(o);
  // Ids from..to-1 with random vectors.
  auto batch = [&](int64_t from, int64_t to) {
    std::pair<std::vector<int64_t>, std::vector<float>> b;
    for (int64_t id = from; id < to; ++id) {
      const auto v = unit(rng);
      b.first.push_back(id);
      b.second.insert(b.second.end(), v.begin(), v.end());
    }
    return b;
  };
  const auto [ids, vectors] = batch(0, 150);
  REQUIRE(index.upsert_many(ids, vectors));
  REQUIRE_FALSE(index.is_ivf());

  // The next batch crosses ivf_min_vectors: it is published, then the
  // retrain is held.
  const auto [more, more_vectors] = batch(150, 250);
  gate.arm("retrain");
  bool added = false;
  std::jthread writer([&] { added = index.upsert_many(more, more_vectors).has_value(); });
  gate.wait_until_holding();
  const std::vector<float> probe(more_vectors.end() - kDims, more_vectors.end());
  const auto during = engram::test::run_while_held(gate, [&] { return index.search(probe, 3); });
  REQUIRE(during);
  CHECK(during->front().id == 249);  // the batch, published before the retrain
  CHECK_FALSE(index.is_ivf());
  CHECK(index.size() == 250);
  const auto exact = ids_of(*index.search(probe, 20));
  gate.release();
  writer.join();
  CHECK(added);
  CHECK(index.is_ivf());
  CHECK(index.size() == 250);
  CHECK(ids_of(*index.search(probe, 20)) == exact);
}

namespace {

// A reference for the index: each live id's vector and payload value.
struct Entry {
  std::vector<float> vector;
  int64_t value = 0;
};

VectorIndex::Payload payload(int64_t value) {
  return std::make_shared<const int64_t>(value);
}

int64_t value_of(const VectorIndex::Payload& p) {
  REQUIRE(p != nullptr);
  return *static_cast<const int64_t*>(p.get());
}

// Exact top-k of the reference, scored as FAISS's IVF-Flat scanner scores
// (fvec_inner_product), best first, ties by id: what search() must return
// when every list is probed.
std::vector<VectorIndex::Hit> brute_force(const std::map<int64_t, Entry>& all,
                                          const std::vector<float>& q, size_t k,
                                          const VectorIndex::Keep& keep) {
  std::vector<VectorIndex::Hit> hits;
  for (const auto& [id, e] : all) {
    auto p = payload(e.value);
    if (keep && !keep(id, p)) continue;
    hits.push_back({id, faiss::fvec_inner_product(q.data(), e.vector.data(), kDims), p});
  }
  std::sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  if (hits.size() > k) hits.resize(k);
  return hits;
}

bool same(const std::vector<VectorIndex::Hit>& a, const std::vector<VectorIndex::Hit>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].score != b[i].score) return false;
    if (value_of(a[i].payload) != value_of(b[i].payload)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("vector index: adds, replacements, payloads and removals across segments, merges, "
          "compactions, retraining and snapshots answer as an exact search") {
  std::mt19937 rng(17);
  VectorIndex::Options o = options();
  o.ivf_min_vectors = 300;
  o.nlist = 8;
  o.nprobe = 8;               // every list: exact
  o.merge_max_vectors = 256;  // merges stop at 64 live rows: many segments
  size_t payload_publishes = 0;
  o.before_publish = [&](std::string_view work) { payload_publishes += work == "payload"; };
  auto index = std::make_unique<VectorIndex>(o);
  std::map<int64_t, Entry> model;
  std::uniform_int_distribution<int64_t> any_id(0, 1499);
  std::uniform_int_distribution<int> op(0, 11);
  std::uniform_int_distribution<size_t> batch(1, 60);
  int64_t next_value = 0;

  auto check = [&](int step) {
    INFO("step " << step);
    REQUIRE(index->size() == model.size());
    for (int i = 0; i < 3; ++i) {
      const auto q = unit(rng);
      const auto got = index->search(q, 10);
      REQUIRE(got);
      CHECK(same(*got, brute_force(model, q, 10, {})));
      const VectorIndex::Keep even = [](int64_t, const VectorIndex::Payload& p) {
        return value_of(p) % 2 == 0;
      };
      const auto filtered = index->search(q, 10, even);
      REQUIRE(filtered);
      CHECK(same(*filtered, brute_force(model, q, 10, even)));
    }
    const int64_t probe = any_id(rng);
    CHECK(index->contains(probe) == (model.count(probe) > 0));
    if (model.count(probe) > 0) CHECK(value_of(index->payload(probe)) == model[probe].value);
  };

  size_t most_segments = 0;
  bool folded = false;
  for (int step = 0; step < 400; ++step) {
    const int what = op(rng);
    if (what < 6) {  // a batch of adds and replacements, a repeated id now and then
      std::vector<int64_t> ids;
      std::vector<float> vectors;
      std::vector<VectorIndex::Payload> payloads;
      const size_t n = batch(rng);
      for (size_t i = 0; i < n; ++i) {
        const int64_t id = i > 0 && i % 17 == 0 ? ids.front() : any_id(rng);
        const auto v = unit(rng);
        ids.push_back(id);
        vectors.insert(vectors.end(), v.begin(), v.end());
        payloads.push_back(payload(next_value));
        model[id] = Entry{v, next_value++};
      }
      REQUIRE(index->upsert_many(ids, vectors, payloads));
    } else if (what < 9) {  // removals, some of unknown ids
      std::vector<int64_t> ids;
      const size_t n = batch(rng);
      for (size_t i = 0; i < n; ++i) ids.push_back(any_id(rng));
      for (int64_t id : ids) model.erase(id);
      if (n == 1) {
        index->remove(ids.front());
      } else {
        index->remove_many(ids);
      }
    } else if (what < 11) {  // new payloads, vectors unchanged; unknown ids ignored
      std::vector<int64_t> ids;
      std::vector<VectorIndex::Payload> payloads;
      // Now and then 300 live ids at once: past kMinOverrides, so the
      // overrides fold into the segments (a second publish).
      const bool many = step % 50 == 0 && model.size() >= 300;
      const size_t n = many ? 300 : batch(rng);
      auto live = model.begin();
      for (size_t i = 0; i < n; ++i) {
        const int64_t id = many ? (live++)->first : any_id(rng);
        ids.push_back(id);
        payloads.push_back(payload(next_value));
        if (auto it = model.find(id); it != model.end()) it->second.value = next_value;
        ++next_value;
      }
      const size_t before = payload_publishes;
      index->set_payloads(ids, payloads);
      if (many) {
        CHECK(payload_publishes == before + 2);
        folded = true;
      }
    } else {  // a snapshot round trip; the payloads come from the caller
      std::string bytes;
      index->serialize(bytes);
      auto back = VectorIndex::deserialize(bytes, o, [&](int64_t id) {
        auto it = model.find(id);
        return it == model.end() ? nullptr : payload(it->second.value);
      });
      REQUIRE(back);
      CHECK((*back)->segments() == index->segments());
      index = std::move(*back);
    }
    most_segments = std::max(most_segments, index->segments());
    check(step);
  }
  CHECK(index->is_ivf());
  CHECK(folded);
  // Below the merge cap a tier holds fewer than kMergeFanIn segments: tiers
  // 0..2 (live < 64) hold at most 3 each; the rest hold 64+ live rows each.
  CHECK(most_segments <= 3 * 3 + 1500 / 64 + 1);

  // for_each visits every live id once, with its payload.
  std::map<int64_t, int64_t> seen;
  index->for_each([&](int64_t id, const VectorIndex::Payload& p) { seen[id] = value_of(p); });
  std::map<int64_t, int64_t> expected;
  for (const auto& [id, e] : model) expected[id] = e.value;
  CHECK(seen == expected);

  // A snapshot whose caller has no payload for a live id is refused.
  std::string bytes;
  index->serialize(bytes);
  CHECK(VectorIndex::deserialize(bytes, o, [](int64_t) { return VectorIndex::Payload(); })
            .error()
            .code == errc::corruption);

  // Removing everything leaves no segment behind.
  std::vector<int64_t> all;
  for (const auto& [id, e] : model) all.push_back(id);
  index->remove_many(all);
  CHECK(index->size() == 0);
  CHECK(index->segments() == 0);
  CHECK(index->search(unit(rng), 5)->empty());
}
