#pragma once

// The built-in text embedder: signed feature hashing of word unigrams, word
// bigrams and character trigrams, L2-normalised. It needs no model files and
// gives bit-identical vectors on every IEEE-754 machine, so read models can
// be rebuilt anywhere from the log alone. It is lexical: texts that share
// words or word pieces come out close; synonyms with no shared pieces do not.
// The algorithm and its weights are described in adapters/embed/README.md.
//
// Contract (besides projections::TextEmbedder's)
// - Only the first kMaxInputBytes bytes of a text are read, so one embed()
//   costs at most a few milliseconds whatever the caller sends.
// - Vectors are comparable only between embedders with the same name(),
//   version() and dimensions(); a vector of one dimension count is not a
//   prefix of another's.
// - Any change to tokenisation, hashing or weighting changes stored vectors'
//   meaning and must bump kVersion, so that read models re-embed by rebuild.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "projections/embedder.h"

namespace engram::embed {

class HashingEmbedder final : public projections::TextEmbedder {
 public:
  static constexpr std::string_view kName = "engram-hash";
  static constexpr uint32_t kVersion = 1;

  static constexpr size_t kDefaultDimensions = 384;
  // Fewer dimensions collide too often to rank anything; more only cost
  // memory in the vector indexes, since short texts fill few buckets anyway.
  static constexpr size_t kMinDimensions = 8;
  static constexpr size_t kMaxDimensions = 4096;

  static constexpr size_t kMaxInputBytes = 64 * 1024;

  // `dimensions` must lie in [kMinDimensions, kMaxDimensions] (asserted: it
  // is deployment configuration, which the caller validates against these).
  explicit HashingEmbedder(size_t dimensions = kDefaultDimensions);

  std::string_view name() const override { return kName; }
  uint32_t version() const override { return kVersion; }
  size_t dimensions() const override { return dimensions_; }
  std::vector<float> embed(std::string_view text) const override;

 private:
  size_t dimensions_;
};

}  // namespace engram::embed
