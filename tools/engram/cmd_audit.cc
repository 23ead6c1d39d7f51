// engram audit: tamper evidence.

#include <fmt/format.h>

#include "tools/engram/cli.h"
#include "tools/engram/commands.h"

namespace engram::cli {
namespace {

struct VerifyOptions {
  std::string data_dir;
  bool json = false;
};

int run_verify(const VerifyOptions& o) {
  int code = kOk;
  auto log = open_log(o.data_dir, true, code);
  if (!log) return code;
  const core::Head head = log->head();
  Progress progress("verify", head.position.value(), head.position.value() > 100'000);
  auto report = log->verify(core::Position(1), head.position,
                            [&](uint64_t done, uint64_t) { progress.update(done); });
  if (!report) return fail(exit_code_for(report.error()), report.error().to_string());

  if (o.json) {
    nlohmann::json j{{"ok", report->ok()},
                     {"events_checked", report->events_checked},
                     {"head_position", head.position.value()},
                     {"head_hash", core::to_hex(head.hash)}};
    if (!report->ok()) {
      j["first_bad_position"] = report->first_bad->value();
      j["problem"] = report->problem;
    }
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("events checked  {}\n", report->events_checked);
    fmt::print("head position   {}\n", head.position.value());
    fmt::print("head hash       {}\n", core::to_hex(head.hash));
    if (report->ok()) {
      fmt::print("chain           ok\n");
    } else {
      fmt::print("chain           BROKEN at position {}: {}\n", report->first_bad->value(),
                 report->problem);
    }
  }
  return report->ok() ? kOk : kVerifyFailed;
}

}  // namespace

void add_audit_command(CLI::App& app, int& exit_code) {
  auto* audit = app.add_subcommand("audit", "Tamper evidence");
  audit->require_subcommand(1);
  auto o = std::make_shared<VerifyOptions>();
  auto* verify = audit->add_subcommand(
      "verify",
      "Walk the whole hash chain; exit 1 and name the first bad position if the log was altered");
  verify->add_option("--data", o->data_dir, "Data directory of the log")->required();
  verify->add_flag("--json", o->json, "Print the report as one JSON object");
  verify->callback([o, &exit_code] { exit_code = run_verify(*o); });
}

}  // namespace engram::cli
