#include "commands/pattern.h"

#include <fmt/format.h>

#include <array>

#include "commands/errors.h"
#include "commands/event_table.h"
#include "commands/flat.h"
#include "commands/ids.h"
#include "commands/input.h"
#include "schemas/domain/patterns_generated.h"

namespace engram::commands::pattern {
namespace fb = engram::domain;

size_t State::approx_bytes() const {
  return sizeof(State);
}

namespace {

const std::string& pattern_of(const Command& c) {
  return std::visit([](const auto& x) -> const std::string& { return x.pattern_id; }, c.v);
}

}  // namespace

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc) {
  Input in(body, pc.limits);
  Command c;
  if (type == "ObservePattern") {
    Observe o;
    o.domain = in.id("domain");
    o.signature = in.text("signature");
    o.pattern_id = pattern_id(o.domain, o.signature);
    o.context = in.optional_object("context").value_or(std::string());
    o.success = in.choice("outcome", kOutcomeNames) == 0;
    o.reward = in.number("reward", kMaxRewardMagnitude);
    o.agent_id = in.optional_id("agent_id");
    c.v = std::move(o);
  } else {
    ENGRAM_ASSERT(type == "RetirePattern");
    Retire r;
    if (in.has("pattern_id")) {
      if (in.has("domain") || in.has("signature")) {
        in.fail(
            malformed("/pattern_id", "invalid_field",
                      "name the pattern by /pattern_id or by /domain and /signature, not both"));
      }
      r.pattern_id = in.id("pattern_id");
      if (!r.pattern_id.empty() && !valid_pattern_id(r.pattern_id)) {
        in.fail(malformed(
            "/pattern_id", "invalid_field",
            fmt::format("/pattern_id must be {} lowercase hex digits", kPatternIdHexDigits)));
      }
    } else {
      const std::string domain = in.id("domain");
      const std::string signature = in.text("signature");
      r.pattern_id = pattern_id(domain, signature);
    }
    r.reason = in.text("reason");
    c.v = std::move(r);
  }
  if (auto e = in.finish()) return *e;
  return c;
}

std::string_view type_of(const Command& c) {
  return type_name(c.v, kCommandTypes);
}

nlohmann::json to_json(const Command& c) {
  nlohmann::json j = nlohmann::json::object();
  if (const auto* o = std::get_if<Observe>(&c.v)) {
    // The pattern id is derived from these two.
    j["domain"] = o->domain;
    j["signature"] = o->signature;
    if (!o->context.empty()) j["context"] = object_json(o->context);
    j["outcome"] = kOutcomeNames[o->success ? 0 : 1];
    j["reward"] = o->reward;
    put_optional(j, "agent_id", o->agent_id);
  } else {
    const auto& r = std::get<Retire>(c.v);
    j["pattern_id"] = r.pattern_id;
    j["reason"] = r.reason;
  }
  return j;
}

std::string stream(const Command& c) {
  return stream_name(kPatternStreamPrefix, pattern_of(c));
}

Needs needs(const Command&) {
  return {};
}

result<void> authorize(const Command& c, const Principal& p) {
  const auto* o = std::get_if<Observe>(&c.v);
  if (o != nullptr && p.agent_id && o->agent_id && *o->agent_id != *p.agent_id) {
    return forbidden("not_self",
                     fmt::format("agent \"{}\" may observe patterns only as itself", *p.agent_id));
  }
  return {};
}

result<Events> decide(const State& s, const Command& c, const Context& ctx) {
  flat::Builder b;
  if (const auto* o = std::get_if<Observe>(&c.v)) {
    if (s.retired) {
      return rule("pattern_retired", fmt::format("pattern {} is retired", o->pattern_id));
    }
    const std::optional<std::string> agent_id = o->agent_id ? o->agent_id : ctx.principal.agent_id;
    const auto root = fb::CreatePatternObserved(
        b, flat::str(b, o->pattern_id), flat::str(b, o->domain), flat::str(b, o->signature),
        o->context.empty() ? 0 : flat::bytes(b, o->context),
        o->success ? fb::PatternOutcome::success : fb::PatternOutcome::failure, o->reward,
        flat::str(b, agent_id));
    return Events{flat::finish(b, root, "PatternObserved")};
  }
  const auto& r = std::get<Retire>(c.v);
  if (!s.observed) {
    return not_found("pattern_not_found", fmt::format("no pattern {} was observed", r.pattern_id));
  }
  if (s.retired) {
    return rule("pattern_retired", fmt::format("pattern {} is already retired", r.pattern_id));
  }
  const auto root = fb::CreatePatternRetired(b, flat::str(b, r.pattern_id), flat::str(b, r.reason));
  return Events{flat::finish(b, root, "PatternRetired")};
}

namespace {

using Def = EventDef<State>;
using nlohmann::json;

constexpr auto kEvents = std::to_array<Def>({
    Def::of<fb::PatternObserved>(
        "PatternObserved", [](State& s, const fb::PatternObserved&) { s.observed = true; },
        [](json& j, const fb::PatternObserved& e) {
          if (static_cast<size_t>(e.outcome()) >= kOutcomeNames.size()) return false;
          j["pattern_id"] = e.pattern_id()->str();
          j["domain"] = e.domain()->str();
          j["signature"] = e.signature()->str();
          j["context"] = flat::flex_json(e.context());
          j["outcome"] = kOutcomeNames[static_cast<size_t>(e.outcome())];
          j["reward"] = e.reward();
          flat::put(j, "agent_id", e.agent_id());
          return true;
        }),
    Def::of<fb::PatternRetired>(
        "PatternRetired", [](State& s, const fb::PatternRetired&) { s.retired = true; },
        [](json& j, const fb::PatternRetired& e) {
          j["pattern_id"] = e.pattern_id()->str();
          j["reason"] = e.reason()->str();
        }),
});

}  // namespace

const EventTable<State>& events() {
  static constexpr EventTable<State> table{"pattern", kEvents};
  return table;
}

}  // namespace engram::commands::pattern
