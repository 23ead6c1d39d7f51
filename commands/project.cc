#include "commands/project.h"

#include <fmt/format.h>

#include <array>

#include "commands/errors.h"
#include "commands/event_table.h"
#include "commands/flat.h"
#include "commands/ids.h"
#include "commands/input.h"
#include "schemas/domain/projects_generated.h"

namespace engram::commands::project {
namespace fb = engram::domain;

namespace {

std::string_view name_of(Phase p) {
  return kPhaseNames[static_cast<size_t>(p)];
}
std::string_view name_of(fb::ProjectPhase p) {
  return name_of(static_cast<Phase>(p));
}
fb::ProjectPhase to_fb(Phase p) {
  return static_cast<fb::ProjectPhase>(p);
}

bool valid_phase(fb::ProjectPhase p) {
  return static_cast<size_t>(p) < kPhaseNames.size();
}

// A phase change (forward or reverted): the state takes its to_phase.
template <typename Table>
bool set_phase(State& s, const Table& e) {
  if (!valid_phase(e.to_phase())) return false;
  s.phase = static_cast<Phase>(e.to_phase());
  return true;
}
template <typename Table>
bool put_phases(nlohmann::json& j, const Table& e) {
  if (!valid_phase(e.from_phase()) || !valid_phase(e.to_phase())) return false;
  j["project_id"] = e.project_id()->str();
  j["from_phase"] = name_of(e.from_phase());
  j["to_phase"] = name_of(e.to_phase());
  return true;
}

const std::string& project_id(const Command& c) {
  return std::visit([](const auto& x) -> const std::string& { return x.project_id; }, c.v);
}

}  // namespace

size_t State::approx_bytes() const {
  return sizeof(State) + name.size();
}

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc) {
  Input in(body, pc.limits);
  Command c;
  if (type == "CreateProject") {
    Create cr;
    cr.project_id = in.id("project_id");
    cr.name = in.text("name");
    cr.description = in.optional_text("description");
    c.v = std::move(cr);
  } else if (type == "AdvanceProjectPhase") {
    Advance a;
    a.project_id = in.id("project_id");
    a.to_phase = static_cast<Phase>(in.choice("to_phase", kPhaseNames));
    a.compensation_of = in.optional_id("compensation_of");
    a.reason = in.optional_text("reason");
    if (a.compensation_of && !a.reason) {
      in.fail(malformed("/reason", "missing_field", "/reason is required with compensation_of"));
    } else if (a.reason && !a.compensation_of) {
      in.fail(malformed("/reason", "invalid_field",
                        "/reason is only for a compensation (with compensation_of)"));
    }
    c.v = std::move(a);
  } else {
    ENGRAM_ASSERT(type == "ArchiveProject");
    c.v = Archive{in.id("project_id"), in.text("reason")};
  }
  if (auto e = in.finish()) return *e;
  return c;
}

std::string_view type_of(const Command& c) {
  return type_name(c.v, kCommandTypes);
}

nlohmann::json to_json(const Command& c) {
  nlohmann::json j = {{"project_id", project_id(c)}};
  if (const auto* cr = std::get_if<Create>(&c.v)) {
    j["name"] = cr->name;
    put_optional(j, "description", cr->description);
  } else if (const auto* a = std::get_if<Advance>(&c.v)) {
    j["to_phase"] = name_of(a->to_phase);
    put_optional(j, "compensation_of", a->compensation_of);
    put_optional(j, "reason", a->reason);
  } else {
    j["reason"] = std::get<Archive>(c.v).reason;
  }
  return j;
}

std::string stream(const Command& c) {
  return stream_name(kProjectStreamPrefix, project_id(c));
}

Needs needs(const Command&) {
  return {};
}

result<void> authorize(const Command&, const Principal&) {
  return {};
}

result<Events> decide(const State& s, const Command& c, const Context&) {
  flat::Builder b;
  if (const auto* cr = std::get_if<Create>(&c.v)) {
    if (s.created) {
      return rule("project_exists", fmt::format("project \"{}\" already exists", cr->project_id));
    }
    const auto root = fb::CreateProjectCreated(
        b, flat::str(b, cr->project_id), flat::str(b, cr->name), flat::str(b, cr->description));
    return Events{flat::finish(b, root, "ProjectCreated")};
  }
  if (!s.created) {
    return not_found("project_not_found", fmt::format("no project \"{}\" exists", project_id(c)));
  }
  if (s.archived) {
    return rule("project_archived", fmt::format("project \"{}\" is archived", project_id(c)));
  }
  if (const auto* a = std::get_if<Advance>(&c.v)) {
    const auto from = static_cast<int>(s.phase);
    const auto to = static_cast<int>(a->to_phase);
    if (a->compensation_of) {
      if (to != from - 1) {
        return rule("invalid_compensation",
                    fmt::format("a compensation goes back exactly one phase, from {} to {}; "
                                "not to {}",
                                name_of(s.phase),
                                from == 0 ? std::string_view("(none)")
                                          : name_of(static_cast<Phase>(from - 1)),
                                name_of(a->to_phase)));
      }
      const auto root = fb::CreateProjectPhaseReverted(
          b, flat::str(b, a->project_id), to_fb(s.phase), to_fb(a->to_phase),
          flat::str(b, a->compensation_of), flat::str(b, a->reason));
      return Events{flat::finish(b, root, "ProjectPhaseReverted")};
    }
    if (s.phase == Phase::done) {
      return rule("project_done", fmt::format("project \"{}\" is done", a->project_id));
    }
    if (to == from) {
      return rule("phase_unchanged",
                  fmt::format("project \"{}\" is already in {}", a->project_id, name_of(s.phase)));
    }
    if (to < from) {
      return rule("phase_backwards",
                  fmt::format("project \"{}\" is in {}; going back to {} needs compensation_of",
                              a->project_id, name_of(s.phase), name_of(a->to_phase)));
    }
    if (to > from + 1) {
      return rule("phase_skip",
                  fmt::format("project \"{}\" is in {}; the next phase is {}, not {}",
                              a->project_id, name_of(s.phase),
                              name_of(static_cast<Phase>(from + 1)), name_of(a->to_phase)));
    }
    const auto root = fb::CreateProjectPhaseAdvanced(b, flat::str(b, a->project_id), to_fb(s.phase),
                                                     to_fb(a->to_phase));
    return Events{flat::finish(b, root, "ProjectPhaseAdvanced")};
  }
  const auto& ar = std::get<Archive>(c.v);
  const auto root =
      fb::CreateProjectArchived(b, flat::str(b, ar.project_id), flat::str(b, ar.reason));
  return Events{flat::finish(b, root, "ProjectArchived")};
}

namespace {

using Def = EventDef<State>;
using nlohmann::json;

constexpr auto kEvents = std::to_array<Def>({
    Def::of<fb::ProjectCreated>(
        "ProjectCreated",
        [](State& s, const fb::ProjectCreated& e) {
          s.created = true;
          s.name = e.name()->str();
        },
        [](json& j, const fb::ProjectCreated& e) {
          j["project_id"] = e.project_id()->str();
          j["name"] = e.name()->str();
          flat::put(j, "description", e.description());
        }),
    Def::of<fb::ProjectPhaseAdvanced>(
        "ProjectPhaseAdvanced",
        [](State& s, const fb::ProjectPhaseAdvanced& e) { return set_phase(s, e); },
        [](json& j, const fb::ProjectPhaseAdvanced& e) { return put_phases(j, e); }),
    Def::of<fb::ProjectPhaseReverted>(
        "ProjectPhaseReverted",
        [](State& s, const fb::ProjectPhaseReverted& e) { return set_phase(s, e); },
        [](json& j, const fb::ProjectPhaseReverted& e) {
          if (!put_phases(j, e)) return false;
          j["compensation_of"] = e.compensation_of()->str();
          j["reason"] = e.reason()->str();
          return true;
        }),
    Def::of<fb::ProjectArchived>(
        "ProjectArchived", [](State& s, const fb::ProjectArchived&) { s.archived = true; },
        [](json& j, const fb::ProjectArchived& e) {
          j["project_id"] = e.project_id()->str();
          j["reason"] = e.reason()->str();
        }),
});

}  // namespace

const EventTable<State>& events() {
  static constexpr EventTable<State> table{"project", kEvents};
  return table;
}

}  // namespace engram::commands::project
