#include "commands/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "commands/errors.h"
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

// A map node's overhead beyond its key's characters, for approx_bytes().
inline constexpr size_t kMemoryEntryBytes = 64;

size_t State::approx_bytes() const {
  return sizeof(State) + id_bytes + memories.size() * kMemoryEntryBytes;
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

std::string stream(const Command& c) {
  return stream_name(kMemoryStreamPrefix, owner_of(c));
}

Needs needs(const Command& c) {
  Needs n;
  if (std::holds_alternative<Store>(c.v)) {
    n.key = KeyUse::seal;
    n.key_owner = owner_of(c);
  } else if (std::holds_alternative<ForgetSubject>(c.v)) {
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

result<Events> store(const State& s, const Store& m, const Context& ctx) {
  ENGRAM_ASSERT(ctx.key.has_value());
  if (s.memories.contains(m.memory_id)) {
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
  return Events{flat::finish(b, mb.Finish(), "MemoryStored")};
}

result<const Memory*> live_memory(const State& s, std::string_view owner,
                                  const std::string& memory_id) {
  const auto it = s.memories.find(memory_id);
  if (it == s.memories.end()) {
    return not_found("memory_not_found",
                     fmt::format("no memory \"{}\" of \"{}\"", memory_id, owner));
  }
  if (it->second.forgotten) {
    return rule("memory_forgotten",
                fmt::format("memory \"{}\" of \"{}\" is forgotten", memory_id, owner));
  }
  return &it->second;
}

}  // namespace

result<Events> decide(const State& s, const Command& c, const Context& ctx) {
  if (const auto* m = std::get_if<Store>(&c.v)) return store(s, *m, ctx);
  flat::Builder b;
  if (const auto* r = std::get_if<Reinforce>(&c.v)) {
    auto memory = live_memory(s, r->owner, r->memory_id);
    if (!memory) return memory.error();
    const double importance = std::min(1.0, (*memory)->importance + r->amount);
    const auto root = fb::CreateMemoryReinforced(b, flat::str(b, r->owner),
                                                 flat::str(b, r->memory_id), r->amount, importance);
    return Events{flat::finish(b, root, "MemoryReinforced")};
  }
  if (const auto* f = std::get_if<Forget>(&c.v)) {
    if (auto memory = live_memory(s, f->owner, f->memory_id); !memory) return memory.error();
    const auto root =
        fb::CreateMemoryForgotten(b, flat::str(b, f->owner), flat::str(b, f->memory_id));
    return Events{flat::finish(b, root, "MemoryForgotten")};
  }
  const auto& fs = std::get<ForgetSubject>(c.v);
  const auto root = fb::CreateSubjectForgotten(b, flat::str(b, fs.owner), ctx.destroyed_generation,
                                               flat::str(b, fs.reason));
  return Events{flat::finish(b, root, "SubjectForgotten")};
}

core::result<void> evolve(State& s, std::string_view type, std::span<const uint8_t> payload) {
  const flat::Aligned bytes(payload);
  const auto corrupt = [&] {
    return core::make_error(core::errc::corruption,
                            fmt::format("{} payload does not verify", type));
  };
  if (type == "MemoryStored") {
    const auto* e = flat::verified<fb::MemoryStored>(bytes);
    if (e == nullptr) return corrupt();
    const auto [it, added] =
        s.memories.insert_or_assign(e->memory_id()->str(), Memory{e->importance(), false});
    if (added) s.id_bytes += it->first.size();
  } else if (type == "MemoryReinforced") {
    const auto* e = flat::verified<fb::MemoryReinforced>(bytes);
    if (e == nullptr) return corrupt();
    const auto it = s.memories.find(e->memory_id()->str());
    if (it == s.memories.end()) return corrupt();
    it->second.importance = e->importance();
  } else if (type == "MemoryForgotten") {
    const auto* e = flat::verified<fb::MemoryForgotten>(bytes);
    if (e == nullptr) return corrupt();
    const auto it = s.memories.find(e->memory_id()->str());
    if (it == s.memories.end()) return corrupt();
    it->second.forgotten = true;
  } else if (type == "SubjectForgotten") {
    if (flat::verified<fb::SubjectForgotten>(bytes) == nullptr) return corrupt();
    for (auto& [id, m] : s.memories) m.forgotten = true;
  } else {
    return core::make_error(core::errc::corruption,
                            fmt::format("\"{}\" is not a memory event", type));
  }
  return {};
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

}  // namespace

std::optional<nlohmann::json> render(std::string_view type, std::span<const uint8_t> payload,
                                     const RenderContext& rc) {
  const flat::Aligned bytes(payload);
  nlohmann::json j = nlohmann::json::object();
  if (type == "MemoryStored") {
    const auto* e = flat::verified<fb::MemoryStored>(bytes);
    if (e == nullptr) return std::nullopt;
    j["owner"] = e->owner()->str();
    j["memory_id"] = e->memory_id()->str();
    j["key_generation"] = e->key_generation();
    j["importance"] = e->importance();
    j["tags"] = flat::texts(e->tags());
    flat::put(j, "embedder", e->embedder());
    render_sealed(j, *e, rc);
  } else if (type == "MemoryReinforced") {
    const auto* e = flat::verified<fb::MemoryReinforced>(bytes);
    if (e == nullptr) return std::nullopt;
    j["owner"] = e->owner()->str();
    j["memory_id"] = e->memory_id()->str();
    j["amount"] = e->amount();
    j["importance"] = e->importance();
  } else if (type == "MemoryForgotten") {
    const auto* e = flat::verified<fb::MemoryForgotten>(bytes);
    if (e == nullptr) return std::nullopt;
    j["owner"] = e->owner()->str();
    j["memory_id"] = e->memory_id()->str();
  } else if (type == "SubjectForgotten") {
    const auto* e = flat::verified<fb::SubjectForgotten>(bytes);
    if (e == nullptr) return std::nullopt;
    j["owner"] = e->owner()->str();
    j["key_generation"] = e->key_generation();
    flat::put(j, "reason", e->reason());
  } else {
    return std::nullopt;
  }
  return j;
}

}  // namespace engram::commands::memory
