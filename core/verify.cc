// Log::verify: the hash chain, and over the whole log the Merkle tree, the
// stream index and the stream heads.
//
// The reading thread copies batches of envelopes out of RocksDB; `threads`
// hashers check each batch on their own (envelope, position, hash, the
// links inside the batch, leaf hashes); the reading thread then folds the
// batches in order: the link between batches, the tree's interior nodes and
// the comparison with the stored ones. The index is checked by comparing a
// keyed sum over (stream, version, position) of the events with the same sum
// over the index entries; only when they differ is the index walked entry by
// entry to name the bad one.

#include <fmt/format.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "core/crypto.h"
#include "core/keys.h"
#include "core/log_impl.h"
#include "core/merkle.h"

namespace engram::core {
namespace {

constexpr size_t kBatchEvents = 2048;
constexpr size_t kMaxBatchesInFlight = 8;
constexpr uint64_t kProgressEvery = 1 << 16;
constexpr size_t kMaxVerifyThreads = 16;

struct Problem {
  uint64_t position = 0;
  std::string what;
};

// A keyed 64-bit mix of one index entry. The key is drawn per run, so an
// entry cannot be crafted to cancel another in the sum.
uint64_t mix(uint64_t key, std::string_view stream, uint64_t version, uint64_t position) {
  auto splitmix = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  uint64_t h = splitmix(key ^ std::hash<std::string_view>{}(stream));
  h = splitmix(h ^ version);
  return splitmix(h ^ position);
}

struct Batch {
  uint64_t first = 0;
  std::vector<std::string> values;
  // Filled by a hasher.
  bool done = false;
  Hash256 first_prev{};  // the first event's prev hash
  Hash256 last_hash{};   // the last good event's recomputed hash
  std::vector<Hash256> leaves;
  uint64_t index_sum = 0;
  std::optional<Problem> problem;  // the first bad event of the batch
};

void check_batch(Batch& b, uint64_t mix_key) {
  b.leaves.reserve(b.values.size());
  Hash256 prev{};
  for (size_t i = 0; i < b.values.size(); ++i) {
    const uint64_t expected = b.first + i;
    auto ev = RecordedEvent::decode(std::move(b.values[i]));
    if (!ev) {
      b.problem = Problem{expected, "envelope fails FlatBuffers verification"};
      return;
    }
    if (ev->position().value() != expected) {
      b.problem =
          Problem{expected, fmt::format("envelope says position {}", ev->position().value())};
      return;
    }
    if (i == 0) {
      b.first_prev = ev->prev_hash();
    } else if (ev->prev_hash() != prev) {
      b.problem = Problem{expected, "prev hash does not match the hash of the event before it"};
      return;
    }
    const Hash256 hash = ev->compute_hash();
    if (hash != ev->hash()) {
      b.problem = Problem{expected, "hash mismatch: the event's content was altered"};
      return;
    }
    prev = hash;
    b.last_hash = hash;
    b.leaves.push_back(merkle::leaf_hash(hash));
    b.index_sum += mix(mix_key, ev->stream(), ev->version().value(), expected);
  }
}

// Hashers taking batches in any order; the reader folds them in order.
class HasherPool {
 public:
  HasherPool(size_t threads, uint64_t mix_key) : mix_key_(mix_key) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~HasherPool() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(Batch* b) {
    if (threads_.empty()) {
      check_batch(*b, mix_key_);
      b->done = true;
      return;
    }
    {
      std::lock_guard lock(mu_);
      todo_.push_back(b);
    }
    work_cv_.notify_one();
  }
  void wait(Batch* b) {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return b->done; });
  }

 private:
  void run() {
    for (;;) {
      Batch* b = nullptr;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return stopping_ || !todo_.empty(); });
        if (todo_.empty()) return;
        b = todo_.front();
        todo_.pop_front();
      }
      check_batch(*b, mix_key_);
      {
        std::lock_guard lock(mu_);
        b->done = true;
      }
      done_cv_.notify_all();
    }
  }

  uint64_t mix_key_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Batch*> todo_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

struct IndexScan {
  uint64_t sum = 0;
  uint64_t entries = 0;
  uint64_t streams = 0;
  std::optional<Problem> problem;
  std::optional<Error> error;
};

// The stream index and heads in key order: versions contiguous from 1 per
// stream, and each stream's head equal to its last version. A live writer
// may have written entries of a group not yet synced (past `head`); those
// are left out, and a head may then be ahead of the last version counted.
IndexScan scan_index(const Log::Impl& impl, uint64_t mix_key, uint64_t head) {
  const bool live = impl.writer != nullptr;
  IndexScan out;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> idx(impl.db->NewIterator(ro, impl.stream_index));
  std::unique_ptr<rocksdb::Iterator> heads(impl.db->NewIterator(ro, impl.stream_heads));
  heads->SeekToFirst();
  std::string stream;
  uint64_t last_version = 0;
  auto close_stream = [&]() -> bool {
    if (stream.empty()) return true;
    // Heads of streams whose every entry was left out (new in an unsynced group).
    while (live && heads->Valid() && heads->key().ToStringView() < stream) heads->Next();
    if (last_version == 0) return true;
    ++out.streams;
    if (!heads->Valid() || heads->key().ToStringView() != stream) {
      out.problem = Problem{0, fmt::format("stream '{}' has no stream head entry", stream)};
      return false;
    }
    auto v = keys::parse_be64(heads->value().ToStringView());
    if (!v || (live ? *v < last_version : *v != last_version)) {
      out.problem = Problem{0, fmt::format("stream '{}': its head says version {} but its last "
                                           "indexed version is {}",
                                           stream, v ? *v : 0, last_version)};
      return false;
    }
    heads->Next();
    return true;
  };
  for (idx->SeekToFirst(); idx->Valid(); idx->Next()) {
    const std::string_view key = idx->key().ToStringView();
    const size_t nul = key.find('\0');
    auto entry = nul == std::string_view::npos
                     ? std::nullopt
                     : keys::IndexEntry::decode(key.substr(nul + 1), idx->value().ToStringView());
    if (!entry) {
      out.problem = Problem{0, "malformed stream index entry"};
      return out;
    }
    const std::string_view s = key.substr(0, nul);
    if (s != stream) {
      if (!close_stream()) return out;
      stream.assign(s);
      last_version = 0;
    }
    if (entry->position.value() > head) {
      if (live) continue;
      out.problem = Problem{entry->position.value(),
                            fmt::format("stream index entry '{}' version {} points past the head "
                                        "({}) at position {}",
                                        s, entry->version.value(), head, entry->position.value())};
      return out;
    }
    if (entry->version.value() != last_version + 1) {
      out.problem = Problem{0, fmt::format("stream index of '{}' lacks version {} (the next "
                                           "entry is version {}, at position {})",
                                           stream, last_version + 1, entry->version.value(),
                                           entry->position.value())};
      return out;
    }
    last_version = entry->version.value();
    out.sum += mix(mix_key, s, last_version, entry->position.value());
    ++out.entries;
  }
  if (!idx->status().ok()) {
    out.error = make_error(errc::io_error, idx->status().ToString());
    return out;
  }
  if (!close_stream()) return out;
  while (live && heads->Valid()) heads->Next();
  if (heads->Valid()) {
    out.problem = Problem{0, fmt::format("stream '{}' has a head entry but no indexed events",
                                         heads->key().ToStringView())};
  }
  return out;
}

// The slow path, once the sums disagree: the first index entry that points
// at an event of another stream or version, or the first event with no entry.
Problem find_index_problem(const Log::Impl& impl, uint64_t head) {
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> idx(impl.db->NewIterator(ro, impl.stream_index));
  for (idx->SeekToFirst(); idx->Valid(); idx->Next()) {
    const std::string_view key = idx->key().ToStringView();
    const size_t nul = key.find('\0');
    auto entry = keys::IndexEntry::decode(key.substr(nul + 1), idx->value().ToStringView());
    const std::string_view stream = key.substr(0, nul);
    std::string value;
    result<RecordedEvent> ev = make_error(errc::not_found, "no event");
    if (impl.db->Get(ro, impl.events, keys::position_key(entry->position), &value).ok()) {
      ev = RecordedEvent::decode(std::move(value));
    }
    if (entry->position.value() > head || !ev || ev->stream() != stream ||
        ev->version() != entry->version) {
      return Problem{
          entry->position.value(),
          fmt::format("stream index entry '{}' version {} points at position {}, which "
                      "holds {}",
                      stream, entry->version.value(), entry->position.value(),
                      ev ? fmt::format("'{}' version {}", ev->stream(), ev->version().value())
                         : std::string("no event"))};
    }
  }
  std::unique_ptr<rocksdb::Iterator> events(impl.db->NewIterator(ro, impl.events));
  for (events->SeekToFirst(); events->Valid(); events->Next()) {
    auto ev = RecordedEvent::decode(events->value().ToString());
    if (!ev) continue;
    std::string value;
    if (!impl.db
             ->Get(ro, impl.stream_index, keys::stream_index_key(ev->stream(), ev->version()),
                   &value)
             .ok()) {
      return Problem{ev->position().value(),
                     fmt::format("event at position {} ('{}' version {}) has no stream index entry",
                                 ev->position().value(), ev->stream(), ev->version().value())};
    }
  }
  return Problem{0, "the stream index and the events disagree"};
}

}  // namespace

result<VerifyReport> Log::verify(Position from, Position to,
                                 const std::function<void(uint64_t, uint64_t)>& progress,
                                 size_t threads) const {
  const Head head = impl_->head->get();
  from = std::max(from, Position(1));
  to = std::min(to, head.position);
  threads = std::min(threads, kMaxVerifyThreads);

  VerifyReport report;
  report.whole_log = from == Position(1) && to == head.position;
  auto broken = [&](const Problem& p) {
    report.first_bad = Position(p.position);
    report.problem = p.what;
    return report;
  };
  if (from > to && !report.whole_log) return report;

  // The link into the range: the hash of the event before `from`.
  Hash256 prev{};
  if (from.value() > 1) {
    std::string value;
    const rocksdb::Status s =
        impl_->db->Get(rocksdb::ReadOptions(), impl_->events,
                       keys::position_key(Position(from.value() - 1)), &value);
    if (s.IsNotFound()) return broken({from.value() - 1, "event missing"});
    if (!s.ok()) return make_error(errc::io_error, s.ToString());
    auto ev = RecordedEvent::decode(std::move(value));
    if (!ev) return broken({from.value() - 1, "envelope fails verification"});
    prev = ev->hash();
  }

  uint64_t mix_key = 0;
  random_bytes({reinterpret_cast<uint8_t*>(&mix_key), sizeof mix_key});
  std::optional<IndexScan> index;
  std::thread index_thread;
  if (report.whole_log) {
    index_thread = std::thread([&] { index = scan_index(*impl_, mix_key, head.position.value()); });
  }
  struct JoinIndex {
    std::thread& t;
    ~JoinIndex() {
      if (t.joinable()) t.join();
    }
  } join_index{index_thread};

  const uint64_t total = to >= from ? to.value() - from.value() + 1 : 0;
  std::optional<Problem> problem;
  merkle::Frontier tree;
  uint64_t event_sum = 0;
  LogTreeSource stored(*impl_);
  auto fold = [&](Batch& b) {
    if (problem) return;
    if (b.first_prev != prev && !b.values.empty() && (b.leaves.size() > 0 || !b.problem)) {
      problem = Problem{b.first, "prev hash does not match the hash of the event before it"};
      return;
    }
    for (const Hash256& leaf : b.leaves) {
      tree.append(leaf, [&](merkle::NodeId id, const Hash256& h) {
        if (problem) return;
        const uint64_t completed_by = (id.index + 1) << id.level;
        auto node = stored.node(id);
        if (!node) {
          problem = Problem{completed_by, node.error().message};
        } else if (*node != h) {
          problem = Problem{completed_by, fmt::format("Merkle node (level {}, index {}) does not "
                                                      "match the events it covers",
                                                      id.level, id.index)};
        } else {
          ++report.tree_nodes_checked;
        }
      });
      if (problem) return;
    }
    if (b.problem) {
      problem = b.problem;
      return;
    }
    prev = b.last_hash;
    event_sum += b.index_sum;
    report.events_checked += b.leaves.size();
    report.head = Head{Position(b.first + b.leaves.size() - 1), prev};
  };

  {
    HasherPool pool(threads, mix_key);
    std::deque<std::unique_ptr<Batch>> in_flight;
    auto fold_oldest = [&] {
      pool.wait(in_flight.front().get());
      fold(*in_flight.front());
      in_flight.pop_front();
      if (progress && report.events_checked % kProgressEvery < kBatchEvents)
        progress(report.events_checked, total);
    };

    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // a full scan must not evict the working set
    ro.readahead_size = 2 << 20;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
    uint64_t expected = from.value();
    auto batch = std::make_unique<Batch>();
    batch->first = expected;
    for (it->Seek(keys::position_key(from)); it->Valid() && expected <= to.value(); it->Next()) {
      auto pos = keys::parse_be64(it->key().ToStringView());
      if (!pos) {
        problem = Problem{expected, "malformed event key in the events family"};
        break;
      }
      if (*pos != expected) {
        problem =
            Problem{expected, fmt::format("event missing (the next stored event is at {})", *pos)};
        break;
      }
      batch->values.emplace_back(it->value().data(), it->value().size());
      ++expected;
      if (batch->values.size() == kBatchEvents) {
        pool.submit(batch.get());
        in_flight.push_back(std::move(batch));
        batch = std::make_unique<Batch>();
        batch->first = expected;
        if (in_flight.size() >= kMaxBatchesInFlight) fold_oldest();
      }
    }
    if (!it->status().ok()) return make_error(errc::io_error, it->status().ToString());
    // A problem found by the reader lies after every batch read so far,
    // which may hold an earlier one: fold them all first.
    const std::optional<Problem> reader_problem = problem;
    problem.reset();
    if (!batch->values.empty()) {
      pool.submit(batch.get());
      in_flight.push_back(std::move(batch));
    }
    while (!in_flight.empty()) fold_oldest();
    if (!problem) problem = reader_problem;
    if (!problem && expected <= to.value()) {
      problem = Problem{expected, fmt::format("event missing (the log ends at {})", expected - 1)};
    }
    if (!problem && to == head.position) {
      if (prev != head.hash) {
        problem = Problem{to.value(), "hash differs from the head hash recorded in meta"};
      } else if (!impl_->writer && it->Valid()) {
        // With a live writer, events past the head are a group being
        // synced; in a read-only view nothing may lie beyond it.
        problem = Problem{to.value() + 1, fmt::format("event stored beyond the head ({}) recorded "
                                                      "in meta",
                                                      head.position.value())};
      }
    }
  }
  if (index_thread.joinable()) index_thread.join();
  if (problem) return broken(*problem);

  if (report.whole_log) {
    report.tree_root = tree.root();
    if (index->error) return *index->error;
    report.index_entries_checked = index->entries;
    report.streams_checked = index->streams;
    if (index->problem) {
      // Position 0: the problem is not at one event (a head entry).
      return broken(*index->problem);
    }
    if (index->entries != report.events_checked || index->sum != event_sum) {
      return broken(find_index_problem(*impl_, head.position.value()));
    }
  }
  if (progress) progress(report.events_checked, total);
  return report;
}

}  // namespace engram::core
