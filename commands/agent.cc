#include "commands/agent.h"

#include <fmt/format.h>

#include <array>

#include "commands/errors.h"
#include "commands/event_table.h"
#include "commands/flat.h"
#include "commands/ids.h"
#include "commands/input.h"
#include "schemas/domain/agents_generated.h"

namespace engram::commands::agent {
namespace fb = engram::domain;

const char* status_name(Status s) {
  switch (s) {
    case Status::active:
      return "active";
    case Status::suspended:
      return "suspended";
    case Status::retired:
      return "retired";
  }
  return "unknown";
}

size_t State::approx_bytes() const {
  size_t n = sizeof(State) + name.size() + config.size();
  for (const auto& c : capabilities) n += sizeof(std::string) + c.size();
  for (const auto& d : domains) n += sizeof(std::string) + d.size();
  return n;
}

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc) {
  Input in(body, pc.limits);
  Command c;
  if (type == "RegisterAgent") {
    Register r;
    r.agent_id = in.id("agent_id");
    r.name = in.text("name");
    r.kind = in.optional_label("kind");
    r.capabilities = in.optional_id_list("capabilities").value_or(std::vector<std::string>());
    r.domains = in.optional_id_list("domains").value_or(std::vector<std::string>());
    r.config = in.optional_object("config").value_or(std::string());
    c.v = std::move(r);
  } else if (type == "AdaptAgent") {
    Adapt a;
    a.agent_id = in.id("agent_id");
    a.capabilities = in.optional_id_list("capabilities");
    a.domains = in.optional_id_list("domains");
    a.config = in.optional_object("config");
    if (!a.capabilities && !a.domains && !a.config) {
      in.fail(malformed("", "missing_field",
                        "AdaptAgent needs at least one of capabilities, domains, config"));
    }
    c.v = std::move(a);
  } else if (type == "SuspendAgent") {
    c.v = Suspend{in.id("agent_id"), in.text("reason")};
  } else {
    ENGRAM_ASSERT(type == "RetireAgent");
    c.v = Retire{in.id("agent_id"), in.text("reason")};
  }
  if (auto e = in.finish()) return *e;
  return c;
}

namespace {

const std::string& agent_id(const Command& c) {
  return std::visit([](const auto& x) -> const std::string& { return x.agent_id; }, c.v);
}

CommandError unknown_agent(std::string_view id) {
  return not_found("agent_not_found", fmt::format("no agent \"{}\" is registered", id));
}

}  // namespace

std::string_view type_of(const Command& c) {
  return type_name(c.v, kCommandTypes);
}

nlohmann::json to_json(const Command& c) {
  nlohmann::json j = {{"agent_id", agent_id(c)}};
  if (const auto* r = std::get_if<Register>(&c.v)) {
    j["name"] = r->name;
    put_optional(j, "kind", r->kind);
    j["capabilities"] = r->capabilities;
    j["domains"] = r->domains;
    if (!r->config.empty()) j["config"] = object_json(r->config);
  } else if (const auto* a = std::get_if<Adapt>(&c.v)) {
    put_optional(j, "capabilities", a->capabilities);
    put_optional(j, "domains", a->domains);
    if (a->config) j["config"] = object_json(*a->config);
  } else if (const auto* s = std::get_if<Suspend>(&c.v)) {
    j["reason"] = s->reason;
  } else {
    j["reason"] = std::get<Retire>(c.v).reason;
  }
  return j;
}

std::string stream(const Command& c) {
  return stream_name(kAgentStreamPrefix, agent_id(c));
}

Needs needs(const Command&) {
  return {};
}

result<void> authorize(const Command& c, const Principal& p) {
  if (p.agent_id && *p.agent_id != agent_id(c)) {
    return forbidden("not_self", fmt::format("agent \"{}\" may act only on itself, not on \"{}\"",
                                             *p.agent_id, agent_id(c)));
  }
  return {};
}

result<Events> decide(const State& s, const Command& c, const Context&) {
  flat::Builder b;
  if (const auto* r = std::get_if<Register>(&c.v)) {
    if (s.registered) {
      return rule("agent_already_registered",
                  fmt::format("agent \"{}\" is already registered", r->agent_id));
    }
    const auto root = fb::CreateAgentRegistered(
        b, flat::str(b, r->agent_id), flat::str(b, r->name), flat::str(b, r->kind),
        flat::strings(b, r->capabilities), flat::strings(b, r->domains),
        r->config.empty() ? 0 : flat::bytes(b, r->config));
    return Events{flat::finish(b, root, "AgentRegistered")};
  }
  if (!s.registered) return unknown_agent(agent_id(c));
  if (const auto* a = std::get_if<Adapt>(&c.v)) {
    if (s.status == Status::retired) {
      return rule("agent_retired", fmt::format("agent \"{}\" is retired", a->agent_id));
    }
    const std::string& config = a->config ? *a->config : s.config;
    const auto root = fb::CreateAgentAdapted(
        b, flat::str(b, a->agent_id), flat::strings(b, a->capabilities.value_or(s.capabilities)),
        flat::strings(b, a->domains.value_or(s.domains)),
        config.empty() ? 0 : flat::bytes(b, config));
    return Events{flat::finish(b, root, "AgentAdapted")};
  }
  if (const auto* su = std::get_if<Suspend>(&c.v)) {
    if (s.status != Status::active) {
      return rule("agent_not_active",
                  fmt::format("agent \"{}\" is {}", su->agent_id, status_name(s.status)));
    }
    const auto root =
        fb::CreateAgentSuspended(b, flat::str(b, su->agent_id), flat::str(b, su->reason));
    return Events{flat::finish(b, root, "AgentSuspended")};
  }
  const auto& re = std::get<Retire>(c.v);
  if (s.status == Status::retired) {
    return rule("agent_retired", fmt::format("agent \"{}\" is already retired", re.agent_id));
  }
  const auto root = fb::CreateAgentRetired(b, flat::str(b, re.agent_id), flat::str(b, re.reason));
  return Events{flat::finish(b, root, "AgentRetired")};
}

namespace {

using Def = EventDef<State>;
using nlohmann::json;

constexpr auto kEvents = std::to_array<Def>({
    Def::of<fb::AgentRegistered>(
        "AgentRegistered",
        [](State& s, const fb::AgentRegistered& e) {
          s.registered = true;
          s.status = Status::active;
          s.name = e.name()->str();
          s.capabilities = flat::texts(e.capabilities());
          s.domains = flat::texts(e.domains());
          s.config = std::string(flat::view(e.config()));
        },
        [](json& j, const fb::AgentRegistered& e) {
          j["agent_id"] = e.agent_id()->str();
          j["name"] = e.name()->str();
          flat::put(j, "kind", e.kind());
          j["capabilities"] = flat::texts(e.capabilities());
          j["domains"] = flat::texts(e.domains());
          j["config"] = flat::flex_json(e.config());
        }),
    Def::of<fb::AgentAdapted>(
        "AgentAdapted",
        [](State& s, const fb::AgentAdapted& e) {
          s.capabilities = flat::texts(e.capabilities());
          s.domains = flat::texts(e.domains());
          s.config = std::string(flat::view(e.config()));
        },
        [](json& j, const fb::AgentAdapted& e) {
          j["agent_id"] = e.agent_id()->str();
          j["capabilities"] = flat::texts(e.capabilities());
          j["domains"] = flat::texts(e.domains());
          j["config"] = flat::flex_json(e.config());
        }),
    Def::of<fb::AgentSuspended>(
        "AgentSuspended", [](State& s, const fb::AgentSuspended&) { s.status = Status::suspended; },
        [](json& j, const fb::AgentSuspended& e) {
          j["agent_id"] = e.agent_id()->str();
          j["reason"] = e.reason()->str();
        }),
    Def::of<fb::AgentRetired>(
        "AgentRetired", [](State& s, const fb::AgentRetired&) { s.status = Status::retired; },
        [](json& j, const fb::AgentRetired& e) {
          j["agent_id"] = e.agent_id()->str();
          j["reason"] = e.reason()->str();
        }),
});

}  // namespace

const EventTable<State>& events() {
  static constexpr EventTable<State> table{"agent", kEvents};
  return table;
}

}  // namespace engram::commands::agent
