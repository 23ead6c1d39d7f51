// Durable append throughput and latency.
//
// engram's Log (group commit: many appends share one RocksDB WriteBatch and
// one fsync) measured against the two baselines it should be judged by, in
// the same run and on the same disk:
// - raw RocksDB writes with WriteOptions::sync from the same number of
//   threads; RocksDB also groups concurrent writers behind one WAL sync, so
//   this is the honest opponent, not a strawman;
// - write() + fdatasync() of 256 bytes on one file from one thread: the
//   disk's floor for one durable write, which no single appender can beat.
//
// Usage: engram_bench_append [--out PATH]   (default bench/results/append.md)
// Environment:
//   ENGRAM_BENCH_SECONDS  measured seconds per run (default 3)
//   ENGRAM_BENCH_REPEATS  runs per configuration; medians are reported (default 3)
//   ENGRAM_BENCH_DIR      where scratch directories go (default: the build
//                         tree's bench-tmp); it must be a real disk, since
//                         fsync on tmpfs costs nothing and the numbers would lie.
//
// Progress goes to stderr; stdout gets the result table only.

#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/version.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/report.h"
#include "core/log.h"

namespace {

using namespace engram::bench;  // bench/report.h

namespace fs = std::filesystem;
namespace core = engram::core;
using Clock = std::chrono::steady_clock;

constexpr auto kWarmup = std::chrono::milliseconds(500);
// A second bound besides time, so a store that is suddenly very fast (or not
// durable at all) cannot fill memory with latency samples.
constexpr size_t kMaxCallsPerThread = 2'000'000;
constexpr size_t kPayloadBytes = 200;
constexpr size_t kFloorWriteBytes = 256;
constexpr int kThreadCounts[] = {1, 16, 64};
constexpr size_t kEventsPerCall[] = {1, 10};

// Targets from the issue.
constexpr double kTargetEventsPerSecond = 100'000;
constexpr double kTargetP99Ms = 5.0;
// "Several times raw RocksDB sync writes": read as at least 3x.
constexpr double kTargetVsRocksdb = 3.0;
constexpr double kTargetVsFloor = 1.3;

struct Settings {
  double seconds = 3;
  int repeats = 3;
  fs::path out = "bench/results/append.md";
  fs::path base_dir;
  bool base_dir_created = false;  // we made it, so we remove it when empty
};

double env_number(const char* name, double fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v > 0))
    fail(fmt::format("{}='{}' is not a positive number", name, text));
  return v;
}

// One measured run: how many units (events, or fdatasyncs for the floor) per
// second, and the latency of one call.
struct Sample {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double elapsed_s = 0;
};

// One durable operation as a worker performs it: empty on success, otherwise
// what went wrong. Each worker owns its own, with its own state.
using Operation = std::function<std::string()>;

// Throughput and latency percentiles from per-worker call latencies; the
// window runs from `start` to the last completion.
Sample summarize(const std::vector<std::vector<int64_t>>& latencies_ns,
                 const std::vector<Clock::time_point>& last_done, Clock::time_point start,
                 size_t units_per_call) {
  std::vector<int64_t> all;
  for (const auto& l : latencies_ns) all.insert(all.end(), l.begin(), l.end());
  if (all.empty()) fail("no call completed in the measured window");
  std::sort(all.begin(), all.end());
  Clock::time_point end = start;
  for (const Clock::time_point t : last_done) end = std::max(end, t);
  Sample s;
  s.elapsed_s = std::chrono::duration<double>(end - start).count();
  s.per_second = static_cast<double>(all.size() * units_per_call) / s.elapsed_s;
  s.p50_ms = percentile_ms(all, 0.50);
  s.p99_ms = percentile_ms(all, 0.99);
  return s;
}

// Runs `threads` workers, each calling its Operation back to back: a warm-up
// that is not measured (opening files, first memtable, thread start-up),
// then `seconds` of measurement. A call counts when it started inside the
// measured window; the window ends when the last counted call returns, so
// calls cut by the stop signal are neither lost nor padded with idle time.
// `at_measure_start` runs just before measurement begins (to snapshot
// counters). Throws on the first failed operation.
Sample drive(int threads, size_t units_per_call, double seconds,
             const std::function<Operation(int)>& make_op,
             const std::function<void()>& at_measure_start) {
  enum class Phase { warmup, measure, stop };
  struct Worker {
    Operation op;
    std::vector<int64_t> latencies_ns;
    Clock::time_point last_done{};
    std::string error;
  };
  std::vector<Worker> workers(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    Worker& w = workers[static_cast<size_t>(t)];
    w.op = make_op(t);
    w.latencies_ns.reserve(size_t{1} << 16);
  }

  std::atomic<Phase> phase{Phase::warmup};
  std::vector<std::thread> pool;
  pool.reserve(workers.size());
  for (Worker& w : workers) {
    pool.emplace_back([&phase, &w] {
      for (;;) {
        const Phase at_start = phase.load(std::memory_order_acquire);
        if (at_start == Phase::stop) return;
        const Clock::time_point t0 = Clock::now();
        std::string error = w.op();
        const Clock::time_point t1 = Clock::now();
        if (!error.empty()) {
          w.error = std::move(error);
          phase.store(Phase::stop, std::memory_order_release);
          return;
        }
        if (at_start == Phase::measure) {
          w.latencies_ns.push_back(
              std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
          w.last_done = t1;
          if (w.latencies_ns.size() >= kMaxCallsPerThread) return;
        }
      }
    });
  }

  std::this_thread::sleep_for(kWarmup);
  at_measure_start();
  const Clock::time_point start = Clock::now();
  // Not a plain store: a worker that failed during warm-up has set stop.
  Phase expected = Phase::warmup;
  phase.compare_exchange_strong(expected, Phase::measure, std::memory_order_acq_rel);
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < deadline && phase.load(std::memory_order_acquire) != Phase::stop) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(deadline - Clock::now(), std::chrono::milliseconds(50)));
  }
  phase.store(Phase::stop, std::memory_order_release);
  for (std::thread& th : pool) th.join();

  std::vector<std::vector<int64_t>> latencies;
  std::vector<Clock::time_point> last_done;
  for (Worker& w : workers) {
    if (!w.error.empty()) fail(w.error);
    latencies.push_back(std::move(w.latencies_ns));
    last_done.push_back(w.last_done);
  }
  return summarize(latencies, last_done, start, units_per_call);
}

// Not all the same byte, in case anything on the way compresses.
std::string make_payload(int thread, size_t bytes) {
  std::mt19937 gen(static_cast<std::mt19937::result_type>(thread));
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(bytes, '\0');
  for (char& c : out) c = static_cast<char>(byte(gen));
  return out;
}

struct EngramSample {
  Sample sample;
  double avg_group_events = 0;   // events per WAL sync (one fsync may cover several batches)
  double groups_per_second = 0;  // WAL syncs per second
  double sync_ms_per_group = 0;  // time in one SyncWAL
  double writer_sync_busy = 0;   // share of the window spent syncing
};

EngramSample engram_counters(const core::LogStats& before, const core::LogStats& after,
                             const Sample& sample) {
  EngramSample out;
  out.sample = sample;
  const auto events = static_cast<double>(after.events_appended - before.events_appended);
  const auto syncs = static_cast<double>(after.syncs - before.syncs);
  const double sync_ms =
      static_cast<double>(after.sync_nanos_total - before.sync_nanos_total) / 1e6;
  if (syncs > 0) {
    out.avg_group_events = events / syncs;
    out.sync_ms_per_group = sync_ms / syncs;
  }
  out.groups_per_second = syncs / sample.elapsed_s;
  out.writer_sync_busy = sync_ms / 1e3 / sample.elapsed_s;
  return out;
}

EngramSample run_engram(const Settings& settings, int threads, size_t events_per_append) {
  ScratchDir dir(settings.base_dir, "engram");
  auto opened = core::Log::open(dir.path() / "log");
  if (!opened) fail("opening the log: " + opened.error().to_string());
  const std::unique_ptr<core::Log> log = std::move(*opened);

  auto make_op = [&log, events_per_append](int t) -> Operation {
    std::vector<core::EventData> events(events_per_append);
    for (core::EventData& e : events) {
      e.type = "BenchEvent";
      e.payload = make_payload(t, kPayloadBytes);
    }
    return [&log, stream = fmt::format("bench-{}", t), events = std::move(events)]() mutable {
      // Fresh ids every call: a repeated id would be deduplicated, not written.
      for (core::EventData& e : events) e.id = core::Uuid::v7_now();
      auto r = log->append(stream, core::ExpectedVersion::any(), events);
      return r ? std::string() : r.error().to_string();
    };
  };
  core::LogStats before;
  const Sample sample =
      drive(threads, events_per_append, settings.seconds, make_op, [&] { before = log->stats(); });
  return engram_counters(before, log->stats(), sample);
}

// `in_flight` appends kept in flight with append_async() by kSubmitters
// threads: how an event-loop server (many connections on few threads) uses
// the log. A callback hands the finished slot back to its submitter, which
// records the latency and sends the slot's next append.
constexpr int kSubmitters = 2;

EngramSample run_engram_async(const Settings& settings, int in_flight, size_t events_per_append) {
  ScratchDir dir(settings.base_dir, "engram-async");
  auto opened = core::Log::open(dir.path() / "log");
  if (!opened) fail("opening the log: " + opened.error().to_string());
  const std::unique_ptr<core::Log> log = std::move(*opened);

  struct Done {
    int slot;
    Clock::time_point at;
    std::string error;
  };
  struct Submitter {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Done> done;
    int outstanding = 0;  // touched by the submitter thread only
  };
  struct Slot {
    std::string stream;
    std::vector<core::EventData> events;
    Clock::time_point started{};
    bool measured = false;
  };
  std::vector<Submitter> submitters(kSubmitters);
  std::vector<Slot> slots(static_cast<size_t>(in_flight));
  for (int i = 0; i < in_flight; ++i) {
    Slot& slot = slots[static_cast<size_t>(i)];
    slot.stream = fmt::format("bench-{}", i);
    slot.events.resize(events_per_append);
    for (core::EventData& e : slot.events) {
      e.type = "BenchEvent";
      e.payload = make_payload(i, kPayloadBytes);
    }
  }

  enum class Phase { warmup, measure, stop };
  std::atomic<Phase> phase{Phase::warmup};
  std::vector<std::vector<int64_t>> latencies(kSubmitters);
  std::vector<Clock::time_point> last_done(kSubmitters);
  std::vector<std::string> errors(kSubmitters);

  auto send = [&](int submitter, int slot_index) -> std::string {
    Slot& slot = slots[static_cast<size_t>(slot_index)];
    for (core::EventData& e : slot.events) e.id = core::Uuid::v7_now();
    slot.measured = phase.load(std::memory_order_acquire) == Phase::measure;
    slot.started = Clock::now();
    Submitter& sub = submitters[static_cast<size_t>(submitter)];
    auto queued = log->append_async(
        slot.stream, core::ExpectedVersion::any(), slot.events, {},
        [&sub, slot_index](core::result<core::AppendResult> r) {
          Done d{slot_index, Clock::now(), r ? std::string() : r.error().to_string()};
          std::lock_guard lock(sub.mu);
          sub.done.push_back(std::move(d));
          sub.cv.notify_one();
        });
    return queued ? std::string() : queued.error().to_string();
  };

  std::vector<std::thread> pool;
  for (int k = 0; k < kSubmitters; ++k) {
    pool.emplace_back([&, k] {
      Submitter& sub = submitters[static_cast<size_t>(k)];
      for (int i = k; i < in_flight; i += kSubmitters) {
        if (std::string e = send(k, i); !e.empty()) {
          errors[static_cast<size_t>(k)] = e;
          break;
        }
        ++sub.outstanding;
      }
      std::deque<Done> batch;
      while (sub.outstanding > 0) {
        {
          std::unique_lock lock(sub.mu);
          sub.cv.wait(lock, [&] { return !sub.done.empty(); });
          batch.swap(sub.done);
        }
        for (const Done& d : batch) {
          --sub.outstanding;
          Slot& slot = slots[static_cast<size_t>(d.slot)];
          if (!d.error.empty()) {
            errors[static_cast<size_t>(k)] = d.error;
            phase.store(Phase::stop, std::memory_order_release);
          }
          if (slot.measured && d.error.empty()) {
            latencies[static_cast<size_t>(k)].push_back(
                std::chrono::duration_cast<std::chrono::nanoseconds>(d.at - slot.started).count());
            last_done[static_cast<size_t>(k)] = d.at;
          }
          if (phase.load(std::memory_order_acquire) == Phase::stop) continue;
          if (std::string e = send(k, d.slot); !e.empty()) {
            errors[static_cast<size_t>(k)] = e;
            phase.store(Phase::stop, std::memory_order_release);
            continue;
          }
          ++sub.outstanding;
        }
        batch.clear();
      }
    });
  }

  std::this_thread::sleep_for(kWarmup);
  const core::LogStats before = log->stats();
  const Clock::time_point start = Clock::now();
  Phase expected = Phase::warmup;
  phase.compare_exchange_strong(expected, Phase::measure, std::memory_order_acq_rel);
  std::this_thread::sleep_for(std::chrono::duration<double>(settings.seconds));
  phase.store(Phase::stop, std::memory_order_release);
  for (std::thread& th : pool) th.join();
  for (const std::string& e : errors) {
    if (!e.empty()) fail(e);
  }

  return engram_counters(before, log->stats(),
                         summarize(latencies, last_done, start, events_per_append));
}

// "Interval writes: 12K writes, 12K keys, 5K commit groups, 2.3 writes per
// commit group, ..." from rocksdb.dbstats: the interval is since the previous
// call, which is how the measured window is isolated from the warm-up.
std::optional<double> rocksdb_writes_per_commit_group(rocksdb::DB& db) {
  std::string stats;
  if (!db.GetProperty("rocksdb.dbstats", &stats)) return std::nullopt;
  const size_t line = stats.find("Interval writes:");
  if (line == std::string::npos) return std::nullopt;
  const size_t label = stats.find(" writes per commit group", line);
  if (label == std::string::npos) return std::nullopt;
  const size_t number = stats.rfind(' ', label - 1);
  if (number == std::string::npos || number < line) return std::nullopt;
  return std::strtod(stats.c_str() + number + 1, nullptr);
}

struct RocksdbSample {
  Sample sample;
  std::optional<double> writes_per_group;  // RocksDB's own write grouping, when it says
};

RocksdbSample run_rocksdb(const Settings& settings, int threads, size_t puts_per_write) {
  ScratchDir dir(settings.base_dir, "rocksdb");
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status opened = rocksdb::DB::Open(options, dir.path().string(), &raw);
  if (!opened.ok()) fail("opening rocksdb: " + opened.ToString());
  const std::unique_ptr<rocksdb::DB> db(raw);

  rocksdb::WriteOptions sync;
  sync.sync = true;
  auto make_op = [&db, &sync, puts_per_write](int t) -> Operation {
    return [&db, &sync, t, puts_per_write, value = make_payload(t, kPayloadBytes),
            seq = uint64_t{0}, key = std::string(), batch = rocksdb::WriteBatch()]() mutable {
      rocksdb::Status s;
      if (puts_per_write == 1) {
        key = fmt::format("bench-{}-{:012}", t, seq++);
        s = db->Put(sync, key, value);
      } else {
        // Comparable with a multi-event append: several events, one synced write.
        batch.Clear();
        for (size_t i = 0; i < puts_per_write; ++i) {
          key = fmt::format("bench-{}-{:012}", t, seq++);
          batch.Put(key, value);
        }
        s = db->Write(sync, &batch);
      }
      return s.ok() ? std::string() : "rocksdb write: " + s.ToString();
    };
  };
  RocksdbSample out;
  out.sample = drive(threads, puts_per_write, settings.seconds, make_op,
                     [&] { (void)rocksdb_writes_per_commit_group(*db); });
  out.writes_per_group = rocksdb_writes_per_commit_group(*db);
  return out;
}

Sample run_fdatasync_floor(const Settings& settings) {
  ScratchDir dir(settings.base_dir, "floor");
  const std::string path = (dir.path() / "floor").string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fail(errno_text("open " + path));
  const std::string block(kFloorWriteBytes, 'x');
  auto make_op = [fd, &block](int /*thread*/) -> Operation {
    return [fd, &block]() -> std::string {
      if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
        return errno_text("write");
      }
      if (::fdatasync(fd) != 0) return errno_text("fdatasync");
      return {};
    };
  };
  Sample s;
  try {
    s = drive(1, 1, settings.seconds, make_op, [] {});
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return s;
}

template <typename T, typename F>
double median_of(const std::vector<T>& samples, F field) {
  std::vector<double> v;
  v.reserve(samples.size());
  for (const T& s : samples) v.push_back(field(s));
  return median(std::move(v));
}

struct Row {
  int threads = 0;  // with `async`: appends in flight, from kSubmitters threads
  bool async = false;
  size_t events = 0;
  std::vector<EngramSample> engram;
  std::vector<RocksdbSample> rocksdb;

  double engram_rate() const {
    return median_of(engram, [](auto& s) { return s.sample.per_second; });
  }
  double engram_p50() const {
    return median_of(engram, [](auto& s) { return s.sample.p50_ms; });
  }
  double engram_p99() const {
    return median_of(engram, [](auto& s) { return s.sample.p99_ms; });
  }
  double rocksdb_rate() const {
    return median_of(rocksdb, [](auto& s) { return s.sample.per_second; });
  }
  double rocksdb_p50() const {
    return median_of(rocksdb, [](auto& s) { return s.sample.p50_ms; });
  }
  double rocksdb_p99() const {
    return median_of(rocksdb, [](auto& s) { return s.sample.p99_ms; });
  }
};

std::string render_results(const std::vector<Row>& rows, const Sample& floor) {
  std::string out;
  out +=
      "| threads | events/append | engram events/s | engram p50 ms | engram p99 ms "
      "| events per fsync | rocksdb sync Put/s | rocksdb p50 ms | rocksdb p99 ms "
      "| engram / rocksdb |\n";
  out += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Row& r : rows) {
    const double group = median_of(r.engram, [](auto& s) { return s.avg_group_events; });
    out +=
        fmt::format("| {} | {} | {} | {} | {} | {:.1f} | {} | {} | {} | {:.2f}x |\n",
                    r.async ? fmt::format("{} async", r.threads) : std::to_string(r.threads),
                    r.events, with_commas(r.engram_rate()), ms(r.engram_p50()), ms(r.engram_p99()),
                    group, with_commas(r.rocksdb_rate()), ms(r.rocksdb_p50()), ms(r.rocksdb_p99()),
                    r.engram_rate() / r.rocksdb_rate());
  }

  out += fmt::format(
      "\nfdatasync floor (1 thread, {}-byte write() appended to one file + fdatasync()): "
      "{} ops/s, p50 {} ms, p99 {} ms\n",
      kFloorWriteBytes, with_commas(floor.per_second), ms(floor.p50_ms), ms(floor.p99_ms));

  auto find = [&rows](int threads, size_t events, bool async = false) -> const Row* {
    for (const Row& r : rows) {
      if (r.threads == threads && r.events == events && r.async == async) return &r;
    }
    return nullptr;
  };
  out += "\nTargets (from the issue):\n\n";
  if (const Row* one = find(1, 1)) {
    const double ratio = one->engram_p50() / floor.p50_ms;
    out += fmt::format(
        "- 1 appender, 1 event/append: engram p50 latency / fdatasync p50 latency = "
        "{:.2f} (target <= {:.1f}): {}\n",
        ratio, kTargetVsFloor, verdict(ratio <= kTargetVsFloor));
  }
  if (const Row* many = find(64, 1)) {
    const double rate = many->engram_rate();
    const double p99 = many->engram_p99();
    const double vs = rate / many->rocksdb_rate();
    out += fmt::format("- 64 appenders, 1 event/append: {} durable events/s (target >= {}): {}\n",
                       with_commas(rate), with_commas(kTargetEventsPerSecond),
                       verdict(rate >= kTargetEventsPerSecond));
    out += fmt::format("- 64 appenders, 1 event/append: p99 {} ms (target < {:.0f} ms): {}\n",
                       ms(p99), kTargetP99Ms, verdict(p99 < kTargetP99Ms));
    out += fmt::format(
        "- 64 appenders, 1 event/append: {:.2f}x raw RocksDB sync Put with the same threads "
        "(target: several times, taken as >= {:.0f}x): {}\n",
        vs, kTargetVsRocksdb, verdict(vs >= kTargetVsRocksdb));
  }
  if (const Row* async = find(64, 1, true)) {
    const double rate = async->engram_rate();
    const double p99 = async->engram_p99();
    out += fmt::format(
        "- 64 appends in flight from {} threads (append_async), 1 event/append: {} durable "
        "events/s (target >= {}): {}; p99 {} ms (target < {:.0f} ms): {}; {:.2f}x raw RocksDB "
        "with 64 threads\n",
        kSubmitters, with_commas(rate), with_commas(kTargetEventsPerSecond),
        verdict(rate >= kTargetEventsPerSecond), ms(p99), kTargetP99Ms, verdict(p99 < kTargetP99Ms),
        rate / async->rocksdb_rate());
  }

  // What explains the numbers: how well each store batches fsyncs, and how
  // busy engram's sync stage is.
  out += "\nWhere the time goes (medians across repeats):\n\n";
  for (const Row& r : rows) {
    const double groups = median_of(r.engram, [](auto& s) { return s.groups_per_second; });
    const double sync_ms = median_of(r.engram, [](auto& s) { return s.sync_ms_per_group; });
    const double busy = median_of(r.engram, [](auto& s) { return s.writer_sync_busy; });
    std::vector<double> rocks_groups;
    for (const RocksdbSample& s : r.rocksdb) {
      if (s.writes_per_group) rocks_groups.push_back(*s.writes_per_group);
    }
    const std::string rocks = rocks_groups.size() == r.rocksdb.size()
                                  ? fmt::format("{:.1f}", median(rocks_groups))
                                  : std::string("n/a");
    out += fmt::format(
        "- {}{} x {}: engram {} WAL syncs/s, {} ms per SyncWAL, syncing {:.0f}% of the time; "
        "rocksdb {} writes per commit group\n",
        r.threads, r.async ? " async" : "", r.events, with_commas(groups), ms(sync_ms), busy * 100,
        rocks);
  }
  return out;
}

std::string render_header(const Settings& settings, const std::string& fs_type) {
  std::string h;
  h += "# Append benchmark\n\n";
  h += fmt::format("Generated {} by `engram_bench_append` (bench/append.cc).\n\n", utc_now());
  h += fmt::format("- Machine: {} cores (`nproc`), {}, {}\n", std::thread::hardware_concurrency(),
                   cpu_model(), kernel_version());
  h += fmt::format(
      "- Scratch directories: {} ({}); every configuration gets a fresh store in a "
      "fresh directory, removed afterwards\n",
      settings.base_dir.string(), fs_type);
  h += fmt::format("- Build: {}; RocksDB {}.{}.{}\n", ENGRAM_BENCH_BUILD_TYPE, ROCKSDB_MAJOR,
                   ROCKSDB_MINOR, ROCKSDB_PATCH);
  h += fmt::format(
      "- Each run: {:.1f} s warm-up (not measured), then {:g} s measured (a thread also stops "
      "after {} calls); {} repeat(s) per configuration; every figure is the median across "
      "repeats\n",
      std::chrono::duration<double>(kWarmup).count(), settings.seconds,
      with_commas(kMaxCallsPerThread), settings.repeats);
  h += fmt::format(
      "- engram: default LogOptions; thread t appends to stream `bench-t` with "
      "ExpectedVersion::any(), type `BenchEvent`, {}-byte payloads, a fresh UUIDv7 per event\n",
      kPayloadBytes);
  h += fmt::format(
      "- rocksdb: default Options + create_if_missing, WriteOptions::sync = true, {}-byte values; "
      "with 10 events per call, one WriteBatch of 10 Puts per synced Write\n\n",
      kPayloadBytes);
  h += "Columns:\n\n";
  h += "- threads: concurrent appender threads\n";
  h += "- events/append: events per call (one engram append, one RocksDB Write)\n";
  h += "- engram events/s: durable (fsynced, acknowledged) events per second, all threads\n";
  h += "- engram p50 ms, p99 ms: latency of one append() call, steady_clock around the call\n";
  h += "- avg group (events): events per group commit (one RocksDB WriteBatch, one fsync), from "
       "LogStats events_appended / groups_committed over the measured window\n";
  h += "- rocksdb sync Put/s: durable Puts per second, all threads\n";
  h += "- rocksdb p50 ms, p99 ms: latency of one synced Put / Write call\n";
  h += "- engram / rocksdb: engram events/s divided by rocksdb Put/s\n\n";
  return h;
}

void usage(std::ostream& os) {
  os << "usage: engram_bench_append [--out PATH]\n"
        "  --out PATH  where the markdown report goes (default bench/results/append.md)\n"
        "environment: ENGRAM_BENCH_SECONDS (3), ENGRAM_BENCH_REPEATS (3), ENGRAM_BENCH_DIR,\n"
        "  ENGRAM_BENCH_ONLY (e.g. 64x1,1x1: only those configurations)\n";
}

int run(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--out" && i + 1 < argc) {
      settings.out = argv[++i];
    } else if (arg.starts_with("--out=")) {
      settings.out = std::string(arg.substr(6));
    } else if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      return 0;
    } else {
      usage(std::cerr);
      return 2;
    }
  }
  settings.seconds = env_number("ENGRAM_BENCH_SECONDS", settings.seconds);
  settings.repeats = static_cast<int>(env_number("ENGRAM_BENCH_REPEATS", settings.repeats));
  if (settings.repeats < 1) fail("ENGRAM_BENCH_REPEATS must be at least 1");
  settings.base_dir =
      scratch_base(std::string(), ENGRAM_BENCH_DEFAULT_DIR, &settings.base_dir_created);
  const std::string fs_type = filesystem_type(settings.base_dir);
  if (fs_type == "tmpfs") {
    std::cerr << "warning: " << settings.base_dir << " is tmpfs: fsync is free there, so these "
              << "numbers say nothing about durability. Set ENGRAM_BENCH_DIR to a real disk.\n";
  }

  std::cerr << fmt::format("scratch in {} ({}); {:g} s per run, {} repeats\n",
                           settings.base_dir.string(), fs_type, settings.seconds, settings.repeats);
  const Sample floor = run_fdatasync_floor(settings);
  std::cerr << fmt::format("fdatasync floor: {} ops/s, p50 {} ms, p99 {} ms\n",
                           with_commas(floor.per_second), ms(floor.p50_ms), ms(floor.p99_ms));

  // ENGRAM_BENCH_ONLY="64x1,1x1" runs only those configurations (for quick iteration).
  const char* only_env = std::getenv("ENGRAM_BENCH_ONLY");
  const std::string only = only_env != nullptr ? std::string(",") + only_env + "," : "";
  std::vector<Row> rows;
  for (const int threads : kThreadCounts) {
    for (const size_t events : kEventsPerCall) {
      if (!only.empty() &&
          only.find(fmt::format(",{}x{},", threads, events)) == std::string::npos) {
        continue;
      }
      Row row;
      row.threads = threads;
      row.events = events;
      // Alternate the two stores within a configuration so that drift in the
      // disk's speed over the run hits both alike.
      for (int rep = 1; rep <= settings.repeats; ++rep) {
        row.engram.push_back(run_engram(settings, threads, events));
        const Sample& e = row.engram.back().sample;
        std::cerr << fmt::format(
            "{:>2} x {:<2} #{} engram : {:>9} events/s p50 {} p99 {} ms, "
            "group {:.1f}\n",
            threads, events, rep, with_commas(e.per_second), ms(e.p50_ms), ms(e.p99_ms),
            row.engram.back().avg_group_events);
        row.rocksdb.push_back(run_rocksdb(settings, threads, events));
        const Sample& r = row.rocksdb.back().sample;
        std::cerr << fmt::format("{:>2} x {:<2} #{} rocksdb: {:>9} events/s p50 {} p99 {} ms\n",
                                 threads, events, rep, with_commas(r.per_second), ms(r.p50_ms),
                                 ms(r.p99_ms));
      }
      rows.push_back(std::move(row));
    }
  }
  // The same 64-way concurrency from two threads through append_async(), as
  // the HTTP server drives the log; compared with the same RocksDB baseline.
  for (const size_t events : kEventsPerCall) {
    constexpr int kInFlight = 64;
    if (!only.empty() &&
        only.find(fmt::format(",{}async{},", kInFlight, events)) == std::string::npos) {
      continue;
    }
    Row row;
    row.threads = kInFlight;
    row.async = true;
    row.events = events;
    for (int rep = 1; rep <= settings.repeats; ++rep) {
      row.engram.push_back(run_engram_async(settings, kInFlight, events));
      const Sample& e = row.engram.back().sample;
      std::cerr << fmt::format("{} async x {:<2} #{} engram : {:>9} events/s p50 {} p99 {} ms\n",
                               kInFlight, events, rep, with_commas(e.per_second), ms(e.p50_ms),
                               ms(e.p99_ms));
      row.rocksdb.push_back(run_rocksdb(settings, kInFlight, events));
    }
    rows.push_back(std::move(row));
  }
  remove_if_created(settings.base_dir, settings.base_dir_created);

  const std::string results = render_results(rows, floor);
  std::cout << results << std::flush;
  write_report(settings.out, render_header(settings, fs_type) + results);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return engram::bench::run_main("engram_bench_append", run, argc, argv);
}
