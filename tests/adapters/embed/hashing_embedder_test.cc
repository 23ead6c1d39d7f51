#include "adapters/embed/hashing_embedder.h"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

using engram::embed::HashingEmbedder;

namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

// The vectors are unit length, so the dot product is the cosine.
double cosine(const HashingEmbedder& e, std::string_view a, std::string_view b) {
  return dot(e.embed(a), e.embed(b));
}

bool all_zero(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// FNV-1a 64 over the floats' bit patterns: any change to any component, down
// to the last bit, changes it.
uint64_t checksum(const std::vector<float>& v) {
  uint64_t h = 14695981039346656037ULL;
  for (float x : v) {
    const auto bits = std::bit_cast<uint32_t>(x);
    for (int shift = 0; shift < 32; shift += 8) {
      h ^= (bits >> shift) & 0xffu;
      h *= 1099511628211ULL;
    }
  }
  return h;
}

std::vector<float> nonzero_magnitudes(const std::vector<float>& v) {
  std::vector<float> out;
  for (float x : v) {
    if (x != 0.0f) out.push_back(std::fabs(x));
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

}  // namespace

TEST_CASE("hashing embedder: name, version, dimensions") {
  const HashingEmbedder standard;
  CHECK(standard.name() == "engram-hash");
  CHECK(standard.version() == 1);
  CHECK(standard.dimensions() == 384);
  for (size_t dims : {size_t{8}, size_t{64}, size_t{384}, size_t{4096}}) {
    const HashingEmbedder e(dims);
    CHECK(e.dimensions() == dims);
    CHECK(e.embed("protein folding").size() == dims);
    CHECK(e.embed("").size() == dims);
  }
}

TEST_CASE("hashing embedder: dimensions outside 8..4096 abort") {
  for (size_t dims : {size_t{0}, size_t{7}, size_t{4097}}) {
    CAPTURE(dims);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // doctest's handler would report the expected abort as a crash.
      std::signal(SIGABRT, SIG_DFL);
      std::freopen("/dev/null", "w", stderr);  // the expected assertion message
      const HashingEmbedder e(dims);
      _exit(e.dimensions() == dims ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
  }
}

TEST_CASE("hashing embedder: the same text gives the same vector, and the vectors are pinned") {
  const HashingEmbedder e;
  const HashingEmbedder other;
  // Changing tokenisation, hashing or weights changes these checksums, which
  // is the reminder to bump kVersion and re-pin them.
  struct Golden {
    std::string_view text;
    size_t dims;
    uint64_t checksum;
  };
  const Golden goldens[] = {
      {"protein folding simulation results", 384, 0x6a1a72c2ca4dbcc5},
      {"The quick brown fox jumps over the lazy dog.", 384, 0xdc2247d4dafd0881},
      {"Müller's café: naïve résumé № 42", 384, 0x426d3d074d835b01},
      {"a", 64, 0x5897874feb25a296},
      // Repeated words and trigrams exercise the term-frequency weights.
      {"to be or not to be, that is the question; to be is to do", 384, 0x50ea089274e51633},
  };
  for (const Golden& g : goldens) {
    CAPTURE(g.text);
    const HashingEmbedder sized(g.dims);
    const auto v = sized.embed(g.text);
    CHECK(checksum(v) == g.checksum);
  }
  CHECK(e.embed("protein folding") == other.embed("protein folding"));
  CHECK(e.embed("protein folding") == e.embed("protein folding"));
}

TEST_CASE("hashing embedder: weights and sublinear term frequency") {
  const HashingEmbedder e(4096);
  // "a": the word (weight 1) and the trigram "<a>" (weight 0.5).
  const auto one = nonzero_magnitudes(e.embed("a"));
  REQUIRE(one.size() == 2);
  CHECK(one[0] / one[1] == doctest::Approx(2.0).epsilon(1e-6));
  // "a a": word and trigram with tf 2 (weight times 1 + ln 2), and the bigram
  // "a a" once (0.5).
  const auto two = nonzero_magnitudes(e.embed("a a"));
  REQUIRE(two.size() == 3);
  CHECK(two[0] / two[2] == doctest::Approx((1.0 + std::log(2.0)) / 0.5).epsilon(1e-6));
  CHECK(two[1] / two[2] == doctest::Approx(1.0 + std::log(2.0)).epsilon(1e-6));
  // Ten repetitions: the word weighs 1 + ln 10 = 3.30, not 10 (against the
  // bigram "a a", which occurs nine times).
  const auto ten = nonzero_magnitudes(e.embed("a a a a a a a a a a"));
  REQUIRE(ten.size() == 3);
  CHECK(ten[0] / ten[2] ==
        doctest::Approx((1.0 + std::log(10.0)) / (0.5 * (1.0 + std::log(9.0)))).epsilon(1e-6));
}

TEST_CASE("hashing embedder: unit norm, finite") {
  const HashingEmbedder e;
  for (std::string_view text :
       {"x", "protein folding simulation results", "Ünïcödé only", "1234 5678",
        "a very long sentence that repeats repeats repeats repeats repeats itself"}) {
    CAPTURE(text);
    const auto v = e.embed(text);
    CHECK(all_finite(v));
    CHECK(dot(v, v) == doctest::Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("hashing embedder: zeros for text without words") {
  const HashingEmbedder e;
  const std::string_view separators_only[] = {"", " ", "\t\n\r ",
                                              "!!! --- ... ,;:", std::string_view("\0\0", 2)};
  for (std::string_view text : separators_only) {
    CAPTURE(text);
    const auto v = e.embed(text);
    CHECK(v.size() == 384);
    CHECK(all_zero(v));
  }
  CHECK_FALSE(all_zero(e.embed("... a ...")));
}

TEST_CASE("hashing embedder: ASCII case and separators do not matter") {
  const HashingEmbedder e;
  CHECK(e.embed("Protein FOLDING Simulation") == e.embed("protein folding simulation"));
  CHECK(e.embed("protein, folding;  simulation!") == e.embed("protein folding simulation"));
  CHECK(e.embed("protein folding") != e.embed("protein folding simulation"));
}

TEST_CASE("hashing embedder: word order counts through bigrams, but only a little") {
  const HashingEmbedder e;
  const double swapped = cosine(e, "dog bites man", "man bites dog");
  CHECK(swapped < 0.999);
  CHECK(swapped > 0.8);
}

TEST_CASE("hashing embedder: overlapping texts are closer than unrelated ones") {
  const HashingEmbedder e;
  const std::string_view query = "protein folding simulation results";
  const double paraphrase = cosine(e, query, "results of protein folding simulations");
  const double partial = cosine(e, query, "protein structure prediction");
  const double unrelated = cosine(e, query, "quarterly sales report");
  CHECK(paraphrase > 0.6);
  CHECK(partial > unrelated);
  CHECK(paraphrase > partial);
  CHECK(std::fabs(unrelated) < 0.2);
  // Trigrams make inflections overlap even with no word in common.
  CHECK(cosine(e, "simulation", "simulations") > 0.4);
}

TEST_CASE("hashing embedder: only the first kMaxInputBytes are read") {
  const HashingEmbedder e;
  std::string prefix;
  for (int i = 0; prefix.size() < HashingEmbedder::kMaxInputBytes; ++i) {
    prefix += "word" + std::to_string(i) + " ";
  }
  prefix.resize(HashingEmbedder::kMaxInputBytes);
  const std::string tail = " an entirely different ending about quarterly sales";
  CHECK(e.embed(prefix + tail) == e.embed(prefix));
  // Just inside the bound the same tail does count.
  const std::string shorter = prefix.substr(0, prefix.size() - 2 * tail.size());
  CHECK(e.embed(shorter + tail) != e.embed(shorter));
  // Cutting through a UTF-8 sequence is harmless.
  const std::string cut = prefix.substr(0, prefix.size() - 1) + "é";
  CHECK(all_finite(e.embed(cut)));
  CHECK(dot(e.embed(cut), e.embed(cut)) == doctest::Approx(1.0).epsilon(1e-6));
}

TEST_CASE("hashing embedder: UTF-8 words stay whole") {
  const HashingEmbedder e;
  // Were bytes >= 0x80 separators, both would be the words "m" and "ller".
  CHECK(e.embed("müller") != e.embed("m ller"));
  CHECK(cosine(e, "müller", "m ller") < 0.5);
  CHECK(cosine(e, "исследование белка", "исследования белка") > 0.5);
  CHECK(cosine(e, "исследование белка", "квартальный отчёт") < 0.2);
  CHECK(cosine(e, "naïve café", "naïve cafe") > cosine(e, "naïve café", "quarterly report"));
  // Malformed UTF-8 (stray continuation bytes, a truncated sequence) is just
  // bytes: a vector, never a crash or a NaN.
  const auto bad = e.embed("\x80\x80 abc\xc3 \xff\xfe");
  CHECK(all_finite(bad));
  CHECK(dot(bad, bad) == doctest::Approx(1.0).epsilon(1e-6));
}
