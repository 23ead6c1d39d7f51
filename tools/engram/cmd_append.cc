// engram append: events from stdin (NDJSON) appended atomically to one stream.

#include <fmt/format.h>

#include <iostream>

#include "commands/generic_events.h"
#include "core/json.h"
#include "tools/engram/cli.h"
#include "tools/engram/commands.h"

namespace engram::cli {
namespace {

constexpr size_t kMaxLineBytes = 2 << 20;

struct AppendOptions {
  std::string data_dir;
  std::string stream;
  std::string expected = "any";
  std::string actor = "engram-cli";
  std::string correlation_id;
  std::string causation_id;
  bool json = false;
};

// Parses one input line into an event; on failure returns a message naming
// the line and the field.
std::optional<std::string> parse_line(const std::string& line, size_t line_no,
                                      core::EventData& out) {
  auto j = core::parse_json_object(line);
  if (!j) return fmt::format("line {}: {}", line_no, j.error().message);
  auto event = commands::parse_generic_event(*j, "", commands::GenericLimits{});
  if (!event) {
    return fmt::format("line {}: {} (at {})", line_no, event.error().detail, event.error().field);
  }
  out = std::move(*event);
  return std::nullopt;
}

int run_append(const AppendOptions& o) {
  auto expected = core::ExpectedVersion::parse(o.expected);
  if (!expected) {
    return fail(kUsage,
                fmt::format("--expected must be {}, not '{}'", core::kExpectedVersionHelp, o.expected));
  }
  if (auto ok = commands::check_generic_stream(o.stream); !ok) {
    return fail(kUsage, "--stream: " + ok.error().detail);
  }
  core::AppendContext context;
  context.actor = o.actor;
  if (!o.correlation_id.empty()) {
    auto id = core::Uuid::parse(o.correlation_id);
    if (!id) return fail(kUsage, "--correlation-id must be a UUID");
    context.correlation_id = *id;
  }
  if (!o.causation_id.empty()) {
    auto id = core::Uuid::parse(o.causation_id);
    if (!id) return fail(kUsage, "--causation-id must be a UUID");
    context.causation_id = *id;
  }

  // All input is validated before the log is opened: bad input changes nothing.
  std::vector<core::EventData> events;
  std::string line;
  size_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.size() > kMaxLineBytes) {
      return fail(kBadInput, fmt::format("line {}: {} bytes, over the limit of {}", line_no,
                                         line.size(), kMaxLineBytes));
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    core::EventData ev;
    if (auto err = parse_line(line, line_no, ev)) return fail(kBadInput, *err);
    events.push_back(std::move(ev));
  }
  if (events.empty()) return fail(kBadInput, "no events on stdin (one JSON object per line)");

  int code = kOk;
  auto log = open_log(core::DataDir(o.data_dir), code, core::LogOptions{});
  if (!log) return code;
  auto r = log->append(o.stream, *expected, events, context);
  if (!r) return fail(exit_code_for(r.error()), r.error().to_string());

  if (o.json) {
    nlohmann::json out{{"stream", o.stream},
                       {"first_position", r->first.value()},
                       {"last_position", r->last.value()},
                       {"stream_version", r->version.value()},
                       {"deduplicated", r->deduplicated}};
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("{} {} event{} to '{}': positions {}..{}, stream version {}\n",
               r->deduplicated ? "already appended:" : "appended", events.size(),
               events.size() == 1 ? "" : "s", o.stream, r->first.value(), r->last.value(),
               r->version.value());
  }
  return kOk;
}

}  // namespace

void add_append_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<AppendOptions>();
  auto* cmd = app.add_subcommand(
      "append",
      "Append events read from stdin, one JSON object per line:\n"
      R"(  {"id": optional UUID, "type": non-empty string, "data": object, "metadata": optional object})"
      "\nAll events go to one stream in one atomic, fsynced append.");
  cmd->add_option("--data", o->data_dir, "Data directory of the log (created if missing)")
      ->required();
  cmd->add_option("--stream", o->stream, "Stream to append to")->required();
  cmd->add_option("--expected", o->expected,
                  std::string("Expected stream version: ") + std::string(core::kExpectedVersionHelp))
      ->capture_default_str();
  cmd->add_option("--actor", o->actor, "Actor recorded in the events")->capture_default_str();
  cmd->add_option("--correlation-id", o->correlation_id,
                  "Correlation id (UUID) recorded in the events");
  cmd->add_option("--causation-id", o->causation_id,
                  "Causation id (UUID): the event or command that caused these events");
  cmd->add_flag("--json", o->json, "Print the result as one JSON object");
  cmd->callback([o, &exit_code] { exit_code = run_append(*o); });
}

}  // namespace engram::cli
