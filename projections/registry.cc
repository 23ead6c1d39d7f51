#include "projections/registry.h"

#include "core/assert.h"
#include "projections/audit.h"
#include "projections/catalog.h"
#include "projections/knowledge.h"
#include "projections/patterns.h"

namespace engram::projections {

std::vector<std::shared_ptr<Projection>> all_projections(const ProjectionDeps& deps) {
  ENGRAM_ASSERT(deps.embedder != nullptr && deps.keys != nullptr);
  return {std::make_shared<CatalogProjection>(),
          std::make_shared<KnowledgeProjection>(deps.embedder),
          std::make_shared<PatternsProjection>(deps.embedder),
          std::make_shared<MemoriesProjection>(deps.embedder, *deps.keys, deps.memories),
          std::make_shared<AuditProjection>()};
}

}  // namespace engram::projections
