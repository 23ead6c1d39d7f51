#pragma once

// The task aggregate (stream "task-{task_id}"): a research request moved
// through assignment, findings, human checkpoints, development and tests to
// completed or failed. The state machine is documented in docs/commands.md.
// Functions as described in commands/aggregate.h.

#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands/aggregate.h"

namespace engram::commands::task {

enum class Status : uint8_t {
  requested,
  assigned,
  findings_submitted,
  checkpoint_pending,
  checkpoint_approved,
  in_development,
  completed,
  failed,
};
const char* status_name(Status s);

enum class Stage : uint8_t { findings, tests };

struct State {
  bool requested = false;
  Status status = Status::requested;
  std::string project_id;
  std::string assignee;                      // empty until assigned
  Stage checkpoint_stage = Stage::findings;  // while checkpoint_pending
  bool has_test_result = false;              // since development opened
  bool tests_passed = false;                 // the last test result
  size_t approx_bytes() const;
};

struct RequestResearch {
  std::string task_id;
  std::string project_id;
  std::string title;
  std::optional<std::string> description;
  std::optional<std::string> domain;
};
struct Assign {
  std::string task_id;
  std::string agent_id;
};
struct SubmitFindings {
  std::string task_id;
  std::string summary;
  std::optional<std::string> details;
  std::optional<std::vector<std::string>> knowledge_ids;
};
struct RequestCheckpoint {
  std::string task_id;
  std::optional<std::string> reason;
};
struct ApproveCheckpoint {
  std::string task_id;
  std::optional<std::string> comment;
};
struct RejectCheckpoint {
  std::string task_id;
  std::optional<std::string> comment;
};
struct OpenDevelopment {
  std::string task_id;
  std::optional<std::string> branch;
};
struct ReportTestResult {
  std::string task_id;
  bool passed = false;
  std::optional<uint64_t> passed_count;
  std::optional<uint64_t> failed_count;
  std::optional<std::string> summary;
};
struct Complete {
  std::string task_id;
  std::optional<std::string> summary;
};
struct Fail {
  std::string task_id;
  std::string reason;
};

struct Command {
  using State = task::State;
  std::variant<RequestResearch, Assign, SubmitFindings, RequestCheckpoint, ApproveCheckpoint,
               RejectCheckpoint, OpenDevelopment, ReportTestResult, Complete, Fail>
      v;
};

inline constexpr std::array<std::string_view, 10> kCommandTypes = {
    "RequestResearch",   "AssignTask",       "SubmitFindings",  "RequestCheckpoint",
    "ApproveCheckpoint", "RejectCheckpoint", "OpenDevelopment", "ReportTestResult",
    "CompleteTask",      "FailTask"};

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc);
// The command's type, and its body as parse() reads it back.
std::string_view type_of(const Command& c);
nlohmann::json to_json(const Command& c);
std::string stream(const Command& c);
Needs needs(const Command& c);
result<void> authorize(const Command& c, const Principal& p);
result<Events> decide(const State& s, const Command& c, const Context& ctx);
const EventTable<State>& events();

}  // namespace engram::commands::task
