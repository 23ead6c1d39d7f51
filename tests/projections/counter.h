#pragma once

// A small deterministic projection for runtime tests: counts events per type
// ("count/<type>" -> decimal). An event of type "Poison" makes apply() fail.

#include <string>
#include <vector>

#include "projections/projection.h"

namespace engram::test {

class CounterProjection final : public projections::Projection {
 public:
  explicit CounterProjection(std::vector<std::string> types = {}, uint32_t version = 1)
      : types_(std::move(types)), version_(version) {}
  std::string_view name() const override { return "counter"; }
  uint32_t version() const override { return version_; }
  std::vector<std::string> event_types() const override { return types_; }
  core::result<void> apply(std::span<const core::RecordedEvent> events,
                           core::ModelStore::Batch& batch) override {
    for (const auto& e : events) {
      if (e.type() == "Poison") return core::make_error(core::errc::invalid_argument, "poison");
      const std::string key = "count/" + std::string(e.type());
      auto cur = batch.get(key);
      if (!cur) return cur.error();
      const uint64_t n = cur->has_value() ? std::stoull(**cur) : 0;
      if (auto r = batch.put(key, std::to_string(n + 1)); !r) return r;
    }
    return {};
  }

 private:
  std::vector<std::string> types_;
  uint32_t version_;
};

}  // namespace engram::test
