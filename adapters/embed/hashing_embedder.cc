#include "adapters/embed/hashing_embedder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/assert.h"

namespace engram::embed {
namespace {

// Mixed into every feature's hash so that the word "abc", the trigram "abc"
// and a bigram never share a bucket systematically. The values are part of
// the hash: changing them is a version bump.
enum class Feature : uint8_t { kWord = 1, kBigram = 2, kTrigram = 3 };

// Whole words carry the most meaning. Bigrams add word order at half weight
// so that a paraphrase that reorders words loses little. Trigrams let
// inflections ("simulation", "simulations") and typos overlap; a word of n
// characters has n of them, so half weight keeps them from drowning the
// words out.
constexpr double kWordWeight = 1.0;
constexpr double kBigramWeight = 0.5;
constexpr double kTrigramWeight = 0.5;

// Neither marker is a word character, so a padded trigram ("<ab") and a
// bigram ("ab cd") can never spell an unpadded word.
constexpr char kWordStart = '<';
constexpr char kWordEnd = '>';
constexpr char kBigramJoin = ' ';

constexpr uint64_t kFnvOffsetBasis = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;
// The bucket comes from the low half of the hash and the sign from the top
// bit, so the two are independent for every dimension count.
constexpr uint64_t kBucketBits = 0xffffffffULL;
constexpr int kSignShift = 63;

// FNV-1a 64 written out, not std::hash, whose values may change with the
// standard library. Its high bits are weakly mixed for short inputs, hence
// the MurmurHash3 finaliser in finish().
class FeatureHash {
 public:
  explicit FeatureHash(Feature type) { add_byte(static_cast<uint8_t>(type)); }

  FeatureHash& add(std::string_view bytes) {
    for (char c : bytes) add_byte(static_cast<uint8_t>(c));
    return *this;
  }

  uint64_t finish() const {
    uint64_t k = h_;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb93e1a85ec53ULL;
    k ^= k >> 33;
    return k;
  }

 private:
  void add_byte(uint8_t b) {
    h_ ^= b;
    h_ *= kFnvPrime;
  }

  uint64_t h_ = kFnvOffsetBasis;
};

// Not std::isalnum, which follows the C locale. Bytes >= 0x80 are word
// characters so that UTF-8 words stay whole (non-ASCII letters are not
// case-folded: that would need Unicode tables).
bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

char ascii_lower(unsigned char c) {
  return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

bool is_utf8_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xc0) == 0x80;
}

// ln(n) with only +, -, * and /, which IEEE 754 rounds exactly the same
// everywhere; libm's log is only faithfully rounded and differs between C
// libraries in the last place, which would break bit-identical vectors.
double portable_ln(size_t n) {
  constexpr double kLn2 = 0.69314718055994530941723212145817657;
  double m = static_cast<double>(n);
  int halvings = 0;
  while (m >= 2.0) {
    m /= 2.0;
    ++halvings;
  }
  // ln m = 2 atanh(s) with s = (m - 1) / (m + 1) in [0, 1/3): each term of the
  // series is at most 1/9 of the previous one, so 20 terms exhaust a double.
  constexpr int kSeriesTerms = 20;
  const double s = (m - 1.0) / (m + 1.0);
  const double s_squared = s * s;
  double power = s;
  double series = 0.0;
  for (int k = 0; k < kSeriesTerms; ++k) {
    series += power / (2 * k + 1);
    power *= s_squared;
  }
  return halvings * kLn2 + 2.0 * series;
}

// Adds each distinct feature once with sublinear term frequency (1 + ln tf),
// so a word repeated ten times counts about 3.3 times, not 10. Sorting both
// counts the features and fixes the summation order, which keeps the float
// sums identical from run to run.
void accumulate(std::vector<uint64_t>& hashes, double weight, std::vector<double>& buckets) {
  std::sort(hashes.begin(), hashes.end());
  for (size_t i = 0; i < hashes.size();) {
    size_t j = i + 1;
    while (j < hashes.size() && hashes[j] == hashes[i]) ++j;
    const double value = weight * (1.0 + portable_ln(j - i));
    const uint64_t h = hashes[i];
    // Signed hashing: collisions cancel on average instead of inflating
    // every similarity.
    buckets[(h & kBucketBits) % buckets.size()] += (h >> kSignShift) != 0 ? -value : value;
    i = j;
  }
}

// Trigrams of code points (not bytes) of the padded word, so a two-byte
// letter is one character. Malformed UTF-8 needs no check: a stray
// continuation byte just joins the character before it.
void add_trigrams(std::string_view padded, std::vector<size_t>& starts,
                  std::vector<uint64_t>& out) {
  starts.clear();
  for (size_t i = 0; i < padded.size(); ++i) {
    if (!is_utf8_continuation(padded[i])) starts.push_back(i);
  }
  starts.push_back(padded.size());
  for (size_t k = 0; k + 3 < starts.size(); ++k) {
    out.push_back(FeatureHash(Feature::kTrigram)
                      .add(padded.substr(starts[k], starts[k + 3] - starts[k]))
                      .finish());
  }
}

}  // namespace

HashingEmbedder::HashingEmbedder(size_t dimensions) : dimensions_(dimensions) {
  ENGRAM_ASSERT_MSG(dimensions >= kMinDimensions && dimensions <= kMaxDimensions,
                    "HashingEmbedder dimensions out of range");
}

std::vector<float> HashingEmbedder::embed(std::string_view text) const {
  text = text.substr(0, kMaxInputBytes);

  // Upper bounds: every word takes at least one byte and a separator, and
  // a word has at most as many characters (so trigrams) as bytes.
  std::vector<uint64_t> words;
  std::vector<uint64_t> bigrams;
  std::vector<uint64_t> trigrams;
  words.reserve(text.size() / 2 + 1);
  bigrams.reserve(text.size() / 2 + 1);
  trigrams.reserve(text.size());

  std::string padded(1, kWordStart);  // "<" + current word + ">"
  std::string previous;               // the word before the current one
  std::vector<size_t> starts;
  auto end_word = [&] {
    if (padded.size() == 1) return;
    const std::string_view word = std::string_view(padded).substr(1);
    words.push_back(FeatureHash(Feature::kWord).add(word).finish());
    if (!previous.empty()) {
      bigrams.push_back(FeatureHash(Feature::kBigram)
                            .add(previous)
                            .add(std::string_view(&kBigramJoin, 1))
                            .add(word)
                            .finish());
    }
    previous.assign(word);
    padded.push_back(kWordEnd);
    add_trigrams(padded, starts, trigrams);
    padded.resize(1);
  };
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_word_byte(byte)) {
      padded.push_back(ascii_lower(byte));
    } else {
      end_word();
    }
  }
  end_word();

  std::vector<double> buckets(dimensions_, 0.0);
  accumulate(words, kWordWeight, buckets);
  accumulate(bigrams, kBigramWeight, buckets);
  accumulate(trigrams, kTrigramWeight, buckets);

  double squares = 0.0;
  for (double b : buckets) squares += b * b;
  std::vector<float> out(dimensions_, 0.0f);
  // No features (or, in theory, features that cancel exactly): zeros, never
  // a division by zero.
  if (squares == 0.0) return out;
  const double norm = std::sqrt(squares);
  for (size_t i = 0; i < dimensions_; ++i) out[i] = static_cast<float>(buckets[i] / norm);
  return out;
}

}  // namespace engram::embed
