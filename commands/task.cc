#include "commands/task.h"

#include <fmt/format.h>

#include <array>

#include "commands/agent.h"
#include "commands/errors.h"
#include "commands/event_table.h"
#include "commands/flat.h"
#include "commands/ids.h"
#include "commands/input.h"
#include "commands/project.h"
#include "schemas/domain/tasks_generated.h"

namespace engram::commands::task {
namespace fb = engram::domain;

const char* status_name(Status s) {
  switch (s) {
    case Status::requested:
      return "requested";
    case Status::assigned:
      return "assigned";
    case Status::findings_submitted:
      return "findings_submitted";
    case Status::checkpoint_pending:
      return "checkpoint_pending";
    case Status::checkpoint_approved:
      return "checkpoint_approved";
    case Status::in_development:
      return "in_development";
    case Status::completed:
      return "completed";
    case Status::failed:
      return "failed";
  }
  return "unknown";
}

size_t State::approx_bytes() const {
  return sizeof(State) + project_id.size() + assignee.size();
}

namespace {

const std::string& task_id(const Command& c) {
  return std::visit([](const auto& x) -> const std::string& { return x.task_id; }, c.v);
}

fb::CheckpointStage to_fb(Stage s) {
  return static_cast<fb::CheckpointStage>(s);
}
bool valid_stage(fb::CheckpointStage s) {
  return s == fb::CheckpointStage::findings || s == fb::CheckpointStage::tests;
}
const char* stage_name(fb::CheckpointStage s) {
  return s == fb::CheckpointStage::tests ? "tests" : "findings";
}

bool terminal(Status s) {
  return s == Status::completed || s == Status::failed;
}

CommandError wrong_state(std::string code, const State& s, std::string_view id,
                         std::string_view needed) {
  return rule(std::move(code),
              fmt::format("task \"{}\" is {}; {}", id, status_name(s.status), needed));
}

// An agent-scoped principal may act on a task only as its assignee.
result<void> check_assignee(const State& s, const Principal& p, std::string_view id) {
  if (p.agent_id && *p.agent_id != s.assignee) {
    return forbidden("not_assignee",
                     fmt::format("task \"{}\" is not assigned to agent \"{}\"", id, *p.agent_id));
  }
  return {};
}

}  // namespace

result<Command> parse(std::string_view type, const nlohmann::json& body, const ParseContext& pc) {
  Input in(body, pc.limits);
  Command c;
  if (type == "RequestResearch") {
    RequestResearch r;
    r.task_id = in.optional_id("task_id").value_or(pc.command_id);
    r.project_id = in.id("project_id");
    r.title = in.text("title");
    r.description = in.optional_text("description");
    r.domain = in.optional_id("domain");
    c.v = std::move(r);
  } else if (type == "AssignTask") {
    c.v = Assign{in.id("task_id"), in.id("agent_id")};
  } else if (type == "SubmitFindings") {
    SubmitFindings f;
    f.task_id = in.id("task_id");
    f.summary = in.text("summary");
    f.details = in.optional_text("details");
    f.knowledge_ids = in.optional_id_list("knowledge_ids");
    c.v = std::move(f);
  } else if (type == "RequestCheckpoint") {
    c.v = RequestCheckpoint{in.id("task_id"), in.optional_text("reason")};
  } else if (type == "ApproveCheckpoint") {
    c.v = ApproveCheckpoint{in.id("task_id"), in.optional_text("comment")};
  } else if (type == "RejectCheckpoint") {
    c.v = RejectCheckpoint{in.id("task_id"), in.optional_text("comment")};
  } else if (type == "OpenDevelopment") {
    c.v = OpenDevelopment{in.id("task_id"), in.optional_label("branch")};
  } else if (type == "ReportTestResult") {
    ReportTestResult t;
    t.task_id = in.id("task_id");
    t.passed = in.boolean("passed");
    t.passed_count = in.optional_count("passed_count");
    t.failed_count = in.optional_count("failed_count");
    t.summary = in.optional_text("summary");
    c.v = std::move(t);
  } else if (type == "CompleteTask") {
    c.v = Complete{in.id("task_id"), in.optional_text("summary")};
  } else {
    ENGRAM_ASSERT(type == "FailTask");
    c.v = Fail{in.id("task_id"), in.text("reason")};
  }
  if (auto e = in.finish()) return *e;
  return c;
}

std::string_view type_of(const Command& c) {
  return type_name(c.v, kCommandTypes);
}

nlohmann::json to_json(const Command& c) {
  nlohmann::json j = nlohmann::json::object();
  if (!task_id(c).empty()) j["task_id"] = task_id(c);
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, RequestResearch>) {
          j["project_id"] = x.project_id;
          j["title"] = x.title;
          put_optional(j, "description", x.description);
          put_optional(j, "domain", x.domain);
        } else if constexpr (std::is_same_v<T, Assign>) {
          j["agent_id"] = x.agent_id;
        } else if constexpr (std::is_same_v<T, SubmitFindings>) {
          j["summary"] = x.summary;
          put_optional(j, "details", x.details);
          put_optional(j, "knowledge_ids", x.knowledge_ids);
        } else if constexpr (std::is_same_v<T, RequestCheckpoint>) {
          put_optional(j, "reason", x.reason);
        } else if constexpr (std::is_same_v<T, ApproveCheckpoint> ||
                             std::is_same_v<T, RejectCheckpoint>) {
          put_optional(j, "comment", x.comment);
        } else if constexpr (std::is_same_v<T, OpenDevelopment>) {
          put_optional(j, "branch", x.branch);
        } else if constexpr (std::is_same_v<T, ReportTestResult>) {
          j["passed"] = x.passed;
          put_optional(j, "passed_count", x.passed_count);
          put_optional(j, "failed_count", x.failed_count);
          put_optional(j, "summary", x.summary);
        } else if constexpr (std::is_same_v<T, Complete>) {
          put_optional(j, "summary", x.summary);
        } else {
          static_assert(std::is_same_v<T, Fail>);
          j["reason"] = x.reason;
        }
      },
      c.v);
  return j;
}

std::string stream(const Command& c) {
  return stream_name(kTaskStreamPrefix, task_id(c));
}

Needs needs(const Command& c) {
  Needs n;
  if (const auto* r = std::get_if<RequestResearch>(&c.v)) n.project_id = r->project_id;
  if (const auto* a = std::get_if<Assign>(&c.v)) n.agent_id = a->agent_id;
  return n;
}

result<void> authorize(const Command& c, const Principal& p) {
  const auto* a = std::get_if<Assign>(&c.v);
  if (a != nullptr && p.agent_id && *p.agent_id != a->agent_id) {
    return forbidden("not_self",
                     fmt::format("agent \"{}\" may assign tasks only to itself", *p.agent_id));
  }
  return {};
}

namespace {

result<Events> request(const State& s, const RequestResearch& r, const Context& ctx) {
  ENGRAM_ASSERT(ctx.project != nullptr);
  if (s.requested) return rule("task_exists", fmt::format("task \"{}\" already exists", r.task_id));
  if (!ctx.project->created) {
    return not_found("project_not_found", fmt::format("no project \"{}\" exists", r.project_id));
  }
  if (ctx.project->archived) {
    return rule("project_archived", fmt::format("project \"{}\" is archived", r.project_id));
  }
  flat::Builder b;
  const auto root = fb::CreateResearchRequested(
      b, flat::str(b, r.task_id), flat::str(b, r.project_id), flat::str(b, r.title),
      flat::str(b, r.description), flat::str(b, r.domain));
  return Events{flat::finish(b, root, "ResearchRequested")};
}

result<Events> assign(const State& s, const Assign& a, const Context& ctx) {
  ENGRAM_ASSERT(ctx.agent != nullptr);
  if (s.status != Status::requested && s.status != Status::assigned) {
    return wrong_state("task_not_assignable", s, a.task_id,
                       "only a requested or assigned task can be assigned");
  }
  if (!ctx.agent->registered) {
    return not_found("agent_not_found", fmt::format("no agent \"{}\" is registered", a.agent_id));
  }
  if (ctx.agent->status != agent::Status::active) {
    return rule("agent_not_active", fmt::format("agent \"{}\" is {}", a.agent_id,
                                                agent::status_name(ctx.agent->status)));
  }
  if (s.assignee == a.agent_id) {
    return rule("already_assigned",
                fmt::format("task \"{}\" is already assigned to \"{}\"", a.task_id, a.agent_id));
  }
  flat::Builder b;
  const auto root = fb::CreateTaskAssigned(b, flat::str(b, a.task_id), flat::str(b, a.agent_id),
                                           s.assignee.empty() ? 0 : flat::str(b, s.assignee));
  return Events{flat::finish(b, root, "TaskAssigned")};
}

result<Events> submit(const State& s, const SubmitFindings& f, const Context& ctx) {
  if (auto r = check_assignee(s, ctx.principal, f.task_id); !r) return r.error();
  if (s.status != Status::assigned) {
    return wrong_state("task_not_assigned", s, f.task_id, "findings need an assigned task");
  }
  flat::Builder b;
  const auto root = fb::CreateFindingsSubmitted(
      b, flat::str(b, f.task_id), flat::str(b, s.assignee), flat::str(b, f.summary),
      flat::str(b, f.details), flat::strings(b, f.knowledge_ids));
  return Events{flat::finish(b, root, "FindingsSubmitted")};
}

result<Events> request_checkpoint(const State& s, const RequestCheckpoint& r) {
  if (s.status == Status::checkpoint_pending) {
    return rule("checkpoint_already_pending",
                fmt::format("task \"{}\" already has a checkpoint pending", r.task_id));
  }
  Stage stage;
  if (s.status == Status::findings_submitted) {
    stage = Stage::findings;
  } else if (s.status == Status::in_development && s.has_test_result) {
    stage = Stage::tests;
  } else {
    return wrong_state("nothing_to_review", s, r.task_id,
                       "a checkpoint follows submitted findings or a test result");
  }
  flat::Builder b;
  const auto root = fb::CreateCheckpointRequested(b, flat::str(b, r.task_id), to_fb(stage),
                                                  flat::str(b, r.reason));
  return Events{flat::finish(b, root, "CheckpointRequested")};
}

template <typename Decision>
result<Events> review(const State& s, const Decision& d, const Context& ctx, bool approve) {
  if (s.status != Status::checkpoint_pending) {
    return wrong_state("no_checkpoint_pending", s, d.task_id, "there is no checkpoint to review");
  }
  if (ctx.principal.agent_id && *ctx.principal.agent_id == s.assignee) {
    return forbidden("self_review",
                     fmt::format("agent \"{}\" may not review its own task", s.assignee));
  }
  flat::Builder b;
  const auto task_id = flat::str(b, d.task_id);
  const auto reviewer = flat::str(b, ctx.principal.subject);
  const auto comment = flat::str(b, d.comment);
  if (approve) {
    const auto root =
        fb::CreateCheckpointApproved(b, task_id, to_fb(s.checkpoint_stage), reviewer, comment);
    return Events{flat::finish(b, root, "CheckpointApproved")};
  }
  const auto root =
      fb::CreateCheckpointRejected(b, task_id, to_fb(s.checkpoint_stage), reviewer, comment);
  return Events{flat::finish(b, root, "CheckpointRejected")};
}

result<Events> open_development(const State& s, const OpenDevelopment& o) {
  if (s.status != Status::checkpoint_approved) {
    return wrong_state("checkpoint_not_approved", s, o.task_id,
                       "development opens after an approved findings checkpoint");
  }
  flat::Builder b;
  const auto root = fb::CreateDevelopmentOpened(b, flat::str(b, o.task_id), flat::str(b, o.branch));
  return Events{flat::finish(b, root, "DevelopmentOpened")};
}

result<Events> report(const State& s, const ReportTestResult& t, const Context& ctx) {
  if (auto r = check_assignee(s, ctx.principal, t.task_id); !r) return r.error();
  if (s.status != Status::in_development) {
    return wrong_state("development_not_open", s, t.task_id,
                       "test results are reported while development is open");
  }
  flat::Builder b;
  const auto task_id = flat::str(b, t.task_id);
  const auto summary = flat::str(b, t.summary);
  fb::TestResultReportedBuilder tb(b);
  tb.add_task_id(task_id);
  tb.add_passed(t.passed);
  if (t.passed_count) tb.add_passed_count(*t.passed_count);
  if (t.failed_count) tb.add_failed_count(*t.failed_count);
  tb.add_summary(summary);
  return Events{flat::finish(b, tb.Finish(), "TestResultReported")};
}

result<Events> complete(const State& s, const Complete& c) {
  if (s.status == Status::checkpoint_pending && s.checkpoint_stage == Stage::tests) {
    return wrong_state("checkpoint_pending", s, c.task_id,
                       "the pending test checkpoint must be reviewed first");
  }
  if (s.status != Status::in_development || !s.tests_passed) {
    return wrong_state("tests_not_passed", s, c.task_id,
                       "completing needs a passing test result in development");
  }
  flat::Builder b;
  const auto root = fb::CreateTaskCompleted(b, flat::str(b, c.task_id), flat::str(b, c.summary));
  return Events{flat::finish(b, root, "TaskCompleted")};
}

result<Events> fail(const Fail& f) {
  flat::Builder b;
  const auto root = fb::CreateTaskFailed(b, flat::str(b, f.task_id), flat::str(b, f.reason));
  return Events{flat::finish(b, root, "TaskFailed")};
}

}  // namespace

result<Events> decide(const State& s, const Command& c, const Context& ctx) {
  if (const auto* r = std::get_if<RequestResearch>(&c.v)) return request(s, *r, ctx);
  if (!s.requested) {
    return not_found("task_not_found", fmt::format("no task \"{}\" exists", task_id(c)));
  }
  if (terminal(s.status)) {
    return rule("task_closed", fmt::format("task \"{}\" is {}", task_id(c), status_name(s.status)));
  }
  if (const auto* a = std::get_if<Assign>(&c.v)) return assign(s, *a, ctx);
  if (const auto* f = std::get_if<SubmitFindings>(&c.v)) return submit(s, *f, ctx);
  if (const auto* r = std::get_if<RequestCheckpoint>(&c.v)) return request_checkpoint(s, *r);
  if (const auto* a = std::get_if<ApproveCheckpoint>(&c.v)) return review(s, *a, ctx, true);
  if (const auto* r = std::get_if<RejectCheckpoint>(&c.v)) return review(s, *r, ctx, false);
  if (const auto* o = std::get_if<OpenDevelopment>(&c.v)) return open_development(s, *o);
  if (const auto* t = std::get_if<ReportTestResult>(&c.v)) return report(s, *t, ctx);
  if (const auto* co = std::get_if<Complete>(&c.v)) return complete(s, *co);
  return fail(std::get<Fail>(c.v));
}

namespace {

using Def = EventDef<State>;
using nlohmann::json;

// The three checkpoint events: the task and the stage, then their own fields.
template <typename Table>
bool put_checkpoint(json& j, const Table& e) {
  if (!valid_stage(e.stage())) return false;
  j["task_id"] = e.task_id()->str();
  j["stage"] = stage_name(e.stage());
  return true;
}
// A review (approved or rejected): the checkpoint, who reviewed it, why.
template <typename Table>
bool put_review(json& j, const Table& e) {
  if (!put_checkpoint(j, e)) return false;
  j["reviewer"] = e.reviewer()->str();
  flat::put(j, "comment", e.comment());
  return true;
}

constexpr auto kEvents = std::to_array<Def>({
    Def::of<fb::ResearchRequested>(
        "ResearchRequested",
        [](State& s, const fb::ResearchRequested& e) {
          s.requested = true;
          s.status = Status::requested;
          s.project_id = e.project_id()->str();
        },
        [](json& j, const fb::ResearchRequested& e) {
          j["task_id"] = e.task_id()->str();
          j["project_id"] = e.project_id()->str();
          j["title"] = e.title()->str();
          flat::put(j, "description", e.description());
          flat::put(j, "domain", e.domain());
        }),
    Def::of<fb::TaskAssigned>(
        "TaskAssigned",
        [](State& s, const fb::TaskAssigned& e) {
          s.status = Status::assigned;
          s.assignee = e.agent_id()->str();
        },
        [](json& j, const fb::TaskAssigned& e) {
          j["task_id"] = e.task_id()->str();
          j["agent_id"] = e.agent_id()->str();
          flat::put(j, "previous_agent_id", e.previous_agent_id());
        }),
    Def::of<fb::FindingsSubmitted>(
        "FindingsSubmitted",
        [](State& s, const fb::FindingsSubmitted&) { s.status = Status::findings_submitted; },
        [](json& j, const fb::FindingsSubmitted& e) {
          j["task_id"] = e.task_id()->str();
          j["agent_id"] = e.agent_id()->str();
          j["summary"] = e.summary()->str();
          flat::put(j, "details", e.details());
          flat::put(j, "knowledge_ids", e.knowledge_ids());
        }),
    Def::of<fb::CheckpointRequested>(
        "CheckpointRequested",
        [](State& s, const fb::CheckpointRequested& e) {
          if (!valid_stage(e.stage())) return false;
          s.status = Status::checkpoint_pending;
          s.checkpoint_stage = static_cast<Stage>(e.stage());
          return true;
        },
        [](json& j, const fb::CheckpointRequested& e) {
          if (!put_checkpoint(j, e)) return false;
          flat::put(j, "reason", e.reason());
          return true;
        }),
    Def::of<fb::CheckpointApproved>(
        "CheckpointApproved",
        [](State& s, const fb::CheckpointApproved& e) {
          if (!valid_stage(e.stage())) return false;
          s.status = e.stage() == fb::CheckpointStage::tests ? Status::in_development
                                                             : Status::checkpoint_approved;
          return true;
        },
        [](json& j, const fb::CheckpointApproved& e) { return put_review(j, e); }),
    Def::of<fb::CheckpointRejected>(
        "CheckpointRejected",
        [](State& s, const fb::CheckpointRejected&) {
          s.status = Status::assigned;
          s.has_test_result = false;
          s.tests_passed = false;
        },
        [](json& j, const fb::CheckpointRejected& e) { return put_review(j, e); }),
    Def::of<fb::DevelopmentOpened>(
        "DevelopmentOpened",
        [](State& s, const fb::DevelopmentOpened&) {
          s.status = Status::in_development;
          s.has_test_result = false;
          s.tests_passed = false;
        },
        [](json& j, const fb::DevelopmentOpened& e) {
          j["task_id"] = e.task_id()->str();
          flat::put(j, "branch", e.branch());
        }),
    Def::of<fb::TestResultReported>(
        "TestResultReported",
        [](State& s, const fb::TestResultReported& e) {
          s.has_test_result = true;
          s.tests_passed = e.passed();
        },
        [](json& j, const fb::TestResultReported& e) {
          j["task_id"] = e.task_id()->str();
          j["passed"] = e.passed();
          if (e.passed_count()) j["passed_count"] = *e.passed_count();
          if (e.failed_count()) j["failed_count"] = *e.failed_count();
          flat::put(j, "summary", e.summary());
        }),
    Def::of<fb::TaskCompleted>(
        "TaskCompleted", [](State& s, const fb::TaskCompleted&) { s.status = Status::completed; },
        [](json& j, const fb::TaskCompleted& e) {
          j["task_id"] = e.task_id()->str();
          flat::put(j, "summary", e.summary());
        }),
    Def::of<fb::TaskFailed>(
        "TaskFailed", [](State& s, const fb::TaskFailed&) { s.status = Status::failed; },
        [](json& j, const fb::TaskFailed& e) {
          j["task_id"] = e.task_id()->str();
          j["reason"] = e.reason()->str();
        }),
});

}  // namespace

const EventTable<State>& events() {
  static constexpr EventTable<State> table{"task", kEvents};
  return table;
}

}  // namespace engram::commands::task
