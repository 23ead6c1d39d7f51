#pragma once

// The memory aggregate (stream "memory-{owner}", all of one owner's
// memories): store, reinforce, forget one, forget the subject. Content and
// embeddings are sealed with the owner's key; forgetting the subject
// destroys the key (crypto-shredding). Functions as described in
// commands/aggregate.h.

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands/aggregate.h"

namespace engram::commands::memory {

// ReinforceMemory's amount when none is given.
inline constexpr double kDefaultReinforcement = 0.1;

// What one memory's latest event says about it. The aggregate keeps no
// state per memory: a decision about a memory reads that memory's latest
// event, found through the log's entity index (Needs::entity), and this is
// what the event table's evolve_entity makes of it.
struct Memory {
  double importance = 0;
  bool forgotten = false;
};

// The event that makes a memory (each memory has exactly one).
inline constexpr std::string_view kStoredEvent = "MemoryStored";

// The entity SubjectForgotten is about: the owner as a whole, under a name no
// memory id can take (ids start with a letter or a digit).
inline constexpr std::string_view kSubjectEntity = "@subject";
// The bus rebuilds the state from these entities' latest events alone, not
// from the whole stream: only SubjectForgotten changes the state.
inline constexpr std::array<std::string_view, 1> kStateEntities = {kSubjectEntity};

// Bounded whatever the number of memories.
struct State {
  // The version of the owner's last SubjectForgotten (0: none). A memory
  // whose latest event is older is forgotten with its owner.
  uint64_t forgotten_at = 0;
  size_t approx_bytes() const;
};

struct Store {
  std::string owner;
  std::string memory_id;
  std::string content;
  double importance = 0;
  std::optional<std::vector<std::string>> tags;
  std::optional<std::vector<float>> embedding;
  std::optional<std::string> embedder;
};
struct Reinforce {
  std::string owner;
  std::string memory_id;
  double amount = kDefaultReinforcement;
};
struct Forget {
  std::string owner;
  std::string memory_id;
};
struct ForgetSubject {
  std::string owner;
  std::optional<std::string> reason;
};

struct Command {
  using State = memory::State;
  std::variant<Store, Reinforce, Forget, ForgetSubject> v;
};

inline constexpr std::array<std::string_view, 4> kCommandTypes = {"StoreMemory", "ReinforceMemory",
                                                                  "ForgetMemory", "ForgetSubject"};

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc);
// The command's type, and its body as parse() reads it back.
std::string_view type_of(const Command& c);
nlohmann::json to_json(const Command& c);
std::string stream(const Command& c);
Needs needs(const Command& c);
result<void> authorize(const Command& c, const Principal& p);
result<Events> decide(const State& s, const Command& c, const Context& ctx);
const EventTable<State, Memory>& events();
// A memory as a decision sees it in the owner's state `s`, from its latest
// event: forgotten when that event says so or the owner was forgotten since.
// errc::corruption when the event is not a memory's or does not verify.
core::result<Memory> memory_of(const State& s, const EventView& latest);

}  // namespace engram::commands::memory
