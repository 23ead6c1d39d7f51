#include "commands/inspect.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <vector>

#include "commands/event_table.h"
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
  return {{"aggregate", "memory"}, {"forgotten_at", s.forgotten_at}};
}

// A memory owner's memories as state_at shows them: how many there are, and
// the first kMaxStateListItems by id with what their latest events say.
// Bounded: an id past the shown ones once they are full is only counted,
// and never comes back, since only smaller ids can displace shown ones.
class MemoryListing {
 public:
  core::result<void> add(const EventView& e) {
    const auto& table = memory::events();
    auto entity = table.entity(e.type, e.payload);
    if (!entity) return {};  // the owner's state, not a memory's; evolve checked it
    if (*entity == memory::kSubjectEntity) {
      for (auto& [id, m] : shown_) {
        if (auto r = table.evolve_entity(m, e); !r) return r;
      }
      return {};
    }
    if (e.type == memory::kStoredEvent) ++count_;
    auto it = shown_.find(*entity);
    if (it == shown_.end()) {
      if (e.type != memory::kStoredEvent) return {};  // a memory past the shown ones
      if (shown_.size() == kMaxStateListItems) {
        if (*entity > shown_.rbegin()->first) return {};
        shown_.erase(std::prev(shown_.end()));
      }
      it = shown_.emplace(std::move(*entity), memory::Memory{}).first;
    }
    return table.evolve_entity(it->second, e);
  }

  nlohmann::json to_json() const {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& [id, m] : shown_) {
      items.push_back(
          {{"memory_id", id}, {"importance", m.importance}, {"forgotten", m.forgotten}});
    }
    return {{"count", count_}, {"items", std::move(items)}, {"truncated", shown_.size() < count_}};
  }

 private:
  std::map<std::string, memory::Memory, std::less<>> shown_;
  uint64_t count_ = 0;
};

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
  std::optional<MemoryListing> memories;
  if (std::holds_alternative<memory::State>(*state)) memories.emplace();
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
      const EventView view{e.type(), e.payload(), e.version().value()};
      auto r = evolve(*state, view);
      if (r && memories) r = memories->add(view);
      if (!r) {
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
  if (memories) out.state["memories"] = memories->to_json();
  return out;
}

}  // namespace engram::commands
