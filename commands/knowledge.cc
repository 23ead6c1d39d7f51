#include "commands/knowledge.h"

#include <fmt/format.h>

#include <array>

#include "commands/agent.h"
#include "commands/errors.h"
#include "commands/event_table.h"
#include "commands/flat.h"
#include "commands/ids.h"
#include "commands/input.h"
#include "schemas/domain/knowledge_generated.h"

namespace engram::commands::knowledge {
namespace fb = engram::domain;

size_t State::approx_bytes() const {
  return sizeof(State) + owner.size();
}

namespace {

const std::string& knowledge_id(const Command& c) {
  return std::visit([](const auto& x) -> const std::string& { return x.knowledge_id; }, c.v);
}

// An embedder names what made an embedding; without an embedding it means
// nothing.
void check_embedder(Input& in, const std::optional<std::vector<float>>& embedding,
                    const std::optional<std::string>& embedder) {
  if (embedder && !embedding) {
    in.fail(malformed("/embedder", "invalid_field", "/embedder is only given with /embedding"));
  }
}

}  // namespace

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc) {
  Input in(body, pc.limits);
  Command c;
  if (type == "RecordKnowledge") {
    Record r;
    r.knowledge_id = in.optional_id("knowledge_id").value_or(pc.command_id);
    r.title = in.text("title");
    r.body = in.text("body");
    r.domain = in.id("domain");
    r.tags = in.optional_label_list("tags");
    r.source_agent = in.optional_id("source_agent");
    r.source_task = in.optional_id("source_task");
    r.confidence = in.fraction("confidence");
    r.embedding = in.optional_embedding("embedding");
    r.embedder = in.optional_label("embedder");
    check_embedder(in, r.embedding, r.embedder);
    c.v = std::move(r);
  } else if (type == "ReviseKnowledge") {
    Revise r;
    r.knowledge_id = in.id("knowledge_id");
    r.title = in.optional_text("title");
    r.body = in.optional_text("body");
    r.tags = in.optional_label_list("tags");
    r.confidence = in.optional_fraction("confidence");
    r.embedding = in.optional_embedding("embedding");
    r.embedder = in.optional_label("embedder");
    r.reason = in.optional_text("reason");
    check_embedder(in, r.embedding, r.embedder);
    if (!r.title && !r.body && !r.tags && !r.confidence && !r.embedding) {
      in.fail(malformed("", "missing_field",
                        "ReviseKnowledge needs at least one of title, body, tags, confidence, "
                        "embedding"));
    }
    c.v = std::move(r);
  } else if (type == "TransferKnowledge") {
    c.v = Transfer{in.id("knowledge_id"), in.id("to_agent")};
  } else {
    ENGRAM_ASSERT(type == "RetractKnowledge");
    c.v = Retract{in.id("knowledge_id"), in.text("reason")};
  }
  if (auto e = in.finish()) return *e;
  return c;
}

std::string_view type_of(const Command& c) {
  return type_name(c.v, kCommandTypes);
}

nlohmann::json to_json(const Command& c) {
  nlohmann::json j = nlohmann::json::object();
  if (!knowledge_id(c).empty()) j["knowledge_id"] = knowledge_id(c);
  if (const auto* r = std::get_if<Record>(&c.v)) {
    j["title"] = r->title;
    j["body"] = r->body;
    j["domain"] = r->domain;
    put_optional(j, "tags", r->tags);
    put_optional(j, "source_agent", r->source_agent);
    put_optional(j, "source_task", r->source_task);
    j["confidence"] = r->confidence;
    put_optional(j, "embedding", r->embedding);
    put_optional(j, "embedder", r->embedder);
  } else if (const auto* v = std::get_if<Revise>(&c.v)) {
    put_optional(j, "title", v->title);
    put_optional(j, "body", v->body);
    put_optional(j, "tags", v->tags);
    put_optional(j, "confidence", v->confidence);
    put_optional(j, "embedding", v->embedding);
    put_optional(j, "embedder", v->embedder);
    put_optional(j, "reason", v->reason);
  } else if (const auto* t = std::get_if<Transfer>(&c.v)) {
    j["to_agent"] = t->to_agent;
  } else {
    j["reason"] = std::get<Retract>(c.v).reason;
  }
  return j;
}

std::string stream(const Command& c) {
  return stream_name(kKnowledgeStreamPrefix, knowledge_id(c));
}

Needs needs(const Command& c) {
  Needs n;
  if (const auto* t = std::get_if<Transfer>(&c.v)) n.agent_id = t->to_agent;
  return n;
}

result<void> authorize(const Command& c, const Principal& p) {
  const auto* r = std::get_if<Record>(&c.v);
  if (r != nullptr && p.agent_id && r->source_agent && *r->source_agent != *p.agent_id) {
    return forbidden("not_self",
                     fmt::format("agent \"{}\" may record knowledge only as its own", *p.agent_id));
  }
  return {};
}

namespace {

result<Events> record(const State& s, const Record& r, const Context& ctx) {
  if (s.recorded) {
    return rule("knowledge_exists", fmt::format("knowledge \"{}\" already exists", r.knowledge_id));
  }
  // An agent records knowledge as its own unless it names a source itself.
  const std::optional<std::string> source =
      r.source_agent ? r.source_agent : ctx.principal.agent_id;
  flat::Builder b;
  const auto id = flat::str(b, r.knowledge_id);
  const auto title = flat::str(b, r.title);
  const auto body = flat::str(b, r.body);
  const auto domain = flat::str(b, r.domain);
  const auto tags = flat::strings(b, r.tags);
  const auto source_agent = flat::str(b, source);
  const auto source_task = flat::str(b, r.source_task);
  const auto embedding = flat::floats(b, r.embedding);
  const auto embedder = flat::str(b, r.embedder);
  fb::KnowledgeRecordedBuilder kb(b);
  kb.add_knowledge_id(id);
  kb.add_title(title);
  kb.add_body(body);
  kb.add_domain(domain);
  kb.add_tags(tags);
  kb.add_source_agent(source_agent);
  kb.add_source_task(source_task);
  kb.add_confidence(r.confidence);
  kb.add_embedding(embedding);
  kb.add_embedder(embedder);
  return Events{flat::finish(b, kb.Finish(), "KnowledgeRecorded")};
}

result<Events> revise(const Revise& r) {
  flat::Builder b;
  const auto id = flat::str(b, r.knowledge_id);
  const auto title = flat::str(b, r.title);
  const auto body = flat::str(b, r.body);
  const auto tags = flat::strings(b, r.tags);
  const auto embedding = flat::floats(b, r.embedding);
  const auto embedder = flat::str(b, r.embedder);
  const auto reason = flat::str(b, r.reason);
  fb::KnowledgeRevisedBuilder kb(b);
  kb.add_knowledge_id(id);
  kb.add_title(title);
  kb.add_body(body);
  kb.add_tags(tags);
  if (r.confidence) kb.add_confidence(*r.confidence);
  kb.add_embedding(embedding);
  kb.add_embedder(embedder);
  kb.add_reason(reason);
  return Events{flat::finish(b, kb.Finish(), "KnowledgeRevised")};
}

result<Events> transfer(const State& s, const Transfer& t, const Context& ctx) {
  ENGRAM_ASSERT(ctx.agent != nullptr);
  if (!ctx.agent->registered) {
    return not_found("agent_not_found", fmt::format("no agent \"{}\" is registered", t.to_agent));
  }
  if (ctx.agent->status == agent::Status::retired) {
    return rule("agent_retired", fmt::format("agent \"{}\" is retired", t.to_agent));
  }
  if (s.owner == t.to_agent) {
    return rule("already_owner", fmt::format("agent \"{}\" already owns knowledge \"{}\"",
                                             t.to_agent, t.knowledge_id));
  }
  flat::Builder b;
  const auto root = fb::CreateKnowledgeTransferred(b, flat::str(b, t.knowledge_id),
                                                   s.owner.empty() ? 0 : flat::str(b, s.owner),
                                                   flat::str(b, t.to_agent));
  return Events{flat::finish(b, root, "KnowledgeTransferred")};
}

}  // namespace

result<Events> decide(const State& s, const Command& c, const Context& ctx) {
  if (const auto* r = std::get_if<Record>(&c.v)) return record(s, *r, ctx);
  const std::string& id = knowledge_id(c);
  if (!s.recorded) return not_found("knowledge_not_found", fmt::format("no knowledge \"{}\"", id));
  // Agents change only what they own; people (no agent scope) curate all.
  if (ctx.principal.agent_id && *ctx.principal.agent_id != s.owner) {
    return forbidden("not_owner", fmt::format("agent \"{}\" does not own knowledge \"{}\"",
                                              *ctx.principal.agent_id, id));
  }
  if (s.retracted)
    return rule("knowledge_retracted", fmt::format("knowledge \"{}\" is retracted", id));
  if (const auto* r = std::get_if<Revise>(&c.v)) return revise(*r);
  if (const auto* t = std::get_if<Transfer>(&c.v)) return transfer(s, *t, ctx);
  const auto& re = std::get<Retract>(c.v);
  flat::Builder b;
  const auto root =
      fb::CreateKnowledgeRetracted(b, flat::str(b, re.knowledge_id), flat::str(b, re.reason));
  return Events{flat::finish(b, root, "KnowledgeRetracted")};
}

namespace {

using Def = EventDef<State>;
using nlohmann::json;

constexpr auto kEvents = std::to_array<Def>({
    Def::of<fb::KnowledgeRecorded>(
        "KnowledgeRecorded",
        [](State& s, const fb::KnowledgeRecorded& e) {
          s.recorded = true;
          s.owner = flat::text(e.source_agent());
        },
        [](json& j, const fb::KnowledgeRecorded& e) {
          j["knowledge_id"] = e.knowledge_id()->str();
          j["title"] = e.title()->str();
          j["body"] = e.body()->str();
          j["domain"] = e.domain()->str();
          j["tags"] = flat::texts(e.tags());
          flat::put(j, "source_agent", e.source_agent());
          flat::put(j, "source_task", e.source_task());
          j["confidence"] = e.confidence();
          flat::put(j, "embedding", e.embedding());
          flat::put(j, "embedder", e.embedder());
        }),
    Def::of<fb::KnowledgeRevised>(
        "KnowledgeRevised", [](State&, const fb::KnowledgeRevised&) {},
        [](json& j, const fb::KnowledgeRevised& e) {
          j["knowledge_id"] = e.knowledge_id()->str();
          flat::put(j, "title", e.title());
          flat::put(j, "body", e.body());
          flat::put(j, "tags", e.tags());
          if (e.confidence()) j["confidence"] = *e.confidence();
          flat::put(j, "embedding", e.embedding());
          flat::put(j, "embedder", e.embedder());
          flat::put(j, "reason", e.reason());
        }),
    Def::of<fb::KnowledgeTransferred>(
        "KnowledgeTransferred",
        [](State& s, const fb::KnowledgeTransferred& e) { s.owner = e.to_agent()->str(); },
        [](json& j, const fb::KnowledgeTransferred& e) {
          j["knowledge_id"] = e.knowledge_id()->str();
          flat::put(j, "from_agent", e.from_agent());
          j["to_agent"] = e.to_agent()->str();
        }),
    Def::of<fb::KnowledgeRetracted>(
        "KnowledgeRetracted", [](State& s, const fb::KnowledgeRetracted&) { s.retracted = true; },
        [](json& j, const fb::KnowledgeRetracted& e) {
          j["knowledge_id"] = e.knowledge_id()->str();
          j["reason"] = e.reason()->str();
        }),
});

}  // namespace

const EventTable<State>& events() {
  static constexpr EventTable<State> table{"knowledge", kEvents};
  return table;
}

}  // namespace engram::commands::knowledge
