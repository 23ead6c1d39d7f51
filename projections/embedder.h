#pragma once

// Text embeddings for the read models (knowledge, patterns, memories). The
// projections own this interface; adapters/embed implements it and tools/
// wires an implementation in, so projections/ depends on no adapter.
//
// Contract
// - embed() is deterministic: the same text always gives the same vector,
//   on every machine and build, for a given name() and version().
// - The vector has dimensions() entries and is L2-normalised (norm 1), or
//   all zeros when the text has no features (empty, only separators).
// - name() and version() are recorded with every stored embedding; a change
//   of either makes the read models re-embed by rebuilding.
// - Thread-safe: embed() may be called from any thread.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace engram::projections {

class TextEmbedder {
 public:
  virtual ~TextEmbedder() = default;
  virtual std::string_view name() const = 0;
  virtual uint32_t version() const = 0;
  virtual size_t dimensions() const = 0;
  virtual std::vector<float> embed(std::string_view text) const = 0;
};

}  // namespace engram::projections
