// engram replay: reading the log back (dump); rebuild and verify are in cmd_rebuild.cc.

#include <fmt/format.h>

#include "tools/engram/cli.h"
#include "tools/engram/commands.h"
#include "tools/engram/table.h"

namespace engram::cli {
namespace {

constexpr size_t kPageEvents = 1000;
constexpr uint64_t kProgressThreshold = 10'000;  // show a progress bar above this many events

struct DumpOptions {
  std::string data_dir;
  uint64_t from = 1;
  uint64_t to = UINT64_MAX;
  std::string stream;
  std::string format = "json";
};

class Printer {
 public:
  explicit Printer(bool table) : table_(table) {
    if (table_) {
      fmt::print("{:>10}  {:<24}  {:>7}  {:<20}  {:<30}  {}\n", "POSITION", "STREAM", "VERSION",
                 "TYPE", "RECORDED_AT", "DATA");
    }
  }
  void print(const core::RecordedEvent& e) {
    const nlohmann::ordered_json j = event_to_json(e);
    if (!table_) {
      fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
      return;
    }
    const std::string data =
        j.contains("data")
            ? j["data"].dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
            : "<flatbuffer>";
    fmt::print("{:>10}  {:<24}  {:>7}  {:<20}  {:<30}  {}\n", e.position().value(),
               clip(std::string(e.stream()), 24), e.version().value(),
               clip(std::string(e.type()), 20), j["recorded_at"].get<std::string>(),
               clip(data, 60));
  }

 private:
  bool table_;
};

int run_dump(const DumpOptions& o) {
  if (o.format != "json" && o.format != "table") {
    return fail(kUsage, fmt::format("--format must be json or table, not '{}'", o.format));
  }
  if (o.from == 0) return fail(kUsage, "--from must be >= 1 (positions start at 1)");
  if (o.to < o.from) return fail(kUsage, "--to must be >= --from");
  int code = kOk;
  core::LogOptions lo;
  lo.read_only = true;
  auto log = open_log(core::DataDir(o.data_dir), code, lo);
  if (!log) return code;

  const uint64_t head = log->head().position.value();
  const uint64_t last = std::min(o.to, head);
  Printer printer(o.format == "table");

  if (!o.stream.empty()) {
    core::StreamVersion next(1);
    for (;;) {
      auto page = log->read_stream(o.stream, next, kPageEvents, core::Direction::forward);
      if (!page) return fail(exit_code_for(page.error()), page.error().to_string());
      for (const auto& e : *page) {
        if (e.position().value() >= o.from && e.position().value() <= last) printer.print(e);
      }
      if (page->size() < kPageEvents || page->back().position().value() >= last) break;
      next = page->back().version().next();
    }
    return kOk;
  }

  const uint64_t total = last >= o.from ? last - o.from + 1 : 0;
  Progress progress("dump", total, total > kProgressThreshold);
  uint64_t next = o.from;
  uint64_t done = 0;
  while (next <= last) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kPageEvents, last - next + 1));
    auto page = log->read_all(core::Position(next), want);
    if (!page) return fail(exit_code_for(page.error()), page.error().to_string());
    if (page->empty()) break;
    for (const auto& e : *page) printer.print(e);
    done += page->size();
    next = page->back().position().value() + 1;
    progress.update(done);
  }
  return kOk;
}

}  // namespace

void add_replay_command(CLI::App& app, int& exit_code) {
  auto* replay = app.add_subcommand("replay", "Read the log back");
  replay->require_subcommand(1);
  auto o = std::make_shared<DumpOptions>();
  auto* dump =
      replay->add_subcommand("dump",
                             "Print events as NDJSON or a table (stdout); works on a running "
                             "server's data dir without blocking it");
  dump->add_option("--data", o->data_dir, "Data directory of the log")->required();
  dump->add_option("--from", o->from, "First position (default 1)");
  dump->add_option("--to", o->to, "Last position (default: the head)");
  dump->add_option("--stream", o->stream, "Only this stream");
  dump->add_option("--format", o->format, "json (NDJSON) or table")->capture_default_str();
  dump->callback([o, &exit_code] { exit_code = run_dump(*o); });
  add_rebuild_commands(*replay, exit_code);
}

}  // namespace engram::cli
