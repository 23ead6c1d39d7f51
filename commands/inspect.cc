#include "commands/inspect.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/flexjson.h"

namespace engram::commands {
namespace {

// Events are up to 1 MiB each; like the bus's rebuild, a page is kept small
// so one read does not hold the log's whole max_read_count of them.
constexpr size_t kPageEvents = 1000;

nlohmann::json config_json(const std::string& flex) {
  if (flex.empty()) return nlohmann::json::object();
  auto j = core::flex_to_json(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(flex.data()), flex.size()));
  return j ? std::move(*j) : nlohmann::json(nullptr);
}

nlohmann::json to_json(const agent::State& s) {
  return {{"aggregate", "agent"},
          {"registered", s.registered},
          {"status", agent::status_name(s.status)},
          {"name", s.name},
          {"capabilities", s.capabilities},
          {"domains", s.domains},
          {"config", config_json(s.config)}};
}

nlohmann::json to_json(const project::State& s) {
  return {{"aggregate", "project"},
          {"created", s.created},
          {"archived", s.archived},
          {"phase", project::kPhaseNames[static_cast<size_t>(s.phase)]},
          {"name", s.name}};
}

nlohmann::json to_json(const task::State& s) {
  return {{"aggregate", "task"},
          {"requested", s.requested},
          {"status", task::status_name(s.status)},
          {"project_id", s.project_id},
          {"assignee", s.assignee},
          {"checkpoint_stage", s.checkpoint_stage == task::Stage::tests ? "tests" : "findings"},
          {"has_test_result", s.has_test_result},
          {"tests_passed", s.tests_passed}};
}

nlohmann::json to_json(const knowledge::State& s) {
  return {{"aggregate", "knowledge"},
          {"recorded", s.recorded},
          {"retracted", s.retracted},
          {"owner", s.owner}};
}

nlohmann::json to_json(const memory::State& s) {
  // Sorted so that the same state always shows the same items, whatever the
  // hash map's order; only the shown ones need sorting.
  using Entry = const std::pair<const std::string, memory::Memory>*;
  std::vector<Entry> entries;
  entries.reserve(s.memories.size());
  for (const auto& m : s.memories) entries.push_back(&m);
  const size_t shown = std::min(entries.size(), kMaxStateListItems);
  std::partial_sort(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(shown), entries.end(),
                    [](Entry a, Entry b) { return a->first < b->first; });
  nlohmann::json items = nlohmann::json::array();
  for (size_t i = 0; i < shown; ++i) {
    items.push_back({{"memory_id", entries[i]->first},
                     {"importance", entries[i]->second.importance},
                     {"forgotten", entries[i]->second.forgotten}});
  }
  return {{"aggregate", "memory"},
          {"memories",
           {{"count", s.memories.size()},
            {"items", std::move(items)},
            {"truncated", shown < s.memories.size()}}}};
}

nlohmann::json to_json(const pattern::State& s) {
  return {{"aggregate", "pattern"}, {"observed", s.observed}, {"retired", s.retired}};
}

}  // namespace

nlohmann::json state_to_json(const AnyState& s) {
  return std::visit([](const auto& state) { return to_json(state); }, s);
}

core::result<StateAt> state_at(const core::Log& log, std::string_view stream, core::Position at) {
  auto state = initial_state(stream);
  if (!state) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("\"{}\" is not a domain stream", stream));
  }
  if (at.value() == 0) {
    return core::make_error(core::errc::invalid_argument, "the position must be at least 1");
  }
  StateAt out;
  out.stream = std::string(stream);
  // A stream's positions grow with its versions, so the first event past
  // `at` ends the fold.
  for (bool past = false; !past;) {
    auto page = log.read_stream(stream, core::StreamVersion(out.version + 1), kPageEvents,
                                core::Direction::forward);
    if (!page) return page.error();
    if (page->empty()) break;
    for (const auto& e : *page) {
      if (e.position() > at) {
        past = true;
        break;
      }
      if (auto r = evolve(*state, e.type(), e.payload()); !r) {
        return core::make_error(
            core::errc::corruption,
            fmt::format("{} version {}: {}", stream, e.version().value(), r.error().message));
      }
      out.version = e.version().value();
      out.position = e.position().value();
      out.recorded_at_ns = e.recorded_at_ns();
    }
  }
  out.state = state_to_json(*state);
  return out;
}

}  // namespace engram::commands
