#pragma once

// Every projection engram runs, for `engram serve` and the replay tools.

#include <memory>
#include <vector>

#include "projections/projection.h"

namespace engram::projections {

std::vector<std::shared_ptr<Projection>> all_projections();

}  // namespace engram::projections
