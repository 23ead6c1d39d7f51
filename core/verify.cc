// Log::verify: the hash chain, and over the whole log the Merkle tree, the
// stream index and the stream heads.
//
// The log is cut into chunks of 2^16 positions, aligned with the Merkle
// tree so that each full chunk is one perfect subtree. `threads` workers
// take chunks in any order and check each on its own, with their own
// RocksDB iterator: every envelope, position and hash, the links inside the
// chunk, and the stored tree nodes inside it. The calling thread folds the
// chunks' results in order: the link between chunks, and the tree above
// them. The index is checked by comparing a keyed sum over (stream,
// version, position) of the events with the same sum over the index
// entries, on one more thread; only when they differ is the index walked
// entry by entry to name the bad one.

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/crypto.h"
#include "core/keys.h"
#include "core/log_impl.h"
#include "core/merkle.h"

namespace engram::core {
namespace {

constexpr int kChunkLevel = 16;
constexpr uint64_t kChunkEvents = uint64_t{1} << kChunkLevel;
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

// Compares a recomputed tree node with the stored one; the problem is named
// at the position that completed the node.
std::optional<Problem> check_node(LogTreeSource& stored, merkle::NodeId id, const Hash256& h) {
  const uint64_t completed_by = (id.index + 1) << id.level;
  auto node = stored.node(id);
  if (!node) return Problem{completed_by, node.error().message};
  if (*node != h) {
    return Problem{completed_by, fmt::format("Merkle node (level {}, index {}) does not match "
                                             "the events it covers",
                                             id.level, id.index)};
  }
  return std::nullopt;
}

// What a worker found in one chunk.
struct Chunk {
  bool done = false;
  uint64_t first = 0;    // the first position checked
  uint64_t checked = 0;  // events that passed
  Hash256 first_prev{};  // the first event's prev hash (when it decoded)
  bool first_ok = false;
  Hash256 last_hash{};
  // The chunk's part of the tree, largest first (one part when full).
  std::vector<merkle::Frontier::Part> parts;
  uint64_t tree_nodes_checked = 0;
  uint64_t index_sum = 0;
  std::optional<Problem> problem;  // the first bad position of the chunk
};

// Checks positions [first, last] of chunk `c` with its own iterator.
// `tree`: also rebuild the chunk's subtree and compare the stored nodes in it.
void check_chunk(const Log::Impl& impl, uint64_t first, uint64_t last, bool tree, uint64_t mix_key,
                 Chunk& out) {
  out.first = first;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a full scan must not evict the working set
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(impl.db->db().NewIterator(ro, impl.events));
  LogTreeSource stored(impl);
  merkle::Frontier frontier;
  // Leaf index of the chunk's first leaf; chunks start aligned (tree only from 1).
  const uint64_t base = first - 1;
  Hash256 prev{};
  uint64_t expected = first;
  auto bad = [&](std::string what) { out.problem = Problem{expected, std::move(what)}; };
  for (it->Seek(keys::position_key(Position(first))); expected <= last; it->Next(), ++expected) {
    if (!it->Valid()) {
      if (!it->status().ok()) return bad("reading the events family: " + it->status().ToString());
      return bad(fmt::format("event missing (the log ends at {})", expected - 1));
    }
    auto pos = keys::parse_be64(it->key().ToStringView());
    if (!pos) return bad("malformed event key in the events family");
    if (*pos != expected) {
      return bad(fmt::format("event missing (the next stored event is at {})", *pos));
    }
    auto ev = RecordedEvent::decode(it->value().ToString());
    if (!ev) return bad("envelope fails FlatBuffers verification");
    if (ev->position().value() != expected) {
      return bad(fmt::format("envelope says position {}", ev->position().value()));
    }
    if (expected == first) {
      out.first_prev = ev->prev_hash();
      out.first_ok = true;
    } else if (ev->prev_hash() != prev) {
      return bad("prev hash does not match the hash of the event before it");
    }
    const Hash256 hash = ev->compute_hash();
    if (hash != ev->hash()) return bad("hash mismatch: the event's content was altered");
    prev = hash;
    out.last_hash = hash;
    ++out.checked;
    out.index_sum += mix(mix_key, ev->stream(), ev->version().value(), expected);
    if (!tree) continue;
    std::optional<Problem> node_problem;
    frontier.append(merkle::leaf_hash(hash), [&](merkle::NodeId id, const Hash256& h) {
      if (node_problem) return;
      node_problem = check_node(stored, {id.level, (base >> id.level) + id.index}, h);
      if (!node_problem) ++out.tree_nodes_checked;
    });
    if (node_problem) {
      out.problem = node_problem;
      return;
    }
  }
  out.parts = frontier.parts();
}

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
  std::unique_ptr<rocksdb::Iterator> idx(impl.db->db().NewIterator(ro, impl.stream_index));
  std::unique_ptr<rocksdb::Iterator> heads(impl.db->db().NewIterator(ro, impl.stream_heads));
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
  if (!heads->status().ok()) {
    out.error = make_error(errc::io_error, heads->status().ToString());
    return out;
  }
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
  std::unique_ptr<rocksdb::Iterator> idx(impl.db->db().NewIterator(ro, impl.stream_index));
  for (idx->SeekToFirst(); idx->Valid(); idx->Next()) {
    const std::string_view key = idx->key().ToStringView();
    const size_t nul = key.find('\0');
    auto entry = keys::IndexEntry::decode(key.substr(nul + 1), idx->value().ToStringView());
    const std::string_view stream = key.substr(0, nul);
    std::string value;
    result<RecordedEvent> ev = make_error(errc::not_found, "no event");
    const rocksdb::Status got =
        impl.db->db().Get(ro, impl.events, keys::position_key(entry->position), &value);
    if (got.ok()) {
      ev = RecordedEvent::decode(std::move(value));
    } else if (!got.IsNotFound()) {
      return Problem{entry->position.value(), "reading the event: " + got.ToString()};
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
  if (!idx->status().ok()) return Problem{0, "reading the stream index: " + idx->status().ToString()};
  std::unique_ptr<rocksdb::Iterator> events(impl.db->db().NewIterator(ro, impl.events));
  for (events->SeekToFirst(); events->Valid(); events->Next()) {
    auto ev = RecordedEvent::decode(events->value().ToString());
    if (!ev) continue;
    std::string value;
    const rocksdb::Status got = impl.db->db().Get(
        ro, impl.stream_index, keys::stream_index_key(ev->stream(), ev->version()), &value);
    if (!got.ok() && !got.IsNotFound()) {
      return Problem{ev->position().value(), "reading the stream index: " + got.ToString()};
    }
    if (!got.ok()) {
      return Problem{ev->position().value(),
                     fmt::format("event at position {} ('{}' version {}) has no stream index entry",
                                 ev->position().value(), ev->stream(), ev->version().value())};
    }
  }
  if (!events->status().ok()) return Problem{0, "reading the events: " + events->status().ToString()};
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
        impl_->db->db().Get(rocksdb::ReadOptions(), impl_->events,
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
  // Chunk k covers positions [k * kChunkEvents + 1, (k + 1) * kChunkEvents] within [from, to].
  const uint64_t first_chunk = (from.value() - 1) / kChunkEvents;
  const uint64_t chunks = total == 0 ? 0 : (to.value() - 1) / kChunkEvents - first_chunk + 1;
  std::vector<Chunk> results(chunks);
  std::mutex mu;
  std::condition_variable done_cv;
  std::atomic<uint64_t> next_chunk{0};
  std::atomic<uint64_t> stop_after{UINT64_MAX};  // no chunk past a bad one is needed
  // Claims and checks the next chunk; false when none is left.
  auto work_one = [&] {
    const uint64_t i = next_chunk.fetch_add(1);
    if (i >= chunks) return false;
    {
      Chunk c;
      if (i <= stop_after.load()) {
        const uint64_t k = first_chunk + i;
        const uint64_t lo = std::max(from.value(), k * kChunkEvents + 1);
        const uint64_t hi = std::min(to.value(), (k + 1) * kChunkEvents);
        check_chunk(*impl_, lo, hi, report.whole_log, mix_key, c);
        if (c.problem) {
          uint64_t cur = stop_after.load();
          while (i < cur && !stop_after.compare_exchange_weak(cur, i)) {
          }
        }
      }
      {
        std::lock_guard lock(mu);
        c.done = true;
        results[i] = std::move(c);
      }
      done_cv.notify_all();
    }
    return true;
  };
  auto work = [&] {
    while (work_one()) {
    }
  };
  std::vector<std::thread> workers;
  for (size_t t = 0; t < threads; ++t) workers.emplace_back(work);
  struct JoinWorkers {
    std::vector<std::thread>& ts;
    ~JoinWorkers() {
      for (auto& t : ts) t.join();
    }
  } join_workers{workers};

  std::optional<Problem> problem;
  merkle::Frontier tree;
  uint64_t event_sum = 0;
  LogTreeSource stored(*impl_);
  auto fold_node = [&](merkle::NodeId id, const Hash256& h) {
    if (problem) return;
    problem = check_node(stored, id, h);
    if (!problem) ++report.tree_nodes_checked;
  };
  for (uint64_t i = 0; i < chunks && !problem; ++i) {
    if (threads == 0) work_one();  // chunk i, on this thread
    Chunk c;
    {
      std::unique_lock lock(mu);
      done_cv.wait(lock, [&] { return results[i].done; });
      c = std::move(results[i]);
    }
    if (c.first_ok && c.first_prev != prev) {
      problem = Problem{c.first, "prev hash does not match the hash of the event before it"};
      break;
    }
    if (c.problem) {
      problem = c.problem;
      break;
    }
    prev = c.last_hash;
    event_sum += c.index_sum;
    report.events_checked += c.checked;
    report.tree_nodes_checked += c.tree_nodes_checked;
    report.head = Head{Position(c.first + c.checked - 1), prev};
    if (report.whole_log) {
      for (const auto& part : c.parts) tree.append_subtree(part.level, part.hash, fold_node);
    }
    if (progress) progress(report.events_checked, total);
  }
  stop_after.store(0);  // the workers finish what they hold and take no more
  if (!problem && to == head.position) {
    if (prev != head.hash) {
      problem = Problem{to.value(), "hash differs from the head hash recorded in meta"};
    }
  }
  if (!problem && to == head.position && !impl_->writer) {
    // With a live writer, events past the head are a group being synced; in
    // a read-only view nothing may lie beyond it.
    std::unique_ptr<rocksdb::Iterator> it(
        impl_->db->db().NewIterator(rocksdb::ReadOptions(), impl_->events));
    it->Seek(keys::position_key(Position(to.value() + 1)));
    if (it->Valid()) {
      problem = Problem{to.value() + 1, fmt::format("event stored beyond the head ({}) recorded "
                                                    "in meta",
                                                    head.position.value())};
    } else if (!it->status().ok()) {
      return make_error(errc::io_error, it->status().ToString());
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
