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
#include <unordered_map>
#include <variant>
#include <vector>

#include "commands/aggregate.h"

namespace engram::commands::memory {

// ReinforceMemory's amount when none is given.
inline constexpr double kDefaultReinforcement = 0.1;

struct Memory {
  double importance = 0;
  bool forgotten = false;
};

struct State {
  std::unordered_map<std::string, Memory> memories;
  size_t id_bytes = 0;  // the memory ids' sizes summed, for approx_bytes()
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
inline constexpr std::array<std::string_view, 4> kEventTypes = {
    "MemoryStored", "MemoryReinforced", "MemoryForgotten", "SubjectForgotten"};

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc);
std::string stream(const Command& c);
Needs needs(const Command& c);
result<void> authorize(const Command& c, const Principal& p);
result<Events> decide(const State& s, const Command& c, const Context& ctx);
core::result<void> evolve(State& s, std::string_view type, std::span<const uint8_t> payload);
// nullopt when the payload does not verify as `type`. MemoryStored's content
// and embedding are decrypted when the owner's live key has the event's
// generation, else null with "content_forgotten": true.
std::optional<nlohmann::json> render(std::string_view type, std::span<const uint8_t> payload,
                                     const RenderContext& rc);

}  // namespace engram::commands::memory
