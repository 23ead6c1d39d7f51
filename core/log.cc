#include "core/log.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/slice_transform.h>

#include <algorithm>
#include <cstring>

#include "core/envelope.h"
#include "core/keys.h"
#include "core/keystore_rocks.h"
#include "core/log_impl.h"
#include "core/logging.h"
#include "core/model_db.h"
#include "core/rocks_db.h"
#include "core/rocks_status.h"
#include "core/thread_role.h"

namespace engram::core {
namespace {

// Memtable insert hints: the stream index's keys arrive in order within each
// stream ("stream\0" + version), and a stream head is the same key over and
// over, so RocksDB can insert next to the previous key of the same prefix
// instead of searching the skiplist from the top.
class UpToNulTransform final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "engram.UpToNul"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const void* nul = std::memchr(key.data(), '\0', key.size());
    if (nul == nullptr) return key;
    return rocksdb::Slice(key.data(),
                          static_cast<size_t>(static_cast<const char*>(nul) - key.data()) + 1);
  }
  bool InDomain(const rocksdb::Slice&) const override { return true; }
};

result<void> validate(const LogOptions& o) {
  auto bad = [](const char* what) { return make_error(errc::invalid_argument, what); };
  if (o.max_queue_requests == 0) return bad("max_queue_requests must be > 0");
  if (o.max_group_requests == 0) return bad("max_group_requests must be > 0");
  if (o.max_events_per_append == 0) return bad("max_events_per_append must be > 0");
  if (o.max_event_bytes > o.max_append_bytes)
    return bad("max_event_bytes must be <= max_append_bytes");
  if (o.max_append_bytes > o.max_group_bytes)
    return bad("max_append_bytes must be <= max_group_bytes");
  if (o.max_stream_name_bytes == 0 || o.max_event_type_bytes == 0)
    return bad("name limits must be > 0");
  if (o.dedupe_window_events == 0) return bad("dedupe_window_events must be > 0");
  if (o.max_read_count == 0) return bad("max_read_count must be > 0");
  return {};
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Names are UTF-8 without control characters (and so without NUL, which the
// stream index uses as a separator).
result<void> check_name(std::string_view what, std::string_view s, size_t max_bytes,
                        bool allow_empty) {
  if (s.empty() && !allow_empty)
    return make_error(errc::invalid_argument, fmt::format("{} is empty", what));
  if (s.size() > max_bytes) {
    return make_error(errc::invalid_argument, fmt::format("{} is {} bytes, over the limit of {}",
                                                          what, s.size(), max_bytes));
  }
  for (char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if (c < 0x20 || c == 0x7F) {
      return make_error(errc::invalid_argument,
                        fmt::format("{} contains a control character", what));
    }
  }
  if (!valid_utf8(s))
    return make_error(errc::invalid_argument, fmt::format("{} is not valid UTF-8", what));
  return {};
}

}  // namespace

bool DedupeWindowFilter::Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value,
                                std::string*, bool*) const {
  auto e = keys::DedupeEntry::decode(value.ToStringView());
  if (!e) return false;  // keep what we do not understand; verification reports it
  return e->position.value() + window_ <= head_.load(std::memory_order_acquire);
}

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Log::~Log() = default;

Log::Impl::~Impl() {
  writer.reset();  // completes queued appends first
  db.reset();
}

namespace {

// The families of the log, with whether each serves point lookups (a Bloom
// filter) and takes memtable insert hints.
struct CoreFamily {
  const char* name;
  bool point_lookups;
  bool insert_hints;
};
constexpr CoreFamily kCoreFamilies[] = {
    {keys::kEventsCf, true, false},       {keys::kStreamIndexCf, false, true},
    {keys::kStreamHeadsCf, true, true},   {keys::kDedupeCf, true, false},
    {keys::kMetaCf, true, false},         {keys::kMerkleCf, true, false},
    {keys::kEntityIndexCf, false, true}};

bool legacy_family(std::string_view name) {
  return name == keys::kLegacyKeysCf || name.rfind(keys::kModelCfPrefix, 0) == 0;
}

result<void> prepare_dir(const DataDir& dir, const LogOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(dir.log_dir() / "CURRENT", ec)) return {};
  if (options.read_only || !options.create_if_missing) {
    return make_error(errc::not_found, fmt::format("no engram log in '{}'", dir.root().string()));
  }
  std::filesystem::create_directories(dir.log_dir(), ec);
  if (ec) {
    return make_error(errc::io_error,
                      fmt::format("cannot create '{}': {}", dir.root().string(), ec.message()));
  }
  return {};
}

result<void> open_database(Log::Impl& impl) {
  const LogOptions& options = impl.options;
  impl.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  RocksDb::Spec spec;
  spec.dir = impl.dir.log_dir();
  spec.mode = !options.read_only                ? RocksDb::Mode::writable
              : options.secondary_dir.empty() ? RocksDb::Mode::read_only
                                              : RocksDb::Mode::secondary;
  spec.secondary_dir = options.secondary_dir;
  spec.db_options = db_options(options.env.get());
  for (const CoreFamily& f : kCoreFamilies) {
    auto cf = family_options(impl.block_cache, f.point_lookups);
    if (std::string_view(f.name) == keys::kDedupeCf) cf.compaction_filter = impl.dedupe_filter.get();
    if (f.insert_hints) {
      cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<UpToNulTransform>();
    }
    spec.families.emplace_back(f.name, std::move(cf));
  }
  // Families of the older layout (read models, keys) are opened to be moved.
  spec.other_options = [cache = impl.block_cache](const std::string&) {
    return family_options(cache, true);
  };
  auto db = RocksDb::open(std::move(spec));
  if (!db) return db.error();
  impl.db = std::move(*db);
  auto need = [&](const char* name) -> result<rocksdb::ColumnFamilyHandle*> {
    rocksdb::ColumnFamilyHandle* h = impl.db->family(name);
    if (h == nullptr) {
      return make_error(errc::corruption, fmt::format("the log has no '{}' family", name));
    }
    return h;
  };
  for (auto [field, name] :
       {std::pair{&impl.events, keys::kEventsCf}, {&impl.stream_index, keys::kStreamIndexCf},
        {&impl.stream_heads, keys::kStreamHeadsCf}, {&impl.dedupe, keys::kDedupeCf},
        {&impl.meta, keys::kMetaCf}, {&impl.merkle, keys::kMerkleCf}}) {
    auto h = need(name);
    if (!h) return h.error();
    *field = *h;
  }
  // Older logs have no entity index; a read-only open of one reads none.
  impl.entity_index = impl.db->family(keys::kEntityIndexCf);
  return {};
}

// Moves what older layouts kept in the log's database (the "keys" family,
// the "model:*" families) into the key store's and the read models'
// databases. Each is copied and made durable there before it is dropped
// here, so a crash in between copies it again at the next open.
result<void> migrate_layout(Log::Impl& impl) {
  std::vector<std::string> legacy;
  for (const std::string& name : impl.db->family_names()) {
    if (legacy_family(name)) legacy.push_back(name);
  }
  if (legacy.empty()) return {};
  if (impl.options.read_only) {
    return make_error(errc::invalid_argument,
                      fmt::format("'{}' holds the layout of an older engram (keys and read models "
                                  "inside the log): open it once with a writable command (engram "
                                  "serve, or engram append) to migrate it",
                                  impl.dir.root().string()));
  }
  rocksdb::DB& db = impl.db->db();
  if (auto* keys = impl.db->family(keys::kLegacyKeysCf)) {
    auto store = RocksKeyStore::open(impl.dir, KeyStoreOptions{false, impl.options.env});
    if (!store) return store.error();
    if (auto r = (*store)->import_records(db, keys); !r) return r;
  }
  std::unique_ptr<ModelDb> models;
  for (const std::string& name : legacy) {
    if (name.rfind(keys::kModelCfPrefix, 0) != 0) continue;
    if (!models) {
      ModelDbOptions mo;
      mo.env = impl.options.env;
      auto m = ModelDb::open(impl.dir, mo);
      if (!m) return m.error();
      models = std::move(*m);
    }
    if (auto r = models->import_store(name.substr(keys::kModelCfPrefix.size()), db,
                                      impl.db->family(name));
        !r) {
      return r;
    }
  }
  for (const std::string& name : legacy) {
    if (auto r = impl.db->drop_family(name); !r) return r;
  }
  // The moved keys' bytes may still be in the log's WAL: a flush of every
  // family retires it.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  for (const std::string& name : impl.db->family_names()) all.push_back(impl.db->family(name));
  if (auto s = db.Flush(fo, all); !s.ok()) return from_status(s, "flushing after the migration");
  logging::write(logging::Level::info, "data dir migrated",
                 {{"dir", impl.dir.root().string()}, {"families_moved", legacy}});
  return {};
}

// Creates the format marker, the log id and the head of a new log.
result<void> initialise(Log::Impl& impl) {
  rocksdb::DB& db = impl.db->db();
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), impl.events));
  it->SeekToFirst();
  if (it->Valid()) return make_error(errc::corruption, "the log has events but no format marker");
  if (!it->status().ok()) return from_status(it->status(), "reading the log");
  if (impl.options.read_only) {
    return make_error(errc::not_found, fmt::format("'{}' holds no initialised engram log",
                                                   impl.dir.root().string()));
  }
  rocksdb::WriteBatch batch;
  const Uuid id = Uuid::v7_now();
  batch.Put(impl.meta, keys::kMetaFormat, keys::kFormatV1);
  batch.Put(impl.meta, keys::kMetaLogId, keys::be64(id.hi) + keys::be64(id.lo));
  batch.Put(impl.meta, keys::kMetaHead, keys::HeadValue{}.encode());
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = db.Write(wo, &batch); !s.ok()) return from_status(s, "initialising the log");
  return {};
}

// The log id, which signed checkpoints name. Logs written before it had a
// name of its own kept it as "node_id"; a writable open renames it (same
// bytes, so their checkpoints still verify).
result<Uuid> load_log_id(Log::Impl& impl) {
  rocksdb::DB& db = impl.db->db();
  std::string bytes;
  rocksdb::Status s = db.Get(rocksdb::ReadOptions(), impl.meta, keys::kMetaLogId, &bytes);
  if (s.IsNotFound()) {
    s = db.Get(rocksdb::ReadOptions(), impl.meta, keys::kLegacyMetaNodeId, &bytes);
    if (s.ok() && !impl.options.read_only) {
      rocksdb::WriteBatch batch;
      batch.Put(impl.meta, keys::kMetaLogId, bytes);
      batch.Delete(impl.meta, keys::kLegacyMetaNodeId);
      rocksdb::WriteOptions wo;
      wo.sync = true;
      if (auto w = db.Write(wo, &batch); !w.ok()) return from_status(w, "renaming the log id");
    }
  }
  if (!s.ok()) return from_status(s, "reading the log id");
  if (bytes.size() != 16) return make_error(errc::corruption, "malformed log id in meta");
  return Uuid{keys::get_be64(bytes.data()), keys::get_be64(bytes.data() + 8)};
}

// The head from meta, checked against the last stored event (they are
// written in one batch, so they must agree). A writable open refuses a log
// where they do not; a read-only open lets verify() name the problem.
// Returns the last event's recorded-at time.
result<int64_t> load_head(Log::Impl& impl) {
  rocksdb::DB& db = impl.db->db();
  std::string format;
  rocksdb::Status fs = db.Get(rocksdb::ReadOptions(), impl.meta, keys::kMetaFormat, &format);
  if (fs.IsNotFound()) {
    if (auto r = initialise(impl); !r) return r.error();
    format = std::string(keys::kFormatV1);
  } else if (!fs.ok()) {
    return from_status(fs, "reading the format marker");
  }
  if (format != keys::kFormatV1) {
    return make_error(errc::corruption, fmt::format("unsupported log format '{}'", format));
  }
  std::string head_bytes;
  if (auto hs = db.Get(rocksdb::ReadOptions(), impl.meta, keys::kMetaHead, &head_bytes); !hs.ok()) {
    return from_status(hs, "reading the head");
  }
  auto head = keys::HeadValue::decode(head_bytes);
  if (!head) return make_error(errc::corruption, "malformed head in meta");

  int64_t last_recorded_at_ns = 0;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), impl.events));
  it->SeekToLast();
  if (!it->status().ok()) return from_status(it->status(), "reading the last event");
  std::string problem;
  if (!it->Valid()) {
    if (head->position.value() != 0) {
      problem = fmt::format("meta head is {} but the log has no events", head->position.value());
    }
  } else {
    auto last = keys::parse_be64(it->key().ToStringView());
    auto ev = RecordedEvent::decode(it->value().ToString());
    if (!last || *last != head->position.value()) {
      problem = fmt::format("meta head is {} but the last stored event is at {}",
                            head->position.value(), last ? *last : 0);
    } else if (!ev) {
      problem = fmt::format("the last event (position {}) does not verify", *last);
    } else if (ev->hash() != head->hash) {
      problem = fmt::format("the last event's hash differs from meta's head hash");
    } else {
      last_recorded_at_ns = ev->recorded_at_ns();
    }
  }
  if (!problem.empty() && !impl.options.read_only) return make_error(errc::corruption, problem);
  impl.head->publish(Head{head->position, head->hash});
  return last_recorded_at_ns;
}

// Brings up the writer: the Merkle tree's right edge first (a log written
// before the tree existed, or one that lost nodes, gets it rebuilt here,
// once), then the thread.
result<void> start_writer(Log::Impl& impl, int64_t last_recorded_at_ns) {
  const uint64_t size = impl.head->position().value();
  auto tree = load_frontier(impl, size);
  if (!tree && tree.error().code == errc::corruption) tree = backfill_tree(impl, size);
  if (!tree) return tree.error();
  WriterDeps deps;
  deps.db = &impl.db->db();
  deps.events = impl.events;
  deps.stream_index = impl.stream_index;
  deps.stream_heads = impl.stream_heads;
  deps.dedupe = impl.dedupe;
  deps.meta = impl.meta;
  deps.merkle = impl.merkle;
  deps.entity_index = impl.entity_index;
  deps.options = &impl.options;
  deps.clock = impl.clock.get();
  deps.head = impl.head.get();
  impl.writer = std::make_unique<GroupCommitWriter>(deps, last_recorded_at_ns, std::move(*tree));
  return {};
}

}  // namespace

result<std::unique_ptr<Log>> Log::open(const std::filesystem::path& dir, const LogOptions& options) {
  return open(DataDir(dir), options);
}

result<std::unique_ptr<Log>> Log::open(const DataDir& dir, const LogOptions& options) {
  if (auto v = validate(options); !v) return v.error();
  if (!options.secondary_dir.empty() && !options.read_only) {
    return make_error(errc::invalid_argument, "secondary_dir needs read_only");
  }
  if (auto r = prepare_dir(dir, options); !r) return r.error();
  auto impl = std::make_unique<Impl>(dir);
  impl->options = options;
  impl->clock = options.clock ? options.clock : system_clock();
  impl->head = std::make_unique<HeadState>(Head{});
  impl->dedupe_filter = std::make_unique<DedupeWindowFilter>(impl->head->position_atomic(),
                                                             options.dedupe_window_events);
  if (auto r = open_database(*impl); !r) return r.error();
  if (auto r = migrate_layout(*impl); !r) return r.error();
  auto last_recorded_at_ns = load_head(*impl);
  if (!last_recorded_at_ns) return last_recorded_at_ns.error();
  auto id = load_log_id(*impl);
  if (!id) return id.error();
  impl->log_id = *id;
  if (!options.read_only) {
    if (auto r = start_writer(*impl, *last_recorded_at_ns); !r) return r.error();
  }
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

result<Head> Log::catch_up() {

  if (impl_->options.secondary_dir.empty()) {
    return make_error(errc::invalid_argument, "catch_up needs a secondary open");
  }
  rocksdb::DB& db = impl_->db->db();
  if (auto s = db.TryCatchUpWithPrimary(); !s.ok()) {
    return from_status(s, "catching up with the writer");
  }
  std::string head_bytes;
  if (auto hs = db.Get(rocksdb::ReadOptions(), impl_->meta, keys::kMetaHead, &head_bytes);
      !hs.ok()) {
    return from_status(hs, "reading the head");
  }
  auto head = keys::HeadValue::decode(head_bytes);
  if (!head) return make_error(errc::corruption, "malformed head in meta");
  impl_->head->publish(Head{head->position, head->hash});
  return impl_->head->get();
}

result<AppendResult> Log::append(std::string_view stream, ExpectedVersion expected,
                                 std::span<const EventData> events, const AppendContext& context) {
  expect_may_block("Log::append (waits for an fsync)");
  AppendRequest req;
  if (auto r = prepare(stream, expected, events, context, req); !r) return r.error();
  return impl_->writer->submit(req);
}

result<void> Log::append_async(std::string_view stream, ExpectedVersion expected,
                               std::span<const EventData> events, const AppendContext& context,
                               AppendCallback done) {
  ENGRAM_ASSERT(done != nullptr);
  auto req = std::make_unique<AppendRequest>();
  req->owned_stream = std::string(stream);
  if (auto r = prepare(req->owned_stream, expected, events, context, *req); !r) return r;
  req->on_done = std::move(done);
  return impl_->writer->submit_async(std::move(req));
}

result<void> Log::prepare(std::string_view stream, ExpectedVersion expected,
                          std::span<const EventData> events, const AppendContext& context,
                          AppendRequest& req) const {
  const LogOptions& o = impl_->options;
  if (!impl_->writer) return make_error(errc::read_only, "the log was opened read-only");
  if (auto r = check_name("stream name", stream, o.max_stream_name_bytes, false); !r)
    return r.error();
  if (auto r = check_name("actor", context.actor, o.max_actor_bytes, true); !r) return r.error();
  if (events.empty())
    return make_error(errc::invalid_argument, "an append needs at least one event");
  if (events.size() > o.max_events_per_append) {
    return make_error(errc::invalid_argument,
                      fmt::format("{} events in one append, over the limit of {}", events.size(),
                                  o.max_events_per_append));
  }

  // Encoding and hashing happen here, on the caller's thread, so the single
  // writer thread only seals and batches.
  req.stream = stream;
  req.expected = expected;
  req.events.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const EventData& e = events[i];
    if (auto r =
            check_name(fmt::format("events[{}].type", i), e.type, o.max_event_type_bytes, false);
        !r) {
      return r.error();
    }
    if (auto r = check_name(fmt::format("events[{}].entity", i), e.entity, o.max_entity_bytes,
                            true);
        !r) {
      return r.error();
    }
    const size_t bytes = e.payload.size() + e.metadata.size();
    if (bytes > o.max_event_bytes) {
      return make_error(
          errc::invalid_argument,
          fmt::format("events[{}] is {} bytes, over the limit of {}", i, bytes, o.max_event_bytes));
    }
    req.bytes += bytes;
    PreparedEvent p;
    p.id = e.id.is_nil() ? Uuid::v7(impl_->clock->now_ns() / 1'000'000) : e.id;
    for (const PreparedEvent& earlier : req.events) {
      if (earlier.id == p.id) {
        return make_error(errc::invalid_argument,
                          fmt::format("event id {} appears twice in one append", p.id.to_string()));
      }
    }
    envelope::Content c;
    c.stream = stream;
    c.type = e.type;
    c.schema_version = e.schema_version;
    c.id = p.id;
    c.command_id = context.command_id;
    c.causation_id = context.causation_id;
    c.correlation_id = context.correlation_id;
    c.actor = context.actor;
    c.payload_format = e.payload_format;
    c.payload = {reinterpret_cast<const uint8_t*>(e.payload.data()), e.payload.size()};
    c.metadata = {reinterpret_cast<const uint8_t*>(e.metadata.data()), e.metadata.size()};
    p.entity = e.entity;
    p.digest = envelope::content_digest(c);
    p.envelope = envelope::build(c);
    req.events.push_back(std::move(p));
  }
  if (req.bytes > o.max_append_bytes) {
    return make_error(
        errc::invalid_argument,
        fmt::format("the append is {} bytes, over the limit of {}", req.bytes, o.max_append_bytes));
  }
  return {};
}

namespace {

// Whether the stream was never written, not even by a group still syncing:
// it then has no head. One point lookup (Bloom-filtered on disk) instead of
// an iterator over the stream index, for the common read of a new stream.
result<bool> never_written(const Log::Impl& impl, std::string_view stream) {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      impl.db->db().Get(rocksdb::ReadOptions(), impl.stream_heads,
                        rocksdb::Slice(stream.data(), stream.size()), &value);
  if (s.IsNotFound()) return true;
  if (!s.ok()) return from_status(s, "reading the stream heads");
  return false;
}

}  // namespace

result<std::vector<RecordedEvent>> Log::read_stream(std::string_view stream, StreamVersion from,
                                                    size_t max_count, Direction direction) const {
  if (auto r = check_name("stream name", stream, impl_->options.max_stream_name_bytes, false); !r) {
    return r.error();
  }
  auto absent = never_written(*impl_, stream);
  if (!absent) return absent.error();
  if (*absent) return std::vector<RecordedEvent>();
  max_count = std::min(max_count, impl_->options.max_read_count);
  const uint64_t head = impl_->head->position().value();
  const std::string prefix = keys::stream_index_prefix(stream);

  std::vector<uint64_t> positions;
  std::vector<uint64_t> versions;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        impl_->db->db().NewIterator(rocksdb::ReadOptions(), impl_->stream_index));
    auto in_stream = [&] { return it->Valid() && it->key().starts_with(prefix); };
    if (direction == Direction::forward) {
      it->Seek(keys::stream_index_key(stream, std::max(from, StreamVersion(1))));
    } else {
      it->SeekForPrev(keys::stream_index_key(stream, from));
    }
    while (positions.size() < max_count && in_stream()) {
      auto entry = keys::IndexEntry::decode(it->key().ToStringView().substr(prefix.size()),
                                            it->value().ToStringView());
      if (!entry) return make_error(errc::corruption, "malformed stream index entry");
      if (entry->position.value() <= head) {  // newer entries are not yet acknowledged
        positions.push_back(entry->position.value());
        versions.push_back(entry->version.value());
      } else if (direction == Direction::forward) {
        break;
      }
      if (direction == Direction::forward) {
        it->Next();
      } else {
        it->Prev();
      }
    }
    if (!it->status().ok()) return from_status(it->status(), "reading the stream index");
  }

  std::vector<std::string> key_bytes;
  key_bytes.reserve(positions.size());
  for (uint64_t p : positions) key_bytes.push_back(keys::be64(p));
  std::vector<rocksdb::Slice> keys_to_get(key_bytes.begin(), key_bytes.end());
  std::vector<rocksdb::PinnableSlice> values(keys_to_get.size());
  std::vector<rocksdb::Status> statuses(keys_to_get.size());
  impl_->db->db().MultiGet(rocksdb::ReadOptions(), impl_->events, keys_to_get.size(), keys_to_get.data(),
                      values.data(), statuses.data());

  std::vector<RecordedEvent> out;
  out.reserve(positions.size());
  for (size_t i = 0; i < positions.size(); ++i) {
    if (!statuses[i].ok()) {
      return from_status(statuses[i],
                         fmt::format("reading position {} of stream '{}'", positions[i], stream));
    }
    auto ev = RecordedEvent::decode(values[i].ToString());
    if (!ev)
      return make_error(errc::corruption,
                        fmt::format("position {}: {}", positions[i], ev.error().message));
    if (ev->position().value() != positions[i] || ev->stream() != stream ||
        ev->version().value() != versions[i]) {
      return make_error(
          errc::corruption,
          fmt::format("stream index entry {}@{} points at position {}, which holds {}@{}", stream,
                      versions[i], positions[i], ev->stream(), ev->version().value()));
    }
    out.push_back(std::move(*ev));
  }
  return out;
}

result<std::vector<RecordedEvent>> Log::read_all(Position from, size_t max_count) const {
  max_count = std::min(max_count, impl_->options.max_read_count);
  from = std::max(from, Position(1));
  const uint64_t head = impl_->head->position().value();
  std::vector<RecordedEvent> out;
  if (from.value() > head) return out;

  const std::string upper = keys::be64(head + 1);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->db().NewIterator(ro, impl_->events));
  uint64_t expected = from.value();
  for (it->Seek(keys::position_key(from)); it->Valid() && out.size() < max_count; it->Next()) {
    auto pos = keys::parse_be64(it->key().ToStringView());
    if (!pos) return make_error(errc::corruption, "malformed event key");
    if (*pos != expected) {
      return make_error(errc::corruption,
                        fmt::format("position {} is missing from the log", expected));
    }
    auto ev = RecordedEvent::decode(it->value().ToString());
    if (!ev)
      return make_error(errc::corruption, fmt::format("position {}: {}", *pos, ev.error().message));
    if (ev->position().value() != *pos) {
      return make_error(errc::corruption, fmt::format("the event stored at {} says position {}",
                                                      *pos, ev->position().value()));
    }
    out.push_back(std::move(*ev));
    ++expected;
  }
  if (!it->status().ok()) return from_status(it->status(), "reading the log");
  if (out.size() < max_count && expected <= head) {
    return make_error(errc::corruption,
                      fmt::format("position {} is missing from the log", expected));
  }
  return out;
}

result<StreamVersion> Log::stream_version(std::string_view stream) const {
  if (auto r = check_name("stream name", stream, impl_->options.max_stream_name_bytes, false); !r) {
    return r.error();
  }
  auto absent = never_written(*impl_, stream);
  if (!absent) return absent.error();
  if (*absent) return StreamVersion(0);
  // From the stream index rather than stream_heads: the index lets us skip
  // entries of groups that are written but not yet acknowledged.
  const uint64_t head = impl_->head->position().value();
  const std::string prefix = keys::stream_index_prefix(stream);
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->db().NewIterator(rocksdb::ReadOptions(), impl_->stream_index));
  for (it->SeekForPrev(keys::stream_index_key(stream, StreamVersion(UINT64_MAX)));
       it->Valid() && it->key().starts_with(prefix); it->Prev()) {
    auto entry = keys::IndexEntry::decode(it->key().ToStringView().substr(prefix.size()),
                                          it->value().ToStringView());
    if (!entry) return make_error(errc::corruption, "malformed stream index entry");
    if (entry->position.value() <= head) return entry->version;
  }
  if (!it->status().ok()) return from_status(it->status(), "reading the stream index");
  return StreamVersion(0);
}

Head Log::head() const {
  return impl_->head->get();
}

bool Log::wait_for(Position position, std::chrono::milliseconds timeout) const {
  expect_may_block("Log::wait_for");
  return impl_->head->wait_for(position, timeout);
}

std::unique_ptr<Subscription> Log::subscribe(Position after) const {
  return std::make_unique<Subscription>(*this, after);
}

Health Log::health() const {
  if (!impl_->writer) return Health{false, "opened read-only"};
  return impl_->writer->health();
}

LogStats Log::stats() const {
  LogStats s;
  if (impl_->writer) impl_->writer->add_stats(s);
  return s;
}

const DataDir& Log::dir() const {
  return impl_->dir;
}

result<std::optional<Position>> Log::latest_entity_event(std::string_view stream,
                                                         std::string_view entity) const {
  const LogOptions& o = impl_->options;
  if (auto r = check_name("stream name", stream, o.max_stream_name_bytes, false); !r)
    return r.error();
  if (auto r = check_name("entity", entity, o.max_entity_bytes, false); !r) return r.error();
  // Entries of written but unacknowledged groups sort after the head's.
  if (impl_->entity_index == nullptr) return std::optional<Position>();  // an older log, read-only
  const Position head = impl_->head->position();
  const std::string prefix = keys::entity_prefix(stream, entity);
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->db().NewIterator(rocksdb::ReadOptions(), impl_->entity_index));
  it->SeekForPrev(keys::entity_key(stream, entity, head));
  if (!it->status().ok()) return from_status(it->status(), "reading the entity index");
  if (!it->Valid() || !it->key().starts_with(prefix)) return std::optional<Position>();
  auto p = keys::parse_be64(it->key().ToStringView().substr(prefix.size()));
  if (!p || *p == 0 || *p > head.value())
    return make_error(errc::corruption, "malformed entity index entry");
  return std::optional<Position>(Position(*p));
}

result<std::string> Log::entity_index_name() const {
  std::string name;
  const rocksdb::Status s =
      impl_->db->db().Get(rocksdb::ReadOptions(), impl_->meta, keys::kMetaEntityIndex, &name);
  if (s.IsNotFound()) return std::string();
  if (!s.ok()) return from_status(s, "reading the entity index's name");
  return name;
}

result<void> Log::rebuild_entity_index(std::string_view name, const EntityExtractor& extract) {
  if (!impl_->writer) return make_error(errc::read_only, "the log was opened read-only");
  if (name.empty() || name.size() > 64)
    return make_error(errc::invalid_argument, "an entity index name is 1..64 bytes");
  // Everything in the family sorts before 0xFF: stream names are UTF-8.
  const std::string end(1, '\xff');
  rocksdb::WriteOptions wo;
  if (auto s = impl_->db->db().DeleteRange(wo, impl_->entity_index, "", end); !s.ok())
    return from_status(s, "clearing the entity index");
  const Position head = impl_->head->position();
  constexpr size_t kPageEvents = 10'000;
  Position next(1);
  while (next <= head) {
    auto page = read_all(next, kPageEvents);
    if (!page) return page.error();
    if (page->empty()) break;
    rocksdb::WriteBatch batch;
    for (const RecordedEvent& e : *page) {
      const std::string entity = extract(e);
      if (entity.empty()) continue;
      if (auto r = check_name("entity", entity, impl_->options.max_entity_bytes, false); !r)
        return r.error();
      batch.Put(impl_->entity_index, keys::entity_key(e.stream(), entity, e.position()),
                keys::be64(e.version().value()));
    }
    if (auto s = impl_->db->db().Write(wo, &batch); !s.ok())
      return from_status(s, "writing the entity index");
    next = page->back().position().next();
  }
  wo.sync = true;
  if (auto s = impl_->db->db().Put(wo, impl_->meta, keys::kMetaEntityIndex,
                              rocksdb::Slice(name.data(), name.size()));
      !s.ok()) {
    return from_status(s, "recording the entity index's name");
  }
  return {};
}

result<std::optional<RecordedEvent>> Log::find_event(const Uuid& id) const {
  std::string value;
  const rocksdb::Status s =
      impl_->db->db().Get(rocksdb::ReadOptions(), impl_->dedupe, keys::dedupe_key(id.hi, id.lo), &value);
  if (s.IsNotFound()) return std::optional<RecordedEvent>();
  if (!s.ok()) return from_status(s, "reading the dedupe index");
  auto entry = keys::DedupeEntry::decode(value);
  if (!entry) return make_error(errc::corruption, "malformed dedupe entry");
  const uint64_t head = impl_->head->get().position.value();
  // The same window rule as appends; unacknowledged events are not visible.
  if (entry->position.value() + impl_->options.dedupe_window_events <= head ||
      entry->position.value() > head) {
    return std::optional<RecordedEvent>();
  }
  auto events = read_all(entry->position, 1);
  if (!events) return events.error();
  if (events->empty() || events->front().id() != id) {
    return make_error(errc::corruption, "the dedupe index points at another event");
  }
  return std::optional<RecordedEvent>(std::move(events->front()));
}

result<std::vector<RecordedEvent>> Subscription::next(size_t max_count,
                                                      std::chrono::milliseconds timeout) {
  if (log_.head().position <= last_ && !log_.wait_for(last_.next(), timeout)) {
    return std::vector<RecordedEvent>{};
  }
  auto events = log_.read_all(last_.next(), max_count);
  if (events && !events->empty()) last_ = events->back().position();
  return events;
}

}  // namespace engram::core
