// `audit verify` throughput, and appends while an audit runs.
//
// Two measurements, each against its target and a peer from the same run:
//
// 1. Verify vs read. A log of N events (--events, default 10,000,000) is
//    built fast: 2 threads, Log::append with batches of 1,000 events
//    (max_events_per_append) of ~150-byte FlexBuffer payloads over 1,000
//    streams. Then, with the log opened read-only (LogOptions::read_only, as
//    `engram audit verify` opens it), per repeat and interleaved:
//    - the raw read: Log::read_all from position 1 to the head in pages of
//      max_read_count (10,000), which decodes and FlatBuffers-verifies every
//      envelope: the sequential pass every reader pays, and the limit;
//    - Log::verify(1, head) with the worker threads `engram audit verify`
//      uses by default, one per core (each reads and checks its own chunks
//      of the log), then with 2, 1 and 0 (checking on the calling thread) to
//      show the scaling.
//    Target: verify (the CLI's default threads) >= 70% of the read rate.
// 2. Appends during an audit. A writable Log (writer_spin_ns = 0, as
//    `engram serve` opens it) over a base log of --live-base events (default
//    1,000,000) takes a fixed load: 16 threads, each appending 1-event
//    appends back to back. Auditors are other processes (this binary
//    re-executed with --auditor) that open the log as a RocksDB secondary
//    and loop catch_up(), a whole-log verify() with the CLI's default
//    threads and a few read_stream() calls. The time is cut into 1 s slices
//    that take turns: (a) every auditor stopped (SIGSTOP); (b) the auditor
//    running under SCHED_IDLE, as `engram audit` runs (set before its first
//    thread starts, as AuditLog::open in tools/engram/cmd_audit.cc does);
//    (c) a second one running at normal priority (SCHED_OTHER, nice 0, as
//    the CLI runs with ENGRAM_AUDIT_PRIORITY=normal), to show what idle
//    scheduling saves. Each gets --seconds of slices per repeat. Target:
//    appends/s in (b) >= 90% of (a).
//
// Usage: engram_bench_audit [--events N] [--live-base N] [--seconds S] ...
//        (--help lists every flag). Progress goes to stderr; stdout gets the
//        result tables; the report goes to --out.

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <rocksdb/version.h>
#include <sched.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/report.h"
#include "core/flexjson.h"
#include "core/log.h"

#ifndef ENGRAM_BENCH_ALLOCATOR
#define ENGRAM_BENCH_ALLOCATOR "glibc malloc"
#endif

extern char** environ;

namespace {

using namespace engram::bench;  // bench/report.h

namespace fs = std::filesystem;
namespace core = engram::core;
using Clock = std::chrono::steady_clock;

// Targets from the issue.
constexpr double kTargetVerifyVsRead = 0.70;
constexpr double kTargetAppendsWithAudit = 0.90;

// The log's shape.
constexpr size_t kBuildThreads = 2;
constexpr size_t kEventsPerBuildAppend = 1000;  // LogOptions::max_events_per_append
constexpr size_t kStreams = 1000;
constexpr size_t kPayloadPool = 256;  // distinct payloads per builder thread
constexpr size_t kMemoBytes = 96;     // makes a payload of ~150 bytes

// `engram audit verify`'s default number of worker threads (AuditFlags in
// tools/engram/cmd_audit.cc): one per core. The run the target is about.
size_t cli_verify_threads() {
  return std::max<size_t>(1, std::thread::hardware_concurrency());
}

// Each count once, in the order first given.
std::vector<size_t> dedupe(const std::vector<size_t>& counts) {
  std::vector<size_t> out;
  for (size_t c : counts) {
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

// Part 1's thread counts: the CLI's default, then 2, 1 and 0 for the scaling.
std::vector<size_t> default_verify_threads() {
  return dedupe({cli_verify_threads(), 2, 1, 0});
}

// The live load.
constexpr int kLiveThreads = 16;
constexpr auto kLiveWarmup = std::chrono::seconds(1);
constexpr size_t kMaxCallsPerThread = 2'000'000;
// The auditor's read_stream calls after each verify pass.
constexpr int kAuditorStreamReads = 8;
constexpr size_t kAuditorStreamReadCount = 100;
// How long the auditor may take to open the log and report ready.
constexpr int kAuditorReadyTimeoutMs = 120'000;

struct Settings {
  uint64_t events = 10'000'000;
  uint64_t live_base = 1'000'000;
  double seconds = 10;
  int repeats = 3;
  std::string only = "all";  // all | verify | live
  // Log::verify's worker threads, one verify pass each per repeat.
  std::vector<size_t> verify_threads = default_verify_threads();
  fs::path base_dir;
  fs::path reuse;  // a log directory built earlier: part 1 skips the build
  bool keep = false;
  bool normal_run = true;  // part 2's run (c): the auditor at normal priority
  fs::path out = "bench/results/audit.md";
  std::string command_line;
  fs::path self;  // this binary, re-executed as the auditor
};

uint64_t env_count(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v >= 1)) {
    fail(fmt::format("{}='{}' is not a positive number", name, text));
  }
  return static_cast<uint64_t>(v);
}

std::string stream_name(size_t i) {
  return fmt::format("account-{:04}", i % kStreams);
}

std::unique_ptr<core::Log> open_log(const fs::path& dir, const core::LogOptions& options) {
  auto opened = core::Log::open(dir, options);
  if (!opened) fail(fmt::format("opening {}: {}", dir.string(), opened.error().to_string()));
  return std::move(*opened);
}

core::LogOptions read_only_options() {
  core::LogOptions o;
  o.read_only = true;
  o.create_if_missing = false;
  return o;
}

// What a directory holds on disk: bytes and RocksDB table files.
struct DiskUse {
  uint64_t bytes = 0;
  uint64_t sst_files = 0;
};

DiskUse disk_use(const fs::path& dir) {
  DiskUse d;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    d.bytes += it->file_size(ec);
    if (it->path().extension() == ".sst") ++d.sst_files;
  }
  return d;
}

// ---------------------------------------------------------------------------
// Building a log fast.

// Payloads a generic stream would hold: a FlexBuffer map, ~150 bytes, made
// by the same JSON -> FlexBuffer path the HTTP API uses. Not all alike, in
// case anything on the way compresses.
std::vector<std::string> make_payloads(uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> letter(0, 61);
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::vector<std::string> out;
  out.reserve(kPayloadPool);
  for (size_t i = 0; i < kPayloadPool; ++i) {
    std::string memo(kMemoBytes, ' ');
    for (char& c : memo) c = kAlphabet[letter(gen)];
    const nlohmann::json body = {{"amount", static_cast<int>(gen() % 100'000)},
                                 {"currency", "EUR"},
                                 {"memo", memo},
                                 {"seq", static_cast<int>(i)}};
    auto flex = core::json_to_flex(body);
    if (!flex) fail("encoding a payload: " + flex.error().to_string());
    out.push_back(std::move(*flex));
  }
  return out;
}

struct BuildInfo {
  uint64_t events = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  double payload_bytes = 0;  // average
  DiskUse disk;
};

// Appends `count` events to an empty log at `dir` from kBuildThreads
// threads, kEventsPerBuildAppend events per append, each append to the next
// of kStreams streams; closes the log.
BuildInfo build_log(const fs::path& dir, uint64_t count, std::string_view label) {
  BuildInfo info;
  const double cpu0 = process_cpu_seconds();
  const Clock::time_point t0 = Clock::now();
  {
    const std::unique_ptr<core::Log> log = open_log(dir, core::LogOptions{});
    if (log->head().position.value() != 0) fail(dir.string() + " already holds a log");
    const uint64_t appends = (count + kEventsPerBuildAppend - 1) / kEventsPerBuildAppend;
    std::atomic<uint64_t> next{0};
    std::atomic<uint64_t> done_events{0};
    std::atomic<bool> failed{false};
    std::vector<std::string> errors(kBuildThreads);
    std::vector<double> payload_bytes(kBuildThreads, 0);
    std::vector<std::thread> pool;
    for (size_t t = 0; t < kBuildThreads; ++t) {
      pool.emplace_back([&, t] {
        const std::vector<std::string> payloads = make_payloads(static_cast<uint32_t>(t + 1));
        for (const std::string& p : payloads) payload_bytes[t] += static_cast<double>(p.size());
        payload_bytes[t] /= static_cast<double>(payloads.size());
        std::vector<core::EventData> events;
        core::AppendContext context;
        context.actor = "bench-audit";
        for (;;) {
          const uint64_t k = next.fetch_add(1, std::memory_order_relaxed);
          if (k >= appends || failed.load(std::memory_order_relaxed)) return;
          const uint64_t first = k * kEventsPerBuildAppend;
          const size_t n =
              static_cast<size_t>(std::min<uint64_t>(kEventsPerBuildAppend, count - first));
          events.resize(n);
          for (size_t i = 0; i < n; ++i) {
            core::EventData& e = events[i];
            e.id = core::Uuid::v7_now();
            e.type = (first + i) % 3 == 0 ? "FundsDeposited" : "FundsWithdrawn";
            e.payload_format = core::PayloadFormat::flexbuffer;
            e.payload = payloads[(first + i) % payloads.size()];
          }
          auto r = log->append(stream_name(static_cast<size_t>(k)), core::ExpectedVersion::any(),
                               events, context);
          if (!r) {
            errors[t] = r.error().to_string();
            failed.store(true);
            return;
          }
          done_events.fetch_add(n, std::memory_order_relaxed);
        }
      });
    }
    Clock::time_point last_note = t0;
    while (done_events.load() < count && !failed.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (Clock::now() - last_note > std::chrono::seconds(10)) {
        last_note = Clock::now();
        const double d = static_cast<double>(done_events.load());
        std::cerr << fmt::format("  {}: {} / {} events, {} events/s\n", label, with_commas(d),
                                 with_commas(static_cast<double>(count)),
                                 with_commas(d / seconds_since(t0)));
      }
    }
    for (std::thread& th : pool) th.join();
    for (const std::string& e : errors) {
      if (!e.empty()) fail("building the log: " + e);
    }
    info.events = log->head().position.value();
    if (info.events != count) fail(fmt::format("built {} events, not {}", info.events, count));
    double sum = 0;
    for (double b : payload_bytes) sum += b;
    info.payload_bytes = sum / static_cast<double>(kBuildThreads);
  }  // closes the log: its queue drained, RocksDB closed
  info.seconds = seconds_since(t0);
  info.cpu_seconds = process_cpu_seconds() - cpu0;
  info.disk = disk_use(dir);
  return info;
}

// ---------------------------------------------------------------------------
// 1. Verify vs a plain sequential read.

// The raw read is bench/report.h's run_read: read_all from 1 to the head
// in the largest pages it allows, touching every event's type and payload.

struct VerifyRun {
  PassRun pass;
  uint64_t tree_nodes = 0;
  uint64_t index_entries = 0;
  uint64_t streams = 0;
};

VerifyRun run_verify(const core::Log& log, uint64_t head, size_t threads) {
  const double cpu0 = process_cpu_seconds();
  const Clock::time_point t0 = Clock::now();
  auto report = log.verify(core::Position(1), core::Position(head), {}, threads);
  VerifyRun r;
  r.pass.seconds = seconds_since(t0);
  r.pass.cpu_seconds = process_cpu_seconds() - cpu0;
  if (!report) fail("verify: " + report.error().to_string());
  if (!report->ok()) {
    fail(fmt::format("verify found a problem at {}: {}", report->first_bad->value(),
                     report->problem));
  }
  if (report->events_checked != head || !report->whole_log) {
    fail(fmt::format("verify checked {} events of {} (whole log: {})", report->events_checked, head,
                     report->whole_log));
  }
  r.pass.events_per_second = static_cast<double>(head) / r.pass.seconds;
  r.tree_nodes = report->tree_nodes_checked;
  r.index_entries = report->index_entries_checked;
  r.streams = report->streams_checked;
  return r;
}

struct VerifyReportData {
  bool built = false;  // false: --reuse
  BuildInfo build;
  fs::path log_dir;
  uint64_t events = 0;
  DiskUse disk;
  double open_seconds = 0;
  PassRun warmup;
  std::vector<PassRun> reads;
  std::vector<size_t> threads;                   // as Settings::verify_threads
  std::vector<std::vector<VerifyRun>> verifies;  // [index in threads][repeat]
  std::string load_before, load_after;
};

VerifyReportData measure_verify(const Settings& s, const fs::path& scratch) {
  VerifyReportData d;
  d.load_before = load_average();
  d.threads = s.verify_threads;
  d.verifies.resize(d.threads.size());
  if (!s.reuse.empty()) {
    d.log_dir = s.reuse;
  } else {
    d.log_dir = scratch / "log";
    d.built = true;
    std::cerr << fmt::format("building a log of {} events in {}\n",
                             with_commas(static_cast<double>(s.events)), d.log_dir.string());
    d.build = build_log(d.log_dir, s.events, "build");
    std::cerr << fmt::format(
        "built in {:.1f} s: {} events/s ({:.1f} CPU s), {:.0f} MiB on disk\n", d.build.seconds,
        with_commas(static_cast<double>(d.build.events) / d.build.seconds), d.build.cpu_seconds,
        static_cast<double>(d.build.disk.bytes) / (1 << 20));
  }
  d.disk = disk_use(d.log_dir);

  const Clock::time_point t_open = Clock::now();
  const std::unique_ptr<core::Log> log = open_log(d.log_dir, read_only_options());
  d.open_seconds = seconds_since(t_open);
  d.events = log->head().position.value();
  if (d.events == 0) fail(d.log_dir.string() + " holds no events");
  std::cerr << fmt::format("opened read-only in {:.2f} s: {} events\n", d.open_seconds,
                           with_commas(static_cast<double>(d.events)));

  // One unmeasured read first, so that every measured pass finds the files
  // as warm as the one before it.
  d.warmup = run_read(*log, d.events);
  std::cerr << fmt::format("warm-up read: {} events/s\n", with_commas(d.warmup.events_per_second));
  for (int rep = 1; rep <= s.repeats; ++rep) {
    d.reads.push_back(run_read(*log, d.events));
    std::cerr << fmt::format("#{} read:            {:>10} events/s ({:.2f} s, {:.2f} CPU s)\n", rep,
                             with_commas(d.reads.back().events_per_second), d.reads.back().seconds,
                             d.reads.back().cpu_seconds);
    for (size_t k = 0; k < d.threads.size(); ++k) {
      d.verifies[k].push_back(run_verify(*log, d.events, d.threads[k]));
      const PassRun& v = d.verifies[k].back().pass;
      std::cerr << fmt::format(
          "#{} verify threads={}: {:>10} events/s ({:.2f} s, {:.2f} CPU s), {:.3f}x read\n", rep,
          d.threads[k], with_commas(v.events_per_second), v.seconds, v.cpu_seconds,
          v.events_per_second / d.reads.back().events_per_second);
    }
  }
  d.load_after = load_average();
  return d;
}

// ---------------------------------------------------------------------------
// 2. Appends while an audit runs.
//
// Other work on the cores comes and goes over seconds, so the three variants
// are not run one after the other: one append load runs throughout, and
// the time is cut into short slices that take turns, (a) alone, (b) with
// the SCHED_IDLE auditor running, (c) with the normal-priority auditor
// running. An auditor outside its slices is stopped (SIGSTOP): it holds the
// log open but uses no CPU. Each repeat gives every variant --seconds of
// slices.

constexpr auto kSlice = std::chrono::milliseconds(1000);
// After a switch, before the slice is measured: the writer's queue and the
// scheduler settle.
constexpr auto kSliceGap = std::chrono::milliseconds(250);

// (a) alone, (b) with an auditor process under SCHED_IDLE, as `engram audit`
// runs, (c) the same auditor at normal priority: what idle scheduling saves
// the appenders.
enum class Variant { alone = 0, idle = 1, normal = 2 };
constexpr size_t kVariants = 3;

std::string_view variant_name(Variant v) {
  switch (v) {
    case Variant::alone:
      return "(a) alone";
    case Variant::idle:
      return "(b) auditor under SCHED_IDLE";
    case Variant::normal:
      return "(c) auditor at normal priority";
  }
  return "?";
}

// The scheduling policy an auditor process runs under.
enum class Priority { idle, normal };

std::string_view priority_flag(Priority p) {
  return p == Priority::idle ? "idle" : "normal";
}

int policy_of(Priority p) {
  return p == Priority::idle ? SCHED_IDLE : SCHED_OTHER;
}

std::string policy_name(int policy) {
  switch (policy) {
    case SCHED_OTHER:
      return "SCHED_OTHER";
    case SCHED_IDLE:
      return "SCHED_IDLE";
    case SCHED_BATCH:
      return "SCHED_BATCH";
    case SCHED_FIFO:
      return "SCHED_FIFO";
    case SCHED_RR:
      return "SCHED_RR";
  }
  return fmt::format("policy {}", policy);
}

// The auditor, in its own process (this binary with --auditor): opens the
// log as a RocksDB secondary, prints "ready", then loops catch_up(), a
// whole-log verify() with the CLI's default threads and a few read_stream()
// calls, printing "pass <events>" after each verify, until its stdin closes.
int run_auditor(const fs::path& log_dir, const fs::path& secondary_dir, Priority priority) {
  // Never outlive the bench, even when stopped (SIGKILL ends a stopped process).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // As AuditLog::open does, before any thread starts: on Linux the policy
  // belongs to the calling thread, and threads inherit their creator's. The
  // CLI ignores a refusal; here it would make (b) measure something else.
  if (priority == Priority::idle) {
    sched_param param{};
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
      fail(errno_text("sched_setscheduler(SCHED_IDLE)"));
    }
  }
  core::LogOptions o = read_only_options();
  o.secondary_dir = secondary_dir;
  const std::unique_ptr<core::Log> log = open_log(log_dir, o);
  auto first = log->catch_up();
  if (!first) fail("catch_up: " + first.error().to_string());

  std::atomic<bool> stop{false};
  std::thread watcher([&stop] {
    char buf[64];
    while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    stop.store(true);
  });
  watcher.detach();  // blocked in read() until stdin closes; exit() ends it
  std::cout << fmt::format("ready {}\n", first->position.value()) << std::flush;

  std::mt19937 gen(42);
  while (!stop.load()) {
    auto head = log->catch_up();
    if (!head) fail("catch_up: " + head.error().to_string());
    auto report = log->verify(core::Position(1), head->position, {}, cli_verify_threads());
    if (!report) fail("verify: " + report.error().to_string());
    if (!report->ok()) {
      fail(fmt::format("verify found a problem at {}: {}", report->first_bad->value(),
                       report->problem));
    }
    std::cout << fmt::format("pass {}\n", report->events_checked) << std::flush;
    for (int i = 0; i < kAuditorStreamReads && !stop.load(); ++i) {
      const std::string stream = stream_name(gen() % kStreams);
      const bool forward = i % 2 == 0;
      auto events = log->read_stream(
          stream, forward ? core::StreamVersion(1) : core::StreamVersion(UINT64_MAX),
          kAuditorStreamReadCount, forward ? core::Direction::forward : core::Direction::backward);
      if (!events) fail("read_stream: " + events.error().to_string());
    }
  }
  std::cout << "done\n" << std::flush;
  return 0;
}

// The auditor process as the parent sees it: spawned with pipes on its
// stdin and stdout, paused and resumed with SIGSTOP / SIGCONT; finish()
// closes its stdin and waits for it. Each pause notes the scheduling policy
// of every thread it has then.
class Auditor {
 public:
  Auditor(const fs::path& self, const fs::path& log_dir, const fs::path& secondary_dir,
          Priority priority) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) fail(errno_text("pipe2"));
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      fail(errno_text("pipe2"));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<std::string> args = {self.string(),
                                     "--auditor",
                                     log_dir.string(),
                                     "--secondary",
                                     secondary_dir.string(),
                                     "--priority",
                                     std::string(priority_flag(priority))};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, self.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      close_fds();
      fail(fmt::format("spawning the auditor: {}", std::strerror(rc)));
    }
  }
  ~Auditor() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);  // only on an error path: finish() clears pid_
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    close_fds();
  }
  Auditor(const Auditor&) = delete;
  Auditor& operator=(const Auditor&) = delete;

  // Waits for "ready <head>".
  void wait_ready() {
    const std::string line = read_line(kAuditorReadyTimeoutMs);
    if (!line.starts_with("ready ")) fail("the auditor did not start: '" + line + "'");
  }
  void pause() {
    if (::kill(pid_, SIGSTOP) != 0) fail(errno_text("SIGSTOP"));
    // SIGSTOP takes effect asynchronously; wait until every thread stopped.
    for (int i = 0; i < 1000 && !stopped(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    note_policies();
  }
  void resume() {
    if (::kill(pid_, SIGCONT) != 0) fail(errno_text("SIGCONT"));
  }
  // CPU seconds the process has used (user + system, all threads).
  double cpu_seconds() const {
    std::ifstream in(fmt::format("/proc/{}/stat", pid_));
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return 0;
    std::istringstream fields(stat.substr(paren + 2));
    std::string f;
    double ticks = 0;
    // Fields 3.. after the command; utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && fields >> f; ++i) {
      if (i >= 14) ticks += std::stod(f);
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  // Bytes the process has read from and written to the block layer
  // (/proc/<pid>/io read_bytes, write_bytes): page cache hits are not in it.
  std::pair<uint64_t, uint64_t> disk_bytes() const {
    std::ifstream in(fmt::format("/proc/{}/io", pid_));
    uint64_t read = 0, written = 0;
    for (std::string key; in >> key;) {
      uint64_t value = 0;
      in >> value;
      if (key == "read_bytes:") read = value;
      if (key == "write_bytes:") written = value;
    }
    return {read, written};
  }
  // The scheduling policies its threads were seen with at the pauses, and
  // the most threads it had at one.
  const std::set<int>& policies() const { return policies_; }
  size_t max_threads() const { return max_threads_; }
  // Verify passes finished so far, and the events they checked (reads what
  // the process has written without waiting).
  std::pair<uint64_t, uint64_t> passes() {
    for (;;) {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      char buf[4096];
      const ssize_t got = ::read(stdout_, buf, sizeof buf);
      if (got <= 0) break;
      buffer_.append(buf, static_cast<size_t>(got));
    }
    for (size_t nl; (nl = buffer_.find('\n')) != std::string::npos;) {
      const std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.starts_with("pass ")) fail("the auditor said '" + line + "'");
      ++passes_;
      events_ += std::stoull(line.substr(5));
    }
    return {passes_, events_};
  }
  // Resumes the process, closes its stdin and waits for it to exit; a
  // verify pass in progress finishes first.
  void finish() {
    resume();
    ::close(stdin_);
    stdin_ = -1;
    std::string last;
    for (std::string line; !(line = read_line(-1)).empty();) last = line;
    int status = 0;
    const pid_t pid = std::exchange(pid_, -1);
    if (::waitpid(pid, &status, 0) != pid) fail(errno_text("waitpid"));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || last != "done") {
      fail(fmt::format("the auditor failed (status {}, last line '{}')", status, last));
    }
  }

 private:
  // The fields of /proc/<pid>/task/<tid>/stat after the command, from field 3.
  static std::vector<std::string> stat_fields(const fs::path& stat_file) {
    std::ifstream in(stat_file);
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> out;
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return out;
    std::istringstream fields(stat.substr(paren + 1));
    for (std::string f; fields >> f;) out.push_back(f);
    return out;
  }
  void note_policies() {
    const fs::path tasks = fmt::format("/proc/{}/task", pid_);
    std::error_code ec;
    size_t threads = 0;
    for (const auto& t : fs::directory_iterator(tasks, ec)) {
      const std::vector<std::string> f = stat_fields(t.path() / "stat");
      constexpr size_t kPolicy = 41 - 3;  // field 41, "policy"
      if (f.size() > kPolicy) {
        policies_.insert(std::stoi(f[kPolicy]));
        ++threads;
      }
    }
    max_threads_ = std::max(max_threads_, threads);
  }
  bool stopped() const {
    const fs::path tasks = fmt::format("/proc/{}/task", pid_);
    std::error_code ec;
    for (const auto& t : fs::directory_iterator(tasks, ec)) {
      std::ifstream in(t.path() / "stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const size_t paren = stat.rfind(')');
      if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'T') {
        return false;
      }
    }
    return !ec;
  }
  // One line from the auditor's stdout; "" at EOF. timeout_ms < 0: no limit.
  std::string read_line(int timeout_ms) {
    const Clock::time_point t0 = Clock::now();
    for (;;) {
      if (const size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      int wait = -1;
      if (timeout_ms >= 0) {
        const auto left = timeout_ms - static_cast<int>(seconds_since(t0) * 1000);
        if (left <= 0) fail("timed out waiting for the auditor");
        wait = left;
      }
      pollfd p{stdout_, POLLIN, 0};
      const int n = ::poll(&p, 1, wait);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(errno_text("poll"));
      if (n == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(stdout_, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail(errno_text("reading from the auditor"));
      if (got == 0) return std::exchange(buffer_, std::string());
      buffer_.append(buf, static_cast<size_t>(got));
    }
  }
  void close_fds() {
    if (stdin_ >= 0) ::close(stdin_);
    if (stdout_ >= 0) ::close(stdout_);
    stdin_ = stdout_ = -1;
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string buffer_;
  uint64_t passes_ = 0, events_ = 0;
  std::set<int> policies_;
  size_t max_threads_ = 0;
};

// One variant's slices within one repeat.
struct LiveRun {
  double appends_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double measured_s = 0;  // the slices' total
  uint64_t appends = 0;
  double cpu_share = 0;  // the appending process's CPU seconds per measured second
  double events_per_fsync = 0;
  double fsync_ms = 0;  // mean time in a WAL sync (LogStats::sync_nanos_total / syncs)
  // With an auditor: what it did while running in this variant's slices.
  uint64_t auditor_passes = 0;
  uint64_t auditor_events = 0;
  double auditor_cpu_share = 0;
  double auditor_read_mb = 0;  // from the disk, not the page cache
  double auditor_written_mb = 0;
};

// kLiveThreads threads appending 1-event appends back to back, each to its
// own stream, for as long as the object lives. Each call that completes
// inside a measured slice counts for that slice's bucket, with its latency;
// calls that complete between slices are not counted.
class AppendLoad {
 public:
  AppendLoad(core::Log& log, size_t buckets) : log_(log), buckets_(buckets) {
    workers_.resize(kLiveThreads);
    for (Worker& w : workers_) w.latencies_ns.resize(buckets);
    const std::vector<std::string> payloads = make_payloads(99);
    for (int t = 0; t < kLiveThreads; ++t) {
      threads_.emplace_back([this, t, payloads] { run(t, payloads); });
    }
  }
  ~AppendLoad() { join(); }  // never throws: stop() reports a failed append
  AppendLoad(const AppendLoad&) = delete;
  AppendLoad& operator=(const AppendLoad&) = delete;

  // -1: between slices.
  void set_bucket(int bucket) { bucket_.store(bucket, std::memory_order_release); }
  void stop() {
    join();
    for (const Worker& w : workers_) {
      if (!w.error.empty()) fail("an append failed: " + w.error);
    }
  }
  // After stop(): every latency of a bucket, sorted.
  std::vector<int64_t> latencies(size_t bucket) const {
    std::vector<int64_t> all;
    for (const Worker& w : workers_) {
      all.insert(all.end(), w.latencies_ns[bucket].begin(), w.latencies_ns[bucket].end());
    }
    std::sort(all.begin(), all.end());
    return all;
  }

 private:
  void join() {
    stopping_.store(true);
    for (std::thread& th : threads_) {
      if (th.joinable()) th.join();
    }
  }

  struct Worker {
    std::vector<std::vector<int64_t>> latencies_ns;  // by bucket
    std::string error;
  };

  void run(int t, const std::vector<std::string>& payloads) {
    Worker& w = workers_[static_cast<size_t>(t)];
    const std::string stream = stream_name(static_cast<size_t>(t));
    core::EventData e;
    e.type = "FundsDeposited";
    e.payload_format = core::PayloadFormat::flexbuffer;
    core::AppendContext context;
    context.actor = "bench-audit";
    for (size_t i = 0; !stopping_.load(std::memory_order_relaxed); ++i) {
      e.id = core::Uuid::v7_now();
      e.payload = payloads[(static_cast<size_t>(t) + i) % payloads.size()];
      const Clock::time_point t0 = Clock::now();
      auto r = log_.append(stream, core::ExpectedVersion::any(), std::span(&e, 1), context);
      const Clock::time_point t1 = Clock::now();
      if (!r) {
        w.error = r.error().to_string();
        return;
      }
      const int bucket = bucket_.load(std::memory_order_acquire);
      if (bucket >= 0 && static_cast<size_t>(bucket) < buckets_ &&
          w.latencies_ns[static_cast<size_t>(bucket)].size() < kMaxCallsPerThread) {
        w.latencies_ns[static_cast<size_t>(bucket)].push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      }
    }
  }

  core::Log& log_;
  size_t buckets_;
  std::vector<Worker> workers_;
  std::vector<std::thread> threads_;
  std::atomic<int> bucket_{-1};
  std::atomic<bool> stopping_{false};
};

struct LiveReportData {
  BuildInfo base;
  std::vector<Variant> variants;
  std::vector<std::vector<LiveRun>> runs;  // [variant][repeat]
  uint64_t head_before = 0, head_after = 0;
  double slices_per_variant = 0;  // per repeat
  // Per auditor variant: the policies its threads had at the pauses, and the
  // most threads it had at one.
  std::vector<std::set<int>> policies;
  std::vector<size_t> auditor_threads;
  std::string load_before, load_after;
};

LiveReportData measure_live(const Settings& s, const fs::path& scratch) {
  LiveReportData d;
  d.load_before = load_average();
  const fs::path dir = scratch / "live";
  std::cerr << fmt::format("building the live base log of {} events in {}\n",
                           with_commas(static_cast<double>(s.live_base)), dir.string());
  d.base = build_log(dir, s.live_base, "live base");
  std::cerr << fmt::format("built in {:.1f} s\n", d.base.seconds);

  core::LogOptions o;
  o.writer_spin_ns = 0;  // as `engram serve` opens it
  const std::unique_ptr<core::Log> log = open_log(dir, o);
  d.head_before = log->head().position.value();

  d.variants = {Variant::alone, Variant::idle};
  if (s.normal_run) d.variants.push_back(Variant::normal);
  std::vector<std::unique_ptr<Auditor>> auditors(kVariants);
  for (const Variant v : d.variants) {
    if (v == Variant::alone) continue;
    const Priority priority = v == Variant::idle ? Priority::idle : Priority::normal;
    auto& a = auditors[static_cast<size_t>(v)];
    a = std::make_unique<Auditor>(
        s.self, dir, scratch / fmt::format("secondary-{}", static_cast<int>(v)), priority);
    a->wait_ready();
    a->pause();
  }

  const int slices = std::max(
      1, static_cast<int>(std::lround(s.seconds / std::chrono::duration<double>(kSlice).count())));
  d.slices_per_variant = slices;
  const size_t buckets = static_cast<size_t>(s.repeats) * kVariants;
  struct Acc {
    double seconds = 0, cpu = 0, auditor_cpu = 0;
    uint64_t events = 0, syncs = 0, sync_nanos = 0, passes = 0, verified = 0;
    uint64_t auditor_read = 0, auditor_written = 0;
  };
  std::vector<Acc> acc(buckets);
  {
    AppendLoad load(*log, buckets);
    std::this_thread::sleep_for(kLiveWarmup);
    for (int rep = 0; rep < s.repeats; ++rep) {
      for (int slice = 0; slice < slices; ++slice) {
        // Each round starts with another variant, so none always follows the same one.
        for (size_t k = 0; k < d.variants.size(); ++k) {
          const Variant v = d.variants[(k + static_cast<size_t>(slice)) % d.variants.size()];
          Auditor* a = auditors[static_cast<size_t>(v)].get();
          if (a != nullptr) a->resume();
          std::this_thread::sleep_for(kSliceGap);
          const size_t bucket = static_cast<size_t>(rep) * kVariants + static_cast<size_t>(v);
          const core::LogStats st0 = log->stats();
          const double cpu0 = process_cpu_seconds();
          const double acpu0 = a != nullptr ? a->cpu_seconds() : 0;
          const auto [p0, e0] = a != nullptr ? a->passes() : std::pair<uint64_t, uint64_t>{};
          const auto [r0, w0] = a != nullptr ? a->disk_bytes() : std::pair<uint64_t, uint64_t>{};
          const Clock::time_point t0 = Clock::now();
          load.set_bucket(static_cast<int>(bucket));
          std::this_thread::sleep_for(kSlice);
          load.set_bucket(-1);
          Acc& x = acc[bucket];
          x.seconds += seconds_since(t0);
          x.cpu += process_cpu_seconds() - cpu0;
          const core::LogStats st1 = log->stats();
          x.events += st1.events_appended - st0.events_appended;
          x.syncs += st1.syncs - st0.syncs;
          x.sync_nanos += st1.sync_nanos_total - st0.sync_nanos_total;
          if (a != nullptr) {
            a->pause();
            x.auditor_cpu += a->cpu_seconds() - acpu0;
            const auto [r1, w1] = a->disk_bytes();
            x.auditor_read += r1 - r0;
            x.auditor_written += w1 - w0;
            const auto [p1, e1] = a->passes();
            x.passes += p1 - p0;
            x.verified += e1 - e0;
          }
        }
      }
      std::cerr << fmt::format("repeat {}: {} slices of {} ms per variant; load average {}\n",
                               rep + 1, slices, kSlice.count(), load_average());
    }
    load.stop();
    d.runs.resize(kVariants);
    for (int rep = 0; rep < s.repeats; ++rep) {
      for (const Variant v : d.variants) {
        const size_t bucket = static_cast<size_t>(rep) * kVariants + static_cast<size_t>(v);
        const Acc& x = acc[bucket];
        const std::vector<int64_t> lat = load.latencies(bucket);
        if (lat.empty()) fail("no append completed in a measured slice");
        LiveRun r;
        r.measured_s = x.seconds;
        r.appends = lat.size();
        r.appends_per_second = static_cast<double>(lat.size()) / x.seconds;
        r.p50_ms = percentile_ms(lat, 0.50);
        r.p99_ms = percentile_ms(lat, 0.99);
        r.cpu_share = x.cpu / x.seconds;
        if (x.syncs > 0) {
          r.events_per_fsync = static_cast<double>(x.events) / static_cast<double>(x.syncs);
          r.fsync_ms = static_cast<double>(x.sync_nanos) / static_cast<double>(x.syncs) / 1e6;
        }
        r.auditor_read_mb = static_cast<double>(x.auditor_read) / 1e6;
        r.auditor_written_mb = static_cast<double>(x.auditor_written) / 1e6;
        r.auditor_passes = x.passes;
        r.auditor_events = x.verified;
        r.auditor_cpu_share = x.auditor_cpu / x.seconds;
        std::cerr << fmt::format(
            "#{} {:<30}: {:>7} appends/s, p50 {:.3f} ms, p99 {:.3f} ms, {:.1f} events/fsync, "
            "fsync {:.2f} ms, {:.2f} cores{}\n",
            rep + 1, variant_name(v), with_commas(r.appends_per_second), r.p50_ms, r.p99_ms,
            r.events_per_fsync, r.fsync_ms, r.cpu_share,
            v == Variant::alone ? std::string()
                                : fmt::format("; auditor {:.2f} cores, {} verify passes finished",
                                              r.auditor_cpu_share, r.auditor_passes));
        d.runs[static_cast<size_t>(v)].push_back(r);
      }
    }
  }
  // Every thread of each auditor ran under the policy its variant names.
  d.policies.resize(kVariants);
  d.auditor_threads.resize(kVariants);
  for (const Variant v : d.variants) {
    const Auditor* a = auditors[static_cast<size_t>(v)].get();
    if (a == nullptr) continue;
    const int want = policy_of(v == Variant::idle ? Priority::idle : Priority::normal);
    d.policies[static_cast<size_t>(v)] = a->policies();
    d.auditor_threads[static_cast<size_t>(v)] = a->max_threads();
    if (a->policies() != std::set<int>{want}) {
      std::vector<std::string> seen;
      for (int p : a->policies()) seen.push_back(policy_name(p));
      fail(fmt::format("{}: its threads ran under {}, not only {}", variant_name(v),
                       fmt::join(seen, ", "), policy_name(want)));
    }
  }
  for (auto& a : auditors) {
    if (a) a->finish();
  }
  for (const Variant v : d.variants) {
    std::error_code ec;
    fs::remove_all(scratch / fmt::format("secondary-{}", static_cast<int>(v)), ec);
  }
  d.head_after = log->head().position.value();
  d.load_after = load_average();
  return d;
}

// ---------------------------------------------------------------------------
// Report.

std::string rate(double v) {
  return with_commas(v);
}

std::string ratio3(double v) {
  return fmt::format("{:.3f}", v);
}

std::string render_verify(const VerifyReportData& d) {
  std::string out;
  const auto reads = each(d.reads, [](const PassRun& r) { return r.events_per_second; });
  const double read = median(reads);
  out += fmt::format("### 1. `audit verify` vs a plain sequential read ({} events)\n\n",
                     with_commas(static_cast<double>(d.events)));
  out +=
      "| metric | ours: verify (events/s) | limit: read_all (events/s) | ratio | target | "
      "verdict | runs (verify / read) |\n";
  out += "|---|---:|---:|---:|---|---|---|\n";
  for (size_t k = 0; k < d.threads.size(); ++k) {
    const auto v = each(d.verifies[k], [](const VerifyRun& r) { return r.pass.events_per_second; });
    const double ratio = median(v) / read;
    const bool is_default = d.threads[k] == cli_verify_threads();
    const std::string threads =
        d.threads[k] == 0   ? std::string("on the calling thread (threads = 0)")
        : d.threads[k] == 1 ? std::string("1 worker thread")
                            : fmt::format("{} worker threads", d.threads[k]);
    out += fmt::format(
        "| verify, {}{} | {} | {} | {:.3f} | {} | {} | {} / {} |\n", threads,
        is_default ? " (`engram audit verify`'s default: one per core)" : "", rate(median(v)),
        rate(read), ratio,
        is_default ? fmt::format(">= {:.2f}", kTargetVerifyVsRead) : std::string("(scaling)"),
        is_default ? verdict(ratio >= kTargetVerifyVsRead) : std::string(), list(v, rate),
        list(reads, rate));
  }
  // What a pass costs in CPU moves much less than its rate when other work
  // shares the cores; with it, the best ratio the cores allow.
  const auto events = static_cast<double>(d.events);
  const double read_us =
      median(each(d.reads, [&](const PassRun& r) { return r.cpu_seconds / events; })) * 1e6;
  out += fmt::format("\nCPU per event (medians, all of the process's threads): read {:.3f} us",
                     read_us);
  for (size_t k = 0; k < d.threads.size(); ++k) {
    const double us =
        median(
            each(d.verifies[k], [&](const VerifyRun& r) { return r.pass.cpu_seconds / events; })) *
        1e6;
    // The read runs on one thread; a verify can use 1 + threads + 1 (the
    // index scan) threads, at most the machine's cores.
    const double cores = std::min<double>(static_cast<double>(d.threads[k]) + 2,
                                          std::thread::hardware_concurrency());
    out += fmt::format(
        "; verify threads={} {:.3f} us ({:.2f}x the read; with {:g} cores all its own, at best "
        "{:.2f}x the read's rate)",
        d.threads[k], us, us / read_us, cores, cores * read_us / us);
  }
  out += ".\n";
  out += "\nPer repeat (read and verify alternate, so a repeat's passes saw the same machine):\n\n";
  for (size_t i = 0; i < d.reads.size(); ++i) {
    const PassRun& r = d.reads[i];
    out +=
        fmt::format("- repeat {}: read {:.2f} s ({:.2f} CPU s, {} events per CPU s)", i + 1,
                    r.seconds, r.cpu_seconds, rate(static_cast<double>(d.events) / r.cpu_seconds));
    for (size_t k = 0; k < d.threads.size(); ++k) {
      const VerifyRun& v = d.verifies[k][i];
      out += fmt::format(
          "; verify threads={} {:.2f} s ({:.2f} CPU s, {} events per CPU s, {:.3f}x the read)",
          d.threads[k], v.pass.seconds, v.pass.cpu_seconds,
          rate(static_cast<double>(d.events) / v.pass.cpu_seconds),
          v.pass.events_per_second / r.events_per_second);
    }
    out += "\n";
  }
  const VerifyRun& any = d.verifies[0].front();
  out += fmt::format(
      "\nEach verify pass checked {} events, {} stored Merkle nodes, {} stream index entries and "
      "{} stream heads.\n",
      with_commas(static_cast<double>(d.events)), with_commas(static_cast<double>(any.tree_nodes)),
      with_commas(static_cast<double>(any.index_entries)),
      with_commas(static_cast<double>(any.streams)));
  if (d.built) {
    out += fmt::format(
        "\nBuild: {} events in {:.1f} s = **{} events/s** ({:.1f} CPU s: {} events per CPU s); "
        "2 threads, Log::append of 1,000 events each (default LogOptions), average payload {:.0f} "
        "bytes; {:.0f} MiB on disk in {} table files after close.\n",
        with_commas(static_cast<double>(d.build.events)), d.build.seconds,
        rate(static_cast<double>(d.build.events) / d.build.seconds), d.build.cpu_seconds,
        rate(static_cast<double>(d.build.events) / d.build.cpu_seconds), d.build.payload_bytes,
        static_cast<double>(d.build.disk.bytes) / (1 << 20), d.build.disk.sst_files);
  } else {
    out += fmt::format(
        "\nLog reused from {} ({:.0f} MiB, {} table files); not built in this run.\n",
        d.log_dir.string(), static_cast<double>(d.disk.bytes) / (1 << 20), d.disk.sst_files);
  }
  out += fmt::format(
      "Read-only open: {:.2f} s; unmeasured warm-up read: {} events/s. Load average (1/5/15 min) "
      "{} before, {} after.\n",
      d.open_seconds, rate(d.warmup.events_per_second), d.load_before, d.load_after);
  return out;
}

std::string render_live(const LiveReportData& d) {
  std::string out;
  const auto rate_of = [](const LiveRun& r) { return r.appends_per_second; };
  const auto p50_of = [](const LiveRun& r) { return r.p50_ms; };
  const auto p99_of = [](const LiveRun& r) { return r.p99_ms; };
  const std::vector<LiveRun>& alone = d.runs[static_cast<size_t>(Variant::alone)];
  const auto a = each(alone, rate_of);
  const auto a50 = each(alone, p50_of);
  const auto a99 = each(alone, p99_of);
  out += fmt::format(
      "### 2. Appends while an audit runs ({} threads x 1-event appends; per repeat, {:g} s of "
      "slices per variant)\n\n",
      kLiveThreads, d.slices_per_variant * std::chrono::duration<double>(kSlice).count());
  out +=
      "| metric | ours: with an auditor process | limit: (a) alone | ratio | target | verdict | "
      "runs (ours / alone) |\n";
  out += "|---|---:|---:|---:|---|---|---|\n";
  for (const Variant v : d.variants) {
    if (v == Variant::alone) continue;
    const std::vector<LiveRun>& runs = d.runs[static_cast<size_t>(v)];
    const bool targeted = v == Variant::idle;
    const std::string_view name = variant_name(v);
    const auto b = each(runs, rate_of);
    const auto b50 = each(runs, p50_of);
    const auto b99 = each(runs, p99_of);
    const double ratio = median(b) / median(a);
    out += fmt::format(
        "| {}: durable appends/s | {} | {} | {:.3f} | {} | {} | {} / {} |\n", name, rate(median(b)),
        rate(median(a)), ratio, targeted ? fmt::format(">= {:.2f}", kTargetAppendsWithAudit) : "",
        targeted ? verdict(ratio >= kTargetAppendsWithAudit) : "", list(b, rate), list(a, rate));
    out += fmt::format("| {}: append p50 (ms) | {} | {} | {:.3f} | | | {} / {} |\n", name,
                       ms(median(b50)), ms(median(a50)), median(b50) / median(a50), list(b50, ms),
                       list(a50, ms));
    out += fmt::format("| {}: append p99 (ms) | {} | {} | {:.3f} | | | {} / {} |\n", name,
                       ms(median(b99)), ms(median(a99)), median(b99) / median(a99), list(b99, ms),
                       list(a99, ms));
  }
  out += "\nPer-repeat ratios to (a) in the same repeat:";
  for (const Variant v : d.variants) {
    if (v == Variant::alone) continue;
    std::vector<double> ratios;
    const std::vector<LiveRun>& runs = d.runs[static_cast<size_t>(v)];
    for (size_t i = 0; i < std::min(a.size(), runs.size()); ++i) {
      ratios.push_back(runs[i].appends_per_second / a[i]);
    }
    out += fmt::format(" {} {};", variant_name(v), list(ratios, ratio3));
  }
  out.back() = '.';
  out += "\n\n";
  for (size_t i = 0; i < alone.size(); ++i) {
    out += fmt::format("- repeat {}:", i + 1);
    for (const Variant v : d.variants) {
      const LiveRun& r = d.runs[static_cast<size_t>(v)][i];
      out += fmt::format(
          " {}: {} appends in {:.1f} s, {} appends/s, p50 {} / p99 {} ms, {:.1f} events per "
          "fsync, a WAL fsync took {:.2f} ms on average, the appending process used {:.2f} cores",
          variant_name(v), with_commas(static_cast<double>(r.appends)), r.measured_s,
          rate(r.appends_per_second), ms(r.p50_ms), ms(r.p99_ms), r.events_per_fsync, r.fsync_ms,
          r.cpu_share);
      if (v != Variant::alone) {
        out += fmt::format(
            " and the auditor {:.2f} (it finished {} verify passes, {} events; it read {:.1f} MB "
            "from the disk and wrote {:.1f} MB)",
            r.auditor_cpu_share, r.auditor_passes,
            with_commas(static_cast<double>(r.auditor_events)), r.auditor_read_mb,
            r.auditor_written_mb);
      }
      out += ";";
    }
    out.back() = '\n';
  }
  out += "\nThe auditors' threads at the pauses:";
  for (const Variant v : d.variants) {
    if (v == Variant::alone) continue;
    std::vector<std::string> seen;
    for (int p : d.policies[static_cast<size_t>(v)]) seen.push_back(policy_name(p));
    out += fmt::format(" {}: up to {}, all {};", variant_name(v),
                       d.auditor_threads[static_cast<size_t>(v)], fmt::join(seen, ", "));
  }
  out.back() = '.';
  out += "\n";
  out += fmt::format(
      "\nLog: {} events at the start (base built in {:.1f} s), {} at the end. Load average "
      "(1/5/15 min) {} before, {} after.\n",
      with_commas(static_cast<double>(d.head_before)), d.base.seconds,
      with_commas(static_cast<double>(d.head_after)), d.load_before, d.load_after);
  return out;
}

// run_seconds < 0: not known yet (the copy printed before the runs).
std::string render_header(const Settings& s, const std::string& fs_type, double run_seconds) {
  std::string h;
  h += "# Audit benchmark\n\n";
  h += fmt::format("Generated {} by `engram_bench_audit` (bench/audit.cc).\n\n", utc_now());
  h += fmt::format("Command line: `{}`\n\n", s.command_line);
  if (run_seconds >= 0) h += fmt::format("Run time: {:.1f} min.\n\n", run_seconds / 60);
  h += fmt::format(
      "- Machine: {} cores (`nproc`), {}, {}; load averages per part below. The cores may be "
      "shared with other work, so the figures are lower bounds; the CPU seconds are steadier\n",
      std::thread::hardware_concurrency(), cpu_model(), kernel_version());
  h += fmt::format("- Scratch: {} ({}){}\n", s.base_dir.string(), fs_type,
                   s.keep ? ", kept" : ", removed afterwards");
  h += fmt::format("- Build: {}; RocksDB {}.{}.{}; allocator: {}\n", ENGRAM_BENCH_BUILD_TYPE,
                   ROCKSDB_MAJOR, ROCKSDB_MINOR, ROCKSDB_PATCH, ENGRAM_BENCH_ALLOCATOR);
  h += "\nMethod:\n\n";
  h += fmt::format(
      "- Part 1: a log of --events events built by {} threads with Log::append of {} events "
      "each (default LogOptions; a fresh UUIDv7 per event; FlexBuffer map payloads of ~150 "
      "bytes; each append to the next of {} streams), closed, then opened read-only "
      "(LogOptions::read_only, as `engram audit verify` opens it). One unmeasured read_all pass, "
      "then {} repeat(s) of: the raw read (Log::read_all from 1 to the head in pages of "
      "max_read_count = 10,000; each envelope is copied out of RocksDB, FlatBuffers-verified and "
      "decoded; every event's type and payload touched), then Log::verify(1, head) with each of "
      "{} worker threads ({} is `engram audit verify`'s default, one per core, and the "
      "target is about it; 0 checks on the calling thread). Warm page cache; the ratio is the "
      "verify median over the read median\n",
      kBuildThreads, kEventsPerBuildAppend, kStreams, s.repeats, fmt::join(s.verify_threads, ", "),
      cli_verify_threads());
  h += fmt::format(
      "- Part 2: a base log of --live-base events built the same way, then opened writable with "
      "writer_spin_ns = 0 (as `engram serve`). {} threads append 1-event appends (fresh id, "
      "~150-byte payload, each thread to its own stream, ExpectedVersion::any) back to back for "
      "the whole part ({:g} s warm-up). Auditors: second processes (this binary re-executed with "
      "--auditor) that open the log as a RocksDB secondary (LogOptions::secondary_dir) and loop "
      "catch_up(), verify(1, head) with {} (the CLI's default) and {} "
      "read_stream calls of up to {} events. One runs under SCHED_IDLE, as `engram audit` does "
      "(sched_setscheduler before its first thread starts, so all its threads have it){}; the "
      "policy of every thread is read from /proc at each pause. The time is cut into slices of "
      "{} ms that take turns (the first variant of each round rotates): (a) alone, every "
      "auditor stopped with SIGSTOP; (b) the SCHED_IDLE auditor running (SIGCONT){}. Each slice "
      "starts {} ms after the switch; an append counts for the slice it completes in. Per "
      "repeat, each variant gets --seconds of slices; {} repeat(s). Short interleaved slices "
      "keep other work on the machine from favouring one variant\n",
      kLiveThreads, std::chrono::duration<double>(kLiveWarmup).count(),
      cli_verify_threads() == 1 ? std::string("1 worker thread")
                                : fmt::format("{} worker threads", cli_verify_threads()),
      kAuditorStreamReads, kAuditorStreamReadCount,
      s.normal_run ? std::string(", the other at normal priority (SCHED_OTHER, nice 0, as "
                                 "the CLI runs with ENGRAM_AUDIT_PRIORITY=normal)")
                   : std::string(),
      kSlice.count(),
      s.normal_run ? std::string("; (c) the normal-priority auditor running") : std::string(),
      kSliceGap.count(), s.repeats);
  h += "- Every figure is the median across repeats; the runs column lists each run\n\n";
  return h;
}

fs::path self_path(const char* argv0) {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) return p;
  return fs::absolute(argv0);
}

int run(int argc, char** argv) {
  const Clock::time_point t_start = Clock::now();
  Settings s;
  s.command_line = command_line(argc, argv);
  s.self = self_path(argv[0]);
  s.events = env_count("ENGRAM_BENCH_AUDIT_EVENTS", s.events);
  s.live_base = env_count("ENGRAM_BENCH_AUDIT_LIVE_BASE", s.live_base);
  s.seconds = static_cast<double>(
      env_count("ENGRAM_BENCH_AUDIT_SECONDS", static_cast<uint64_t>(s.seconds)));

  std::string dir, reuse, auditor, secondary;
  std::string auditor_priority = "normal";
  CLI::App app{"audit verify throughput vs a sequential read, and appends while an audit runs"};
  app.add_option("--events", s.events,
                 "Events in part 1's log (env ENGRAM_BENCH_AUDIT_EVENTS; e.g. 200000 for a "
                 "quick run)")
      ->check(CLI::Range(uint64_t{1'000}, uint64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--live-base", s.live_base,
                 "Events in part 2's base log (env ENGRAM_BENCH_AUDIT_LIVE_BASE)")
      ->check(CLI::Range(uint64_t{1'000}, uint64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--seconds", s.seconds,
                 "Part 2: measured seconds per variant and repeat, in 1 s slices (env "
                 "ENGRAM_BENCH_AUDIT_SECONDS)")
      ->check(CLI::Range(0.5, 3600.0))
      ->capture_default_str();
  app.add_option("--repeats", s.repeats, "Runs of each measurement; medians are reported")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--only", s.only, "Which parts: all, verify or live")
      ->check(CLI::IsMember({"all", "verify", "live"}))
      ->capture_default_str();
  app.add_option("--verify-threads", s.verify_threads,
                 "Log::verify worker threads to measure, one pass each per repeat")
      ->delimiter(',')
      ->check(CLI::Range(size_t{0}, size_t{16}))
      ->capture_default_str();
  app.add_option("--dir", dir,
                 "Where the scratch directory goes, a real disk (default: $ENGRAM_BENCH_DIR, "
                 "else /tmp)");
  app.add_flag("!--no-normal-run", s.normal_run,
               "Part 2 without run (c), the auditor at normal priority");
  app.add_flag("--keep", s.keep, "Keep the scratch directory (its log/ can be --reuse'd)");
  app.add_option("--reuse", reuse,
                 "Part 1 uses this log directory (e.g. a kept scratch's log/) instead of "
                 "building one");
  app.add_option("--out", s.out, "Where the markdown report goes; empty: nowhere")
      ->capture_default_str();
  // Internal: the auditor process of part 2.
  app.add_option("--auditor", auditor, "(internal) run as the auditor of this log directory")
      ->group("");
  app.add_option("--secondary", secondary, "(internal) the auditor's secondary directory")
      ->group("");
  app.add_option("--priority", auditor_priority,
                 "(internal) the auditor's scheduling: idle or normal")
      ->check(CLI::IsMember({"idle", "normal"}))
      ->group("");
  CLI11_PARSE(app, argc, argv);
  if (s.verify_threads.empty()) fail("--verify-threads needs at least one number");
  s.verify_threads = dedupe(s.verify_threads);
  if (!auditor.empty()) {
    if (secondary.empty()) fail("--auditor needs --secondary");
    return run_auditor(auditor, secondary,
                       auditor_priority == "idle" ? Priority::idle : Priority::normal);
  }

  s.base_dir = scratch_base(dir, "/tmp");
  if (!reuse.empty()) {
    s.reuse = fs::canonical(reuse);
  }
  const std::string fs_type = filesystem_type(s.base_dir);
  if (fs_type == "tmpfs") {
    std::cerr << "warning: " << s.base_dir << " is tmpfs: fsync costs nothing there, so part 2 "
              << "says nothing about a real disk. Use --dir on a real disk.\n";
  }

  ScratchDir scratch(s.base_dir, "audit", s.keep);
  std::cerr << fmt::format("engram_bench_audit: {} cores, {}; load average {}; scratch {} ({})\n",
                           std::thread::hardware_concurrency(), cpu_model(), load_average(),
                           scratch.path().string(), fs_type);

  std::cout << render_header(s, fs_type, -1) << std::flush;
  std::string tables;
  if (s.only == "all" || s.only == "verify") {
    const VerifyReportData d = measure_verify(s, scratch.path());
    tables += render_verify(d);
  }
  if (s.only == "all" || s.only == "live") {
    if (!tables.empty()) tables += "\n";
    const LiveReportData d = measure_live(s, scratch.path());
    tables += render_live(d);
  }
  if (s.keep) std::cerr << "kept " << scratch.path().string() << "\n";

  const double run_seconds = seconds_since(t_start);
  const std::string header = render_header(s, fs_type, run_seconds);
  std::cout << tables << fmt::format("\nRun time: {:.1f} min.\n", run_seconds / 60) << std::flush;
  if (!s.out.empty()) write_report(s.out, header + tables);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return engram::bench::run_main("engram_bench_audit", run, argc, argv);
}
