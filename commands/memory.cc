#include "commands/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include "commands/errors.h"
#include "commands/event_table.h"
#include "commands/flat.h"
#include "commands/ids.h"
#include "commands/input.h"
#include "core/crypto.h"
#include "schemas/domain/memories_generated.h"
#include "schemas/domain/memory_seal.h"

namespace engram::commands::memory {
namespace fb = engram::domain;

// Embeddings are sealed as their raw float32 bytes, little-endian.
static_assert(std::endian::native == std::endian::little);

size_t State::approx_bytes() const {
  return sizeof(State);
}

namespace {

const std::string& owner_of(const Command& c) {
  return std::visit([](const auto& x) -> const std::string& { return x.owner; }, c.v);
}

}  // namespace

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc) {
  Input in(body, pc.limits);
  Command c;
  if (type == "StoreMemory") {
    Store s;
    s.owner = in.id("owner");
    s.memory_id = in.optional_id("memory_id").value_or(pc.command_id);
    s.content = in.text("content");
    s.importance = in.fraction("importance");
    s.tags = in.optional_label_list("tags");
    s.embedding = in.optional_embedding("embedding");
    s.embedder = in.optional_label("embedder");
    if (s.embedder && !s.embedding) {
      in.fail(malformed("/embedder", "invalid_field", "/embedder is only given with /embedding"));
    }
    c.v = std::move(s);
  } else if (type == "ReinforceMemory") {
    Reinforce r;
    r.owner = in.id("owner");
    r.memory_id = in.id("memory_id");
    r.amount = in.optional_fraction("amount").value_or(kDefaultReinforcement);
    c.v = std::move(r);
  } else if (type == "ForgetMemory") {
    c.v = Forget{in.id("owner"), in.id("memory_id")};
  } else {
    ENGRAM_ASSERT(type == "ForgetSubject");
    c.v = ForgetSubject{in.id("owner"), in.optional_text("reason")};
  }
  if (auto e = in.finish()) return *e;
  return c;
}

std::string_view type_of(const Command& c) {
  return type_name(c.v, kCommandTypes);
}

nlohmann::json to_json(const Command& c) {
  nlohmann::json j = {{"owner", owner_of(c)}};
  if (const auto* s = std::get_if<Store>(&c.v)) {
    if (!s->memory_id.empty()) j["memory_id"] = s->memory_id;
    j["content"] = s->content;
    j["importance"] = s->importance;
    put_optional(j, "tags", s->tags);
    put_optional(j, "embedding", s->embedding);
    put_optional(j, "embedder", s->embedder);
  } else if (const auto* r = std::get_if<Reinforce>(&c.v)) {
    j["memory_id"] = r->memory_id;
    j["amount"] = r->amount;
  } else if (const auto* f = std::get_if<Forget>(&c.v)) {
    j["memory_id"] = f->memory_id;
  } else {
    put_optional(j, "reason", std::get<ForgetSubject>(c.v).reason);
  }
  return j;
}

std::string stream(const Command& c) {
  return stream_name(kMemoryStreamPrefix, owner_of(c));
}

Needs needs(const Command& c) {
  Needs n;
  if (const auto* s = std::get_if<Store>(&c.v)) {
    n.key = KeyUse::seal;
    n.key_owner = s->owner;
    n.entity = s->memory_id;
  } else if (const auto* r = std::get_if<Reinforce>(&c.v)) {
    n.entity = r->memory_id;
  } else if (const auto* f = std::get_if<Forget>(&c.v)) {
    n.entity = f->memory_id;
  } else {
    n.key = KeyUse::destroy;
    n.key_owner = owner_of(c);
  }
  return n;
}

result<void> authorize(const Command& c, const Principal& p) {
  if (p.agent_id && *p.agent_id != owner_of(c)) {
    return forbidden("not_own_memory",
                     fmt::format("agent \"{}\" may touch only its own memories, not those of "
                                 "\"{}\"",
                                 *p.agent_id, owner_of(c)));
  }
  return {};
}

namespace {

result<Events> store(const Store& m, const Context& ctx) {
  ENGRAM_ASSERT(ctx.key.has_value());
  // Any event of the id, even a forgotten memory's: ids are never reused.
  if (ctx.entity_event) {
    return rule("memory_exists",
                fmt::format("memory \"{}\" of \"{}\" already exists", m.memory_id, m.owner));
  }
  // The event id makes each seal's nonce unique; a retry with the same id
  // and key seals to the same bytes, so it stays idempotent.
  const std::string seed = ctx.ids.at(0).to_string();
  const std::string content = core::aead_seal(ctx.key->key, seed, m.content,
                                              domain::memory_content_aad(m.owner, m.memory_id));
  std::string embedding;
  if (m.embedding) {
    const std::string_view raw(reinterpret_cast<const char*>(m.embedding->data()),
                               m.embedding->size() * sizeof(float));
    embedding = core::aead_seal(ctx.key->key, seed + "/embedding", raw,
                                domain::memory_embedding_aad(m.owner, m.memory_id));
  }
  flat::Builder b;
  const auto owner = flat::str(b, m.owner);
  const auto memory_id = flat::str(b, m.memory_id);
  const auto sealed_content = flat::bytes(b, content);
  const auto sealed_embedding = m.embedding ? flat::bytes(b, embedding) : 0;
  const auto embedder = flat::str(b, m.embedder);
  const auto tags = flat::strings(b, m.tags);
  fb::MemoryStoredBuilder mb(b);
  mb.add_owner(owner);
  mb.add_memory_id(memory_id);
  mb.add_key_generation(ctx.key->generation);
  mb.add_sealed_content(sealed_content);
  mb.add_sealed_embedding(sealed_embedding);
  mb.add_embedder(embedder);
  mb.add_importance(m.importance);
  mb.add_tags(tags);
  return Events{flat::finish(b, mb.Finish(), kStoredEvent)};
}

result<Memory> live_memory(const State& s, const Context& ctx, std::string_view owner,
                           const std::string& memory_id) {
  if (!ctx.entity_event) {
    return not_found("memory_not_found",
                     fmt::format("no memory \"{}\" of \"{}\"", memory_id, owner));
  }
  auto m = memory_of(s, *ctx.entity_event);
  if (!m) {
    return internal("corrupt_event", fmt::format("memory \"{}\" of \"{}\": {}", memory_id, owner,
                                                 m.error().message));
  }
  if (m->forgotten) {
    return rule("memory_forgotten",
                fmt::format("memory \"{}\" of \"{}\" is forgotten", memory_id, owner));
  }
  return *m;
}

}  // namespace

result<Events> decide(const State& s, const Command& c, const Context& ctx) {
  if (const auto* m = std::get_if<Store>(&c.v)) return store(*m, ctx);
  flat::Builder b;
  if (const auto* r = std::get_if<Reinforce>(&c.v)) {
    auto memory = live_memory(s, ctx, r->owner, r->memory_id);
    if (!memory) return memory.error();
    const double importance = std::min(1.0, memory->importance + r->amount);
    const auto root = fb::CreateMemoryReinforced(b, flat::str(b, r->owner),
                                                 flat::str(b, r->memory_id), r->amount, importance);
    return Events{flat::finish(b, root, "MemoryReinforced")};
  }
  if (const auto* f = std::get_if<Forget>(&c.v)) {
    if (auto memory = live_memory(s, ctx, f->owner, f->memory_id); !memory) {
      return memory.error();
    }
    const auto root =
        fb::CreateMemoryForgotten(b, flat::str(b, f->owner), flat::str(b, f->memory_id));
    return Events{flat::finish(b, root, "MemoryForgotten")};
  }
  const auto& fs = std::get<ForgetSubject>(c.v);
  const auto root = fb::CreateSubjectForgotten(b, flat::str(b, fs.owner), ctx.destroyed_generation,
                                               flat::str(b, fs.reason));
  return Events{flat::finish(b, root, "SubjectForgotten")};
}

namespace {

void render_sealed(nlohmann::json& j, const fb::MemoryStored& e, const RenderContext& rc) {
  const std::string owner = e.owner()->str();
  const std::string memory_id = e.memory_id()->str();
  auto key = rc.keys.get(owner);
  const bool live = key && key->has_value() && (*key)->generation == e.key_generation();
  j["content"] = nullptr;
  if (e.sealed_embedding() != nullptr) j["embedding"] = nullptr;
  j["content_forgotten"] = !live;
  if (!live) return;
  const core::AeadKey& k = (*key)->key;
  if (auto content = core::aead_open(k, flat::view(e.sealed_content()),
                                     domain::memory_content_aad(owner, memory_id))) {
    j["content"] = std::move(*content);
  }
  if (e.sealed_embedding() == nullptr) return;
  auto raw = core::aead_open(k, flat::view(e.sealed_embedding()),
                             domain::memory_embedding_aad(owner, memory_id));
  if (!raw || raw->size() % sizeof(float) != 0) return;
  std::vector<float> values(raw->size() / sizeof(float));
  std::memcpy(values.data(), raw->data(), raw->size());
  j["embedding"] = flat::floats_json(values);
}

using Def = EventDef<State, Memory>;
using nlohmann::json;

std::string memory_id_of(const auto& e) {
  return e.memory_id()->str();
}

constexpr auto kEvents = std::to_array<Def>({
    Def::of<fb::MemoryStored>(
        kStoredEvent, [](State&, const fb::MemoryStored&) {},
        [](json& j, const fb::MemoryStored& e, const RenderContext& rc) {
          j["owner"] = e.owner()->str();
          j["memory_id"] = e.memory_id()->str();
          j["key_generation"] = e.key_generation();
          j["importance"] = e.importance();
          j["tags"] = flat::texts(e.tags());
          flat::put(j, "embedder", e.embedder());
          render_sealed(j, e, rc);
        },
        [](const fb::MemoryStored& e) { return memory_id_of(e); },
        [](Memory& m, const fb::MemoryStored& e) {
          m = Memory{e.importance(), false};
        }),
    Def::of<fb::MemoryReinforced>(
        "MemoryReinforced", [](State&, const fb::MemoryReinforced&) {},
        [](json& j, const fb::MemoryReinforced& e) {
          j["owner"] = e.owner()->str();
          j["memory_id"] = e.memory_id()->str();
          j["amount"] = e.amount();
          j["importance"] = e.importance();
        },
        [](const fb::MemoryReinforced& e) { return memory_id_of(e); },
        [](Memory& m, const fb::MemoryReinforced& e) {
          m = Memory{e.importance(), false};
        }),
    Def::of<fb::MemoryForgotten>(
        "MemoryForgotten", [](State&, const fb::MemoryForgotten&) {},
        [](json& j, const fb::MemoryForgotten& e) {
          j["owner"] = e.owner()->str();
          j["memory_id"] = e.memory_id()->str();
        },
        [](const fb::MemoryForgotten& e) { return memory_id_of(e); },
        [](Memory& m, const fb::MemoryForgotten&) { m.forgotten = true; }),
    Def::of<fb::SubjectForgotten>(
        "SubjectForgotten",
        [](State& s, const fb::SubjectForgotten&, uint64_t version) { s.forgotten_at = version; },
        [](json& j, const fb::SubjectForgotten& e) {
          j["owner"] = e.owner()->str();
          j["key_generation"] = e.key_generation();
          flat::put(j, "reason", e.reason());
        },
        [](const fb::SubjectForgotten&) { return std::string(kSubjectEntity); },
        [](Memory& m, const fb::SubjectForgotten&) { m.forgotten = true; }),
});

}  // namespace

const EventTable<State, Memory>& events() {
  static constexpr EventTable<State, Memory> table{"memory", kEvents};
  return table;
}

core::result<Memory> memory_of(const State& s, const EventView& latest) {
  Memory m;
  if (auto r = events().evolve_entity(m, latest); !r) return r.error();
  if (latest.version < s.forgotten_at) m.forgotten = true;
  return m;
}

}  // namespace engram::commands::memory
