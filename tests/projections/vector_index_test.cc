#include "projections/vector_index.h"

#include <doctest/doctest.h>

#include <cmath>
#include <random>

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
  auto only2 = index.search(b, 2, [](int64_t id) { return id == 2; });
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
