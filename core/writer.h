#pragma once

// Group commit (internal to core). One thread owns the stream heads, the
// next position and the chain's last hash. Appenders put a request on a
// bounded queue and wait; the writer drains the queue into groups, decides
// each request against the heads, seals its envelopes (position, version,
// hash), writes the whole group as one RocksDB WriteBatch with one fsync,
// publishes the new head and wakes each waiter with its own result.
//
// Replication will add requests that carry positions assigned by a leader
// (a follower stores them after checking the chain) and a tail truncation
// for a fenced leader; both are further kinds of request decided in
// decide_*() against the same group state, so the loop, the batching and
// the sticky-failure handling stay as they are.

#include <rocksdb/db.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/head_state.h"
#include "core/log.h"

namespace engram::core {

struct PreparedEvent {
  std::string envelope;  // built by envelope::build(), sealed by the writer
  Hash256 digest{};      // envelope::content_digest() of its content
  Uuid id;
};

struct AppendRequest {
  std::string_view stream;
  ExpectedVersion expected = ExpectedVersion::any();
  std::vector<PreparedEvent> events;
  size_t bytes = 0;

  // Set by the writer before `done`.
  std::optional<result<AppendResult>> outcome;
  std::atomic<bool> done{false};
};

struct WriterDeps {
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* stream_index = nullptr;
  rocksdb::ColumnFamilyHandle* stream_heads = nullptr;
  rocksdb::ColumnFamilyHandle* dedupe = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  const LogOptions* options = nullptr;
  Clock* clock = nullptr;
  HeadState* head = nullptr;
};

class GroupCommitWriter {
 public:
  // `last_recorded_at_ns` keeps recorded-at times non-decreasing across restarts.
  GroupCommitWriter(WriterDeps deps, int64_t last_recorded_at_ns);
  // Completes every queued request, then joins the thread.
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Queues `req` and blocks until the writer has decided it (and, if it
  // wrote anything, fsynced it). Fails fast when the queue is full.
  result<AppendResult> submit(AppendRequest& req);

  Health health() const;
  void add_stats(LogStats& s) const;

 private:
  struct PendingId {
    Position position;
    StreamVersion version;
    Hash256 digest;
  };
  // Decisions of the current group that are not yet on disk.
  struct Group {
    Position next;
    Hash256 prev_hash{};
    int64_t recorded_at_ns = 0;
    std::unordered_map<std::string_view, uint64_t> stream_versions;
    std::unordered_map<Uuid, PendingId, UuidHash> ids;
    rocksdb::WriteBatch batch;
    std::vector<AppendRequest*> requests;
    // Requests whose outcome holds only if the batch commits.
    std::vector<AppendRequest*> pending;
  };

  void run();
  bool take_group(std::vector<AppendRequest*>& out);
  void commit_group(std::vector<AppendRequest*>& requests);
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
  rocksdb::WriteOptions sync_write_;

  // Queue shared with appenders.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<AppendRequest*> queue_;
  bool stopping_ = false;

  // Sticky failure.
  mutable std::mutex health_mu_;
  std::atomic<bool> failed_{false};
  std::string failure_;

  // Owned by the writer thread.
  Head committed_;
  int64_t last_recorded_at_ns_;
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>> head_cache_;

  std::atomic<uint64_t> append_requests_{0}, events_appended_{0}, deduplicated_{0}, groups_{0},
      sync_nanos_{0}, max_group_{0}, queue_depth_{0};

  std::thread thread_;
};

}  // namespace engram::core
