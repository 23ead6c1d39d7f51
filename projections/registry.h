#pragma once

// Every projection engram runs, for `engram serve` and the replay tools.

#include <memory>
#include <vector>

#include "core/keystore.h"
#include "projections/embedder.h"
#include "projections/memories.h"
#include "projections/projection.h"

namespace engram::projections {

// What the read models need from outside projections/: the text embedder
// (adapters/embed, wired by tools/) and the owners' keys (memories).
struct ProjectionDeps {
  std::shared_ptr<const TextEmbedder> embedder;
  const core::KeyStore* keys = nullptr;
  MemoriesOptions memories;
};

std::vector<std::shared_ptr<Projection>> all_projections(const ProjectionDeps& deps);

}  // namespace engram::projections
