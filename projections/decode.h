#pragma once

// A domain event's payload as its table, for the read models: a payload that
// does not verify is corruption naming the event, which stops the projection.

#include <fmt/format.h>

#include "core/event.h"
#include "core/result.h"
#include "schemas/payload.h"

namespace engram::projections {

template <typename T>
core::result<const T*> decode(const schema::Aligned& bytes, const core::RecordedEvent& e) {
  const T* t = schema::verified<T>(bytes);
  if (t == nullptr) {
    return core::make_error(core::errc::corruption, fmt::format("{} at position {} does not verify",
                                                                e.type(), e.position().value()));
  }
  return t;
}

}  // namespace engram::projections
