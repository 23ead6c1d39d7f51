#include "core/writer.h"

#include <fmt/format.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/envelope.h"
#include "core/keys.h"
#include "core/logging.h"
#include "core/thread_role.h"

namespace engram::core {
namespace {

uint64_t now_steady_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// A thread handoff through a futex costs tens of microseconds on a VM, a
// fifth of an fsync. So the writer polls briefly for the next request
// before it sleeps (LogOptions::writer_spin_ns), and an appender that is
// alone in flight polls for its result (the writer is then on the other
// core, inside fsync); with more appenders in flight they sleep, as
// spinning would steal the writer's CPU.
constexpr uint64_t kLoneAppenderSpinNs = 2'000'000;

void atomic_max(std::atomic<uint64_t>& a, uint64_t v) {
  uint64_t cur = a.load(std::memory_order_relaxed);
  while (cur < v && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

GroupCommitWriter::GroupCommitWriter(WriterDeps deps, int64_t last_recorded_at_ns,
                                     merkle::Frontier tree)
    : d_(deps),
      written_(deps.head->get()),
      tree_(std::move(tree)),
      last_recorded_at_ns_(last_recorded_at_ns) {
  ENGRAM_ASSERT(tree_.size() == written_.position.value());
  syncer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "engram-syncer");
    set_thread_role(ThreadRole::log_syncer);
    run_syncer();
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "engram-writer");
    set_thread_role(ThreadRole::log_writer);
    run();
  });
}

GroupCommitWriter::~GroupCommitWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  ENGRAM_ASSERT(queue_.empty());
  {
    std::lock_guard lock(sync_mu_);
    sync_stopping_ = true;
  }
  sync_cv_.notify_all();
  syncer_.join();
  ENGRAM_ASSERT(sync_queue_.empty());
}

result<void> GroupCommitWriter::enqueue(AppendRequest* req) {
  if (failed_.load(std::memory_order_acquire)) {
    return make_error(errc::read_only, health().reason);
  }
  bool wake_writer = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return make_error(errc::shutting_down, "the log is closing");
    if (queue_.size() >= d_.options->max_queue_requests) {
      return make_error(errc::overloaded,
                        fmt::format("append queue is full ({} requests waiting)", queue_.size()));
    }
    queue_.push_back(req);
    queued_.store(queue_.size(), std::memory_order_release);
    queue_depth_.store(queue_.size(), std::memory_order_relaxed);
    wake_writer = writer_sleeping_;
  }
  if (wake_writer) cv_.notify_one();
  return {};
}

result<void> GroupCommitWriter::submit_async(std::unique_ptr<AppendRequest> req) {
  ENGRAM_ASSERT(req->on_done != nullptr);
  auto queued = enqueue(req.get());
  if (queued) (void)req.release();  // completion frees it
  return queued;
}

result<AppendResult> GroupCommitWriter::submit(AppendRequest& req) {
  if (auto queued = enqueue(&req); !queued) return queued.error();

  const bool alone = in_flight_.fetch_add(1, std::memory_order_relaxed) == 0;
  if (alone) {
    const uint64_t deadline = now_steady_ns() + kLoneAppenderSpinNs;
    while (!req.done.is_set() && now_steady_ns() < deadline) cpu_relax();
  }
  req.done.wait();
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  ENGRAM_ASSERT(req.outcome.has_value());
  return std::move(*req.outcome);
}

Health GroupCommitWriter::health() const {
  std::lock_guard lock(health_mu_);
  return Health{!failed_.load(), failure_};
}

void GroupCommitWriter::add_stats(LogStats& s) const {
  s.append_requests = append_requests_.load(std::memory_order_relaxed);
  s.events_appended = events_appended_.load(std::memory_order_relaxed);
  s.deduplicated_requests = deduplicated_.load(std::memory_order_relaxed);
  s.groups_committed = groups_.load(std::memory_order_relaxed);
  s.sync_nanos_total = sync_nanos_.load(std::memory_order_relaxed);
  s.syncs = syncs_.load(std::memory_order_relaxed);
  s.max_group_requests = max_group_.load(std::memory_order_relaxed);
  s.group_requests = group_requests_.snapshot();
  s.sync_seconds = sync_seconds_.snapshot();
  s.queue_depth = queue_depth_.load(std::memory_order_relaxed);
}

void GroupCommitWriter::run() {
  std::vector<AppendRequest*> requests;
  while (take_group(requests)) {
    std::unique_ptr<Group> g = write_group(requests);
    requests.clear();
    if (!g) continue;
    // With more requests waiting, the sync stage runs on the syncer thread
    // while this thread writes the next group. With none, it runs here: a
    // lone appender then pays no extra thread handoff.
    const bool more_waiting = queued_.load(std::memory_order_acquire) > 0;
    hand_to_sync(std::move(g), more_waiting);
    if (!more_waiting) {
      std::unique_lock stage(stage_mu_, std::try_to_lock);
      if (stage.owns_lock()) {
        sync_stage(stage);
      } else {
        wake_syncer();  // it is syncing earlier groups; it will take this one next
      }
    }
  }
}

void GroupCommitWriter::run_syncer() {
  for (;;) {
    {
      std::unique_lock lock(sync_mu_);
      syncer_sleeping_ = true;
      sync_cv_.wait(lock, [&] { return !sync_queue_.empty() || sync_stopping_; });
      syncer_sleeping_ = false;
      if (sync_queue_.empty()) return;  // stopping and drained
    }
    std::unique_lock stage(stage_mu_);
    sync_stage(stage);
  }
}

void GroupCommitWriter::hand_to_sync(std::unique_ptr<Group> g, bool wake) {
  bool sleeping = false;
  {
    std::lock_guard lock(sync_mu_);
    sync_queue_.push_back(std::move(g));
    sleeping = syncer_sleeping_;
  }
  if (wake && sleeping) sync_cv_.notify_one();
}

void GroupCommitWriter::wake_syncer() {
  bool sleeping = false;
  {
    std::lock_guard lock(sync_mu_);
    sleeping = syncer_sleeping_;
  }
  if (sleeping) sync_cv_.notify_one();
}

void GroupCommitWriter::sync_stage(std::unique_lock<std::mutex>& stage) {
  std::vector<std::unique_ptr<Group>> groups;
  {
    std::lock_guard lock(sync_mu_);
    while (!sync_queue_.empty()) {
      groups.push_back(std::move(sync_queue_.front()));
      sync_queue_.pop_front();
    }
  }
  if (groups.empty()) return;

  rocksdb::Status s;
  if (failed_.load(std::memory_order_acquire)) {
    s = rocksdb::Status::IOError(health().reason);
  } else {
    const uint64_t t0 = now_steady_ns();
    s = d_.db->SyncWAL();
    const uint64_t elapsed_ns = now_steady_ns() - t0;
    sync_nanos_.fetch_add(elapsed_ns, std::memory_order_relaxed);
    sync_seconds_.observe(static_cast<double>(elapsed_ns) / 1e9);
    syncs_.fetch_add(1, std::memory_order_relaxed);
  }
  if (s.ok()) {
    // Groups are synced in the order they were written, so the last one's
    // head covers them all.
    d_.head->publish(groups.back()->head_after);
  } else {
    // What reached the disk is unknown, so nothing more may be written on
    // top of it: the log turns read-only until an operator reopens it.
    const std::string reason = "fsync failed: " + s.ToString();
    fail(reason);
    const std::string recorded = health().reason;
    for (auto& g : groups) {
      for (AppendRequest* r : g->pending) r->outcome = make_error(errc::io_error, recorded);
    }
  }
  // Completions run outside stage_mu_, so the next sync can start while
  // they run; complete_mu_, taken before stage_mu_ is released, keeps them
  // in group order.
  std::lock_guard in_order(complete_mu_);
  stage.unlock();
  for (auto& g : groups) {
    for (AppendRequest* r : g->pending) complete(*r);
  }
}

bool GroupCommitWriter::take_group(std::vector<AppendRequest*>& out) {
  if (d_.options->writer_spin_ns > 0) {
    const uint64_t spin_until = now_steady_ns() + d_.options->writer_spin_ns;
    while (queued_.load(std::memory_order_acquire) == 0 && now_steady_ns() < spin_until) {
      cpu_relax();
    }
  }

  std::unique_lock lock(mu_);
  if (queue_.empty() && !stopping_) {
    writer_sleeping_ = true;
    cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
    writer_sleeping_ = false;
  }
  if (queue_.empty()) return false;  // stopping and drained
  size_t bytes = 0;
  while (!queue_.empty() && out.size() < d_.options->max_group_requests) {
    AppendRequest* r = queue_.front();
    // Always take one request: a single append is bounded by max_append_bytes
    // <= max_group_bytes (checked at open).
    if (!out.empty() && bytes + r->bytes > d_.options->max_group_bytes) break;
    bytes += r->bytes;
    out.push_back(r);
    queue_.pop_front();
  }
  queued_.store(queue_.size(), std::memory_order_release);
  queue_depth_.store(queue_.size(), std::memory_order_relaxed);
  return true;
}

void GroupCommitWriter::complete(AppendRequest& req) {
  ENGRAM_ASSERT(req.outcome.has_value());
  if (req.on_done) {
    const std::unique_ptr<AppendRequest> owned(&req);
    const auto callback = std::move(req.on_done);
    callback(std::move(*req.outcome));
    return;
  }
  req.done.signal();  // the waiter may destroy req at once
}

void GroupCommitWriter::fail(const std::string& reason) {
  bool first = false;
  {
    std::lock_guard lock(health_mu_);
    first = !failed_.load();
    if (first) failure_ = reason;
    failed_.store(true, std::memory_order_release);
  }
  // Once, with the cause: every later append fails with read_only and
  // names the same reason, so the log says it only here.
  if (first) {
    logging::write(logging::Level::error, "log turned read-only",
                   {{"reason", reason}, {"head", d_.head->position().value()}});
  }
}

std::unique_ptr<GroupCommitWriter::Group> GroupCommitWriter::write_group(
    std::vector<AppendRequest*>& requests) {
  append_requests_.fetch_add(requests.size(), std::memory_order_relaxed);
  atomic_max(max_group_, requests.size());
  group_requests_.observe(static_cast<double>(requests.size()));
  if (failed_.load(std::memory_order_acquire)) {
    const std::string reason = health().reason;
    for (AppendRequest* r : requests) {
      r->outcome = make_error(errc::read_only, reason);
      complete(*r);
    }
    return nullptr;
  }

  auto g = std::make_unique<Group>();
  g->next = written_.position.next();
  g->prev_hash = written_.hash;
  g->recorded_at_ns = std::max(d_.clock->now_ns(), last_recorded_at_ns_);
  g->durable = d_.head->position();
  for (AppendRequest* r : requests) decide_append(*r, *g);

  const uint64_t written = g->next.value() - written_.position.next().value();
  if (written > 0) {
    for (const auto& [stream, version] : g->stream_versions) {
      g->batch.Put(d_.stream_heads, rocksdb::Slice(stream.data(), stream.size()),
                   keys::be64(version));
    }
    const keys::HeadValue head{Position(g->next.value() - 1), g->prev_hash};
    g->batch.Put(d_.meta, rocksdb::Slice(keys::kMetaHead.data(), keys::kMetaHead.size()),
                 head.encode());
    // Not synced here: the sync stage makes it durable (SyncWAL) before
    // anyone is told. Until then readers do not see it: they stop at the
    // published head.
    const rocksdb::Status s = d_.db->Write(rocksdb::WriteOptions(), &g->batch);
    if (!s.ok()) {
      const std::string reason = "write failed: " + s.ToString();
      fail(reason);
      for (AppendRequest* r : g->pending) r->outcome = make_error(errc::io_error, reason);
      for (AppendRequest* r : g->final_now) complete(*r);
      for (AppendRequest* r : g->pending) complete(*r);
      return nullptr;
    }
    written_ = Head{Position(g->next.value() - 1), g->prev_hash};
    last_recorded_at_ns_ = g->recorded_at_ns;
    for (const auto& [stream, version] : g->stream_versions) remember_head(stream, version);
    groups_.fetch_add(1, std::memory_order_relaxed);
    events_appended_.fetch_add(written, std::memory_order_relaxed);
  }
  g->head_after = written_;

  // Outcomes that do not wait for a sync (rejections, retries of durable
  // appends) are final now.
  for (AppendRequest* r : g->final_now) complete(*r);
  if (g->pending.empty()) return nullptr;
  return g;
}

std::optional<result<AppendResult>> GroupCommitWriter::check_duplicates(AppendRequest& req,
                                                                        Group& g,
                                                                        bool& depends_on_group) {
  const size_t n = req.events.size();
  std::vector<std::optional<PendingId>> found(n);
  size_t found_count = 0;

  std::vector<std::string> key_bytes(n);
  std::vector<rocksdb::Slice> keys_to_get;
  std::vector<size_t> key_index;
  for (size_t i = 0; i < n; ++i) {
    const Uuid& id = req.events[i].id;
    if (auto it = g.ids.find(id); it != g.ids.end()) {
      found[i] = it->second;
      depends_on_group = true;
      ++found_count;
      continue;
    }
    key_bytes[i] = keys::dedupe_key(id.hi, id.lo);
    keys_to_get.emplace_back(key_bytes[i]);
    key_index.push_back(i);
  }
  if (!keys_to_get.empty()) {
    std::vector<rocksdb::PinnableSlice> values(keys_to_get.size());
    std::vector<rocksdb::Status> statuses(keys_to_get.size());
    d_.db->MultiGet(rocksdb::ReadOptions(), d_.dedupe, keys_to_get.size(), keys_to_get.data(),
                    values.data(), statuses.data());
    const uint64_t head = written_.position.value();
    const uint64_t window = d_.options->dedupe_window_events;
    for (size_t k = 0; k < keys_to_get.size(); ++k) {
      if (statuses[k].IsNotFound()) continue;
      if (!statuses[k].ok()) {
        return result<AppendResult>(
            make_error(errc::io_error, "reading the dedupe index: " + statuses[k].ToString()));
      }
      auto e = keys::DedupeEntry::decode(values[k].ToStringView());
      if (!e) return result<AppendResult>(make_error(errc::corruption, "malformed dedupe entry"));
      if (e->position.value() + window <= head) continue;  // outside the window: forgotten
      // Written but not yet synced: the retry may be answered only once it is.
      if (e->position > g.durable) depends_on_group = true;
      found[key_index[k]] = PendingId{e->position, e->version, e->digest};
      ++found_count;
    }
  }
  if (found_count == 0) return std::nullopt;

  for (size_t i = 0; i < n; ++i) {
    if (found[i] && found[i]->digest != req.events[i].digest) {
      return result<AppendResult>(make_error(
          errc::duplicate_id_conflict,
          fmt::format("event id {} is already stored at position {} with different content "
                      "or on another stream",
                      req.events[i].id.to_string(), found[i]->position.value())));
    }
  }
  bool same_append = found_count == n;
  for (size_t i = 1; same_append && i < n; ++i) {
    same_append = found[i]->position.value() == found[0]->position.value() + i &&
                  found[i]->version.value() == found[0]->version.value() + i;
  }
  if (!same_append) {
    return result<AppendResult>(make_error(
        errc::duplicate_id_conflict,
        "some event ids of this append are already stored, but not as one identical append"));
  }
  return result<AppendResult>(
      AppendResult{found[0]->position, found[n - 1]->position, found[n - 1]->version, true});
}

result<StreamVersion> GroupCommitWriter::current_version(std::string_view stream, const Group& g) {
  if (auto it = g.stream_versions.find(stream); it != g.stream_versions.end()) {
    return StreamVersion(it->second);
  }
  if (auto it = head_cache_.find(stream); it != head_cache_.end()) {
    return StreamVersion(it->second);
  }
  std::string value;
  const rocksdb::Status s = d_.db->Get(rocksdb::ReadOptions(), d_.stream_heads,
                                       rocksdb::Slice(stream.data(), stream.size()), &value);
  if (s.IsNotFound()) return StreamVersion(0);
  if (!s.ok()) return make_error(errc::io_error, "reading stream head: " + s.ToString());
  auto v = keys::parse_be64(value);
  if (!v) return make_error(errc::corruption, "malformed stream head");
  remember_head(stream, *v);
  return StreamVersion(*v);
}

void GroupCommitWriter::remember_head(std::string_view stream, uint64_t version) {
  // Bounded: when full, drop an arbitrary entry; a miss costs one RocksDB read.
  auto it = head_cache_.find(stream);
  if (it != head_cache_.end()) {
    it->second = version;
    return;
  }
  if (head_cache_.size() >= d_.options->stream_head_cache_entries && !head_cache_.empty()) {
    head_cache_.erase(head_cache_.begin());
  }
  head_cache_.emplace(std::string(stream), version);
}

void GroupCommitWriter::decide_append(AppendRequest& req, Group& g) {
  bool depends_on_group = false;
  if (auto dup = check_duplicates(req, g, depends_on_group)) {
    if (dup->has_value()) deduplicated_.fetch_add(1, std::memory_order_relaxed);
    req.outcome = std::move(*dup);
    (depends_on_group ? g.pending : g.final_now).push_back(&req);
    return;
  }

  auto current = current_version(req.stream, g);
  if (!current) {
    req.outcome = current.error();
    g.final_now.push_back(&req);
    return;
  }
  if (!req.expected.admits(*current)) {
    Error e = make_error(errc::wrong_expected_version,
                         fmt::format("stream '{}' is at version {}, expected {}", req.stream,
                                     current->value(), req.expected.to_string()));
    e.actual_version = current->value();
    req.outcome = std::move(e);
    // The version that refuses this append may not be durable yet (written
    // by this group or an earlier one still syncing). Answer after the sync,
    // so a caller that re-reads the stream sees at least actual_version.
    const bool unsynced =
        g.stream_versions.count(req.stream) > 0 || written_.position.value() > g.durable.value();
    (unsynced ? g.pending : g.final_now).push_back(&req);
    return;
  }

  const Position first = g.next;
  uint64_t version = current->value();
  for (PreparedEvent& ev : req.events) {
    ++version;
    const Position pos = g.next;
    g.prev_hash = envelope::seal(ev.envelope, pos, StreamVersion(version), g.recorded_at_ns,
                                 g.prev_hash, ev.digest);
    const std::string pos_key = keys::position_key(pos);
    g.batch.Put(d_.events, pos_key, ev.envelope);
    g.batch.Put(d_.stream_index, keys::stream_index_key(req.stream, StreamVersion(version)),
                pos_key);
    if (!ev.entity.empty()) {
      g.batch.Put(d_.entity_index, keys::entity_key(req.stream, ev.entity, pos),
                  keys::be64(version));
    }
    const keys::DedupeEntry entry{pos, StreamVersion(version), ev.digest};
    g.batch.Put(d_.dedupe, keys::dedupe_key(ev.id.hi, ev.id.lo), entry.encode());
    // A failed group turns the log read-only, so the tree may run ahead of
    // what is stored only when nothing more will be written.
    tree_.append(merkle::leaf_hash(g.prev_hash), [&](merkle::NodeId id, const Hash256& h) {
      g.batch.Put(d_.merkle, keys::merkle_node_key(id.level, id.index),
                  rocksdb::Slice(reinterpret_cast<const char*>(h.data()), h.size()));
    });
    g.ids.emplace(ev.id, PendingId{pos, StreamVersion(version), ev.digest});
    g.next = pos.next();
  }
  g.stream_versions[req.stream] = version;
  req.outcome = AppendResult{first, Position(g.next.value() - 1), StreamVersion(version), false};
  g.pending.push_back(&req);
}

}  // namespace engram::core
