#pragma once

// The knowledge aggregate (stream "knowledge-{knowledge_id}"): record,
// revise, transfer to another agent, retract. Functions as described in
// commands/aggregate.h.

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands/aggregate.h"

namespace engram::commands::knowledge {

struct State {
  bool recorded = false;
  bool retracted = false;
  std::string owner;  // the owning agent; empty when none
  size_t approx_bytes() const;
};

struct Record {
  std::string knowledge_id;
  std::string title;
  std::string body;
  std::string domain;
  std::optional<std::vector<std::string>> tags;
  std::optional<std::string> source_agent;
  std::optional<std::string> source_task;
  double confidence = 0;
  std::optional<std::vector<float>> embedding;
  std::optional<std::string> embedder;
};
struct Revise {
  std::string knowledge_id;
  std::optional<std::string> title;
  std::optional<std::string> body;
  std::optional<std::vector<std::string>> tags;
  std::optional<double> confidence;
  std::optional<std::vector<float>> embedding;
  std::optional<std::string> embedder;
  std::optional<std::string> reason;
};
struct Transfer {
  std::string knowledge_id;
  std::string to_agent;
};
struct Retract {
  std::string knowledge_id;
  std::string reason;
};

struct Command {
  using State = knowledge::State;
  std::variant<Record, Revise, Transfer, Retract> v;
};

inline constexpr std::array<std::string_view, 4> kCommandTypes = {
    "RecordKnowledge", "ReviseKnowledge", "TransferKnowledge", "RetractKnowledge"};

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc);
// The command's type, and its body as parse() reads it back.
std::string_view type_of(const Command& c);
nlohmann::json to_json(const Command& c);
std::string stream(const Command& c);
Needs needs(const Command& c);
result<void> authorize(const Command& c, const Principal& p);
result<Events> decide(const State& s, const Command& c, const Context& ctx);
const EventTable<State>& events();

}  // namespace engram::commands::knowledge
