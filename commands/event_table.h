#pragma once

// One aggregate's events, each declared once: its type name, the FlatBuffer
// table of its payload (schemas/domain/), how it changes the aggregate's
// state (evolve), its JSON "data" (render) and, where one stream holds many
// entities (a memory owner's memories), which entity it is about and what it
// says about that entity. The aggregate's evolve, the renderers, the entity
// extractor of the log's entity index and the lists of event types all read
// the table; nothing else switches on event-type strings.
//
//   constexpr auto kEvents = std::to_array<EventDef<State>>({
//       EventDef<State>::of<fb::AgentSuspended>(
//           "AgentSuspended", [](State& s, const fb::AgentSuspended&) { s.status = ...; },
//           [](nlohmann::json& j, const fb::AgentSuspended& e) { j["reason"] = ...; }),
//       ...});

#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "commands/aggregate.h"
#include "commands/flat.h"
#include "core/result.h"

namespace engram::commands {

namespace event_table_detail {

// Calls a captureless lambda by its type; one returning void succeeds.
template <typename F, typename... Args>
bool call(Args&&... args) {
  if constexpr (std::is_void_v<std::invoke_result_t<F, Args...>>) {
    F{}(std::forward<Args>(args)...);
    return true;
  } else {
    return F{}(std::forward<Args>(args)...);
  }
}

}  // namespace event_table_detail

template <typename State, typename Entity = NoEntity>
struct EventDef {
  std::string_view type;
  // Each returns false when the payload does not verify as the event's table
  // or holds a value the target cannot take.
  bool (*evolve)(State& s, const EventView& e) = nullptr;
  bool (*render)(nlohmann::json& out, std::span<const uint8_t> payload,
                 const RenderContext& rc) = nullptr;
  // The entity the event is about (core::EventData::entity); null for an
  // event about its stream as a whole.
  bool (*entity)(std::string& out, std::span<const uint8_t> payload) = nullptr;
  // What the event says about its entity; set with `entity`.
  bool (*evolve_entity)(Entity& m, const EventView& e) = nullptr;

  // A definition from captureless lambdas over the payload's table:
  //   evolve(State&, const Table&) or evolve(State&, const Table&, uint64_t version)
  //   render(json&, const Table&) or render(json&, const Table&, const RenderContext&)
  // each returning void or bool (false: a value the target cannot take).
  template <typename Table, typename Evolve, typename Render>
  static constexpr EventDef of(std::string_view type, Evolve, Render) {
    static_assert(std::is_empty_v<Evolve> && std::is_empty_v<Render>,
                  "event definitions are captureless lambdas");
    EventDef d;
    d.type = type;
    d.evolve = [](State& s, const EventView& e) {
      const flat::Aligned bytes(e.payload);
      const Table* t = flat::verified<Table>(bytes);
      if (t == nullptr) return false;
      if constexpr (std::is_invocable_v<Evolve, State&, const Table&, uint64_t>) {
        return event_table_detail::call<Evolve>(s, *t, e.version);
      } else {
        return event_table_detail::call<Evolve>(s, *t);
      }
    };
    d.render = [](nlohmann::json& out, std::span<const uint8_t> payload, const RenderContext& rc) {
      const flat::Aligned bytes(payload);
      const Table* t = flat::verified<Table>(bytes);
      if (t == nullptr) return false;
      if constexpr (std::is_invocable_v<Render, nlohmann::json&, const Table&,
                                        const RenderContext&>) {
        return event_table_detail::call<Render>(out, *t, rc);
      } else {
        return event_table_detail::call<Render>(out, *t);
      }
    };
    return d;
  }

  // The same for an event about one entity of its stream:
  //   entity_of(const Table&) -> std::string, the entity's id
  //   evolve_entity(Entity&, const Table&) returning void or bool
  template <typename Table, typename Evolve, typename Render, typename EntityOf,
            typename EvolveEntity>
  static constexpr EventDef of(std::string_view type, Evolve evolve, Render render, EntityOf,
                               EvolveEntity) {
    static_assert(std::is_empty_v<EntityOf> && std::is_empty_v<EvolveEntity>,
                  "event definitions are captureless lambdas");
    EventDef d = of<Table>(type, evolve, render);
    d.entity = [](std::string& out, std::span<const uint8_t> payload) {
      const flat::Aligned bytes(payload);
      const Table* t = flat::verified<Table>(bytes);
      if (t == nullptr) return false;
      out = EntityOf{}(*t);
      return true;
    };
    d.evolve_entity = [](Entity& m, const EventView& e) {
      const flat::Aligned bytes(e.payload);
      const Table* t = flat::verified<Table>(bytes);
      return t != nullptr && event_table_detail::call<EvolveEntity>(m, *t);
    };
    return d;
  }
};

template <typename State, typename Entity>
struct EventTable {
  std::string_view aggregate;  // "task", for messages
  std::span<const EventDef<State, Entity>> events;

  // Null when `type` is none of the aggregate's events.
  const EventDef<State, Entity>* find(std::string_view type) const {
    for (const auto& d : events) {
      if (d.type == type) return &d;
    }
    return nullptr;
  }

  // The state after the event; errc::corruption when the type is not one of
  // the aggregate's or the payload does not verify.
  core::result<void> evolve(State& s, const EventView& e) const {
    const auto* d = find(e.type);
    if (d == nullptr) return not_ours(e.type);
    if (!d->evolve(s, e)) return does_not_verify(e.type);
    return {};
  }

  // The event's JSON "data"; nullopt when the type is not one of the
  // aggregate's or the payload does not verify.
  std::optional<nlohmann::json> render(std::string_view type, std::span<const uint8_t> payload,
                                       const RenderContext& rc) const {
    const auto* d = find(type);
    nlohmann::json j = nlohmann::json::object();
    if (d == nullptr || !d->render(j, payload, rc)) return std::nullopt;
    return j;
  }

  // The entity the event is about; nullopt for an event about the whole
  // stream, a type not of this aggregate, or a payload that does not verify.
  std::optional<std::string> entity(std::string_view type, std::span<const uint8_t> payload) const {
    const auto* d = find(type);
    std::string out;
    if (d == nullptr || d->entity == nullptr || !d->entity(out, payload)) return std::nullopt;
    return out;
  }

  // What an entity's event says about it; errc::corruption as for evolve,
  // and for an event about no entity.
  core::result<void> evolve_entity(Entity& m, const EventView& e) const {
    const auto* d = find(e.type);
    if (d == nullptr || d->evolve_entity == nullptr) return not_ours(e.type);
    if (!d->evolve_entity(m, e)) return does_not_verify(e.type);
    return {};
  }

 private:
  core::Error not_ours(std::string_view type) const {
    return core::make_error(core::errc::corruption,
                            "\"" + std::string(type) + "\" is not " + article() + " event");
  }
  core::Error does_not_verify(std::string_view type) const {
    return core::make_error(core::errc::corruption, std::string(type) + " payload does not verify");
  }
  std::string article() const {
    const bool vowel = !aggregate.empty() &&
                       std::string_view("aeiou").find(aggregate[0]) != std::string_view::npos;
    return std::string(vowel ? "an " : "a ") + std::string(aggregate);
  }
};

}  // namespace engram::commands
