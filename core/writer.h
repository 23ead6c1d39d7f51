#pragma once

// Group commit (internal to core), in two stages.
//
// Write stage (the writer thread, which alone owns the stream heads, the
// next position and the chain's last hash): appenders put requests on a
// bounded queue and wait; the writer drains it into groups, decides each
// request against the heads, seals its envelopes (position, version, hash)
// and writes the whole group as one RocksDB WriteBatch, without sync.
//
// Sync stage: one WAL sync (SyncWAL, an fdatasync) for every group written
// so far, then the head is published and each waiter gets its own result.
// It runs on the syncer thread while the writer writes the next group, or on
// the writer thread itself when no request is waiting (so a lone appender
// pays no extra handoff). Nothing is acknowledged or visible to readers
// before it is synced; a failed write or sync is sticky.
//
// Replication will add requests that carry positions assigned by a leader
// (a follower stores them after checking the chain) and a tail truncation
// for a fenced leader; both are further kinds of request decided against
// the same group state, so the stages, the batching and the sticky-failure
// handling stay as they are.

#include <rocksdb/db.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/completion.h"
#include "core/head_state.h"
#include "core/log.h"
#include "core/merkle.h"

namespace engram::core {

struct PreparedEvent {
  std::string envelope;  // built by envelope::build(), sealed by the writer
  Hash256 digest{};      // envelope::content_digest() of its content
  Uuid id;
  std::string entity;  // EventData::entity
};

struct AppendRequest {
  std::string_view stream;  // the caller's, or owned_stream for async appends
  std::string owned_stream;
  ExpectedVersion expected = ExpectedVersion::any();
  std::vector<PreparedEvent> events;
  size_t bytes = 0;

  // Set by the writer before completion.
  std::optional<result<AppendResult>> outcome;
  // Completion: a blocked caller waits on `done`; an async append has a
  // callback instead, and the writer owns (and frees) the request.
  Completion done;
  std::function<void(result<AppendResult>)> on_done;
};

struct WriterDeps {
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* stream_index = nullptr;
  rocksdb::ColumnFamilyHandle* stream_heads = nullptr;
  rocksdb::ColumnFamilyHandle* dedupe = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* merkle = nullptr;
  rocksdb::ColumnFamilyHandle* entity_index = nullptr;
  const LogOptions* options = nullptr;
  Clock* clock = nullptr;
  HeadState* head = nullptr;
};

class GroupCommitWriter {
 public:
  // `last_recorded_at_ns` keeps recorded-at times non-decreasing across
  // restarts; `tree` is the Merkle tree's right edge at the head.
  GroupCommitWriter(WriterDeps deps, int64_t last_recorded_at_ns, merkle::Frontier tree);
  // Completes every queued request, then joins the thread.
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Queues `req` and blocks until the writer has decided it (and, if it
  // wrote anything, fsynced it). Fails fast when the queue is full.
  result<AppendResult> submit(AppendRequest& req);
  // Queues a request that has a callback; on success the writer owns it.
  result<void> submit_async(std::unique_ptr<AppendRequest> req);

  Health health() const;
  void add_stats(LogStats& s) const;

 private:
  struct PendingId {
    Position position;
    StreamVersion version;
    Hash256 digest;
  };
  // One group: decided and written by the writer thread, then made durable
  // by the sync stage.
  struct Group {
    Position durable;  // the published (synced) head when the group was formed
    Head head_after;   // the written head after this group
    Position next;
    Hash256 prev_hash{};
    int64_t recorded_at_ns = 0;
    std::unordered_map<std::string_view, uint64_t> stream_versions;
    std::unordered_map<Uuid, PendingId, UuidHash> ids;
    rocksdb::WriteBatch batch;
    // Requests whose outcome holds only once the group is synced...
    std::vector<AppendRequest*> pending;
    // ...and those whose outcome is final when decided (rejections, retries
    // of durable appends).
    std::vector<AppendRequest*> final_now;
  };

  result<void> enqueue(AppendRequest* req);
  void run();
  void run_syncer();
  bool take_group(std::vector<AppendRequest*>& out);
  // Decides and writes (without sync) one group; completes the requests
  // that need no sync and returns the group if some do.
  std::unique_ptr<Group> write_group(std::vector<AppendRequest*>& requests);
  void hand_to_sync(std::unique_ptr<Group> g, bool wake);
  void wake_syncer();
  // Syncs the WAL once for every group handed over so far, publishes the
  // head and completes their requests. Called with `stage` (stage_mu_)
  // locked; releases it before completing.
  void sync_stage(std::unique_lock<std::mutex>& stage);
  // Decides one append against the group state; sets req.outcome and, if it
  // writes, adds its puts to the batch.
  void decide_append(AppendRequest& req, Group& g);
  std::optional<result<AppendResult>> check_duplicates(AppendRequest& req, Group& g,
                                                       bool& depends_on_group);
  result<StreamVersion> current_version(std::string_view stream, const Group& g);
  void remember_head(std::string_view stream, uint64_t version);
  void fail(const std::string& reason);
  static void complete(AppendRequest& req);

  WriterDeps d_;

  // Queue shared with appenders.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<AppendRequest*> queue_;
  bool stopping_ = false;
  bool writer_sleeping_ = false;  // appenders signal cv_ only then
  // Lock-free views for spinning: queued requests, and appends in flight.
  std::atomic<size_t> queued_{0};
  std::atomic<size_t> in_flight_{0};

  // Sticky failure.
  mutable std::mutex health_mu_;
  std::atomic<bool> failed_{false};
  std::string failure_;

  // The sync stage: groups written but not yet synced, in order. It runs on
  // the syncer thread, or on the writer thread when that has nothing else to
  // do; stage_mu_ makes it one at a time, so groups complete in order.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::deque<std::unique_ptr<Group>> sync_queue_;
  bool syncer_sleeping_ = false;
  bool sync_stopping_ = false;
  std::mutex stage_mu_;
  std::mutex complete_mu_;  // completions, in group order (sync_stage)

  // Owned by the writer thread.
  Head written_;           // the last written (maybe not yet synced) event
  merkle::Frontier tree_;  // the Merkle tree over events 1..written_
  int64_t last_recorded_at_ns_;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>> head_cache_;

  std::atomic<uint64_t> append_requests_{0}, events_appended_{0}, deduplicated_{0}, groups_{0},
      sync_nanos_{0}, syncs_{0}, max_group_{0}, queue_depth_{0};
  metrics::Histogram group_requests_{metrics::size_buckets()};
  metrics::Histogram sync_seconds_{metrics::latency_buckets_seconds()};

  std::thread syncer_;
  std::thread thread_;
};

}  // namespace engram::core
