#include "projections/registry.h"

#include "projections/catalog.h"

namespace engram::projections {

std::vector<std::shared_ptr<Projection>> all_projections() {
  return {std::make_shared<CatalogProjection>()};
}

}  // namespace engram::projections
