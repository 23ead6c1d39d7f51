#pragma once

// The read models as the engram binary runs them: the registry's
// projections wired to the built-in text embedder and the data dir's key
// store.
// serve and replay use this one wiring, so a rebuild makes the same models.

#include <memory>

#include "adapters/embed/hashing_embedder.h"
#include "core/keystore.h"
#include "projections/registry.h"

namespace engram::cli {

inline std::vector<std::shared_ptr<projections::Projection>> read_models(
    const core::KeyStore& keys) {
  projections::ProjectionDeps deps;
  deps.embedder = std::make_shared<embed::HashingEmbedder>();
  deps.keys = &keys;
  return projections::all_projections(deps);
}

}  // namespace engram::cli
