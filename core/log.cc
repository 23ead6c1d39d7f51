#include "core/log.h"

#include <fmt/format.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <cstring>

#include "core/envelope.h"
#include "core/keys.h"
#include "core/log_impl.h"
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

rocksdb::ColumnFamilyOptions family_options(const std::shared_ptr<rocksdb::Cache>& cache,
                                            bool point_lookups) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.block_size = 16 << 10;
  if (point_lookups) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kLZ4Compression;
  cf.bottommost_compression = rocksdb::kZSTD;
  cf.write_buffer_size = 32 << 20;
  return cf;
}

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

Log::Impl::~Impl() {
  writer.reset();  // completes queued appends first
  if (db) {
    for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
    (void)db->Close();
  }
}

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Log::~Log() = default;

result<std::unique_ptr<Log>> Log::open(const std::filesystem::path& dir,
                                       const LogOptions& options) {
  if (auto v = validate(options); !v) return v.error();
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  impl->clock = options.clock ? options.clock : system_clock();

  std::error_code ec;
  if (!std::filesystem::exists(dir / "CURRENT", ec)) {
    if (options.read_only || !options.create_if_missing) {
      return make_error(errc::not_found, fmt::format("no engram log in '{}'", dir.string()));
    }
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return make_error(errc::io_error,
                        fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
    }
  }

  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.max_background_jobs = 2;
  dbo.bytes_per_sync = 1 << 20;
  dbo.keep_log_file_num = 4;
  dbo.max_total_wal_size = 256 << 20;
  dbo.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  if (options.env) dbo.env = options.env.get();

  // RocksDB must open every family that exists, including ones added by
  // other modules (read models); unknown ones get default options.
  std::vector<std::string> existing;
  (void)rocksdb::DB::ListColumnFamilies(dbo, dir.string(), &existing);
  const std::vector<std::pair<const char*, bool>> core_families = {
      {keys::kEventsCf, true}, {keys::kStreamIndexCf, false}, {keys::kStreamHeadsCf, true},
      {keys::kDedupeCf, true}, {keys::kMetaCf, true},         {keys::kKeysCf, true},
      {keys::kMerkleCf, true},  {keys::kEntityIndexCf, false}};

  impl->head = std::make_unique<HeadState>(Head{});
  impl->dedupe_filter = std::make_unique<DedupeWindowFilter>(impl->head->position_atomic(),
                                                             options.dedupe_window_events);

  const auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  impl->block_cache = cache;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (const auto& [name, point] : core_families) {
    auto cf = family_options(cache, point);
    if (std::string_view(name) == keys::kDedupeCf) {
      cf.compaction_filter = impl->dedupe_filter.get();
    }
    if (std::string_view(name) == keys::kStreamIndexCf ||
        std::string_view(name) == keys::kEntityIndexCf ||
        std::string_view(name) == keys::kStreamHeadsCf) {
      cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<UpToNulTransform>();
    }
    descriptors.emplace_back(name, cf);
  }
  for (const auto& name : existing) {
    const bool known = std::any_of(descriptors.begin(), descriptors.end(),
                                   [&](const auto& d) { return d.name == name; });
    if (known) continue;
    descriptors.emplace_back(name, name.rfind(keys::kModelCfPrefix, 0) == 0
                                       ? family_options(cache, true)
                                       : rocksdb::ColumnFamilyOptions());
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (!options.secondary_dir.empty()) {
    if (!options.read_only) {
      return make_error(errc::invalid_argument, "secondary_dir needs read_only");
    }
    std::filesystem::create_directories(options.secondary_dir, ec);
    if (ec) {
      return make_error(errc::io_error, fmt::format("cannot create '{}': {}",
                                                    options.secondary_dir.string(), ec.message()));
    }
    dbo.max_open_files = -1;  // a secondary must keep every file open
    s = rocksdb::DB::OpenAsSecondary(dbo, dir.string(), options.secondary_dir.string(), descriptors,
                                     &impl->handles, &raw);
  } else if (options.read_only) {
    s = rocksdb::DB::OpenForReadOnly(dbo, dir.string(), descriptors, &impl->handles, &raw);
  } else {
    s = rocksdb::DB::Open(dbo, dir.string(), descriptors, &impl->handles, &raw);
  }
  if (!s.ok()) {
    Error e = from_status(s, fmt::format("opening '{}'", dir.string()));
    if (e.code == errc::locked)
      e.message = fmt::format("'{}' is locked by another process", dir.string());
    return e;
  }
  impl->db.reset(raw);
  impl->events = impl->handles[1];
  impl->stream_index = impl->handles[2];
  impl->stream_heads = impl->handles[3];
  impl->dedupe = impl->handles[4];
  impl->meta = impl->handles[5];
  impl->merkle = impl->handles[7];
  impl->entity_index = impl->handles[8];
  for (size_t i = 0; i < descriptors.size(); ++i) {
    const std::string& name = descriptors[i].name;
    if (name.rfind(keys::kModelCfPrefix, 0) != 0) continue;
    const std::string model = name.substr(keys::kModelCfPrefix.size());
    auto store =
        std::make_unique<ModelStore>(impl->db.get(), impl->handles[i], model, options.read_only);
    if (auto c = store->load_checkpoint(); !c) return c.error();
    impl->models.emplace(model, std::move(store));
  }
  impl->key_store = std::make_unique<RocksKeyStore>(impl->db.get(), impl->handles[6], impl->handles,
                                                    options.read_only);

  // Format marker and head.
  rocksdb::ReadOptions ro;
  std::string format;
  rocksdb::Status fs = impl->db->Get(ro, impl->meta, keys::kMetaFormat, &format);
  if (fs.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(ro, impl->events));
    it->SeekToFirst();
    if (it->Valid()) return make_error(errc::corruption, "the log has events but no format marker");
    if (options.read_only) {
      return make_error(errc::not_found,
                        fmt::format("'{}' holds no initialised engram log", dir.string()));
    }
    rocksdb::WriteBatch batch;
    const Uuid node = Uuid::v7_now();
    batch.Put(impl->meta, keys::kMetaFormat, keys::kFormatV1);
    batch.Put(impl->meta, keys::kMetaNodeId, keys::be64(node.hi) + keys::be64(node.lo));
    batch.Put(impl->meta, keys::kMetaHead, keys::HeadValue{}.encode());
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (auto ws = impl->db->Write(wo, &batch); !ws.ok())
      return from_status(ws, "initialising the log");
    format = std::string(keys::kFormatV1);
  } else if (!fs.ok()) {
    return from_status(fs, "reading the format marker");
  }
  if (format != keys::kFormatV1) {
    return make_error(errc::corruption, fmt::format("unsupported log format '{}'", format));
  }

  std::string head_bytes;
  if (auto hs = impl->db->Get(ro, impl->meta, keys::kMetaHead, &head_bytes); !hs.ok()) {
    return from_status(hs, "reading the head");
  }
  auto head = keys::HeadValue::decode(head_bytes);
  if (!head) return make_error(errc::corruption, "malformed head in meta");

  // The head and the events are written in one batch, so they must agree. A
  // writable open refuses a log where they do not; a read-only open lets
  // verify() name the problem.
  int64_t last_recorded_at_ns = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(ro, impl->events));
    it->SeekToLast();
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
    if (!problem.empty() && !options.read_only) return make_error(errc::corruption, problem);
  }
  impl->head->publish(Head{head->position, head->hash});

  std::string node_id;
  if (auto ns = impl->db->Get(ro, impl->meta, keys::kMetaNodeId, &node_id); !ns.ok()) {
    return from_status(ns, "reading the node id");
  }
  if (node_id.size() != 16) return make_error(errc::corruption, "malformed node id in meta");
  impl->log_id = Uuid{keys::get_be64(node_id.data()), keys::get_be64(node_id.data() + 8)};

  if (!options.read_only) {
    // A log written before the tree existed (or one that lost nodes) gets
    // its tree rebuilt here, once: the writer extends it from the head.
    auto tree = load_frontier(*impl, head->position.value());
    if (!tree && tree.error().code == errc::corruption) {
      tree = backfill_tree(*impl, head->position.value());
    }
    if (!tree) return tree.error();
    WriterDeps deps;
    deps.db = impl->db.get();
    deps.events = impl->events;
    deps.stream_index = impl->stream_index;
    deps.stream_heads = impl->stream_heads;
    deps.dedupe = impl->dedupe;
    deps.meta = impl->meta;
    deps.merkle = impl->merkle;
    deps.entity_index = impl->entity_index;
    deps.options = &impl->options;
    deps.clock = impl->clock.get();
    deps.head = impl->head.get();
    impl->writer = std::make_unique<GroupCommitWriter>(deps, last_recorded_at_ns, std::move(*tree));
  }
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

result<Head> Log::catch_up() {
  if (impl_->options.secondary_dir.empty()) {
    return make_error(errc::invalid_argument, "catch_up needs a secondary open");
  }
  if (auto s = impl_->db->TryCatchUpWithPrimary(); !s.ok()) {
    return from_status(s, "catching up with the writer");
  }
  std::string head_bytes;
  if (auto hs = impl_->db->Get(rocksdb::ReadOptions(), impl_->meta, keys::kMetaHead, &head_bytes);
      !hs.ok()) {
    return from_status(hs, "reading the head");
  }
  auto head = keys::HeadValue::decode(head_bytes);
  if (!head) return make_error(errc::corruption, "malformed head in meta");
  impl_->head->publish(Head{head->position, head->hash});
  std::lock_guard lock(impl_->models_mu);
  for (auto& [name, store] : impl_->models) {
    if (auto c = store->load_checkpoint(); !c) return c.error();
  }
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

result<std::vector<RecordedEvent>> Log::read_stream(std::string_view stream, StreamVersion from,
                                                    size_t max_count, Direction direction) const {
  if (auto r = check_name("stream name", stream, impl_->options.max_stream_name_bytes, false); !r) {
    return r.error();
  }
  max_count = std::min(max_count, impl_->options.max_read_count);
  const uint64_t head = impl_->head->position().value();
  const std::string prefix = keys::stream_index_prefix(stream);

  std::vector<uint64_t> positions;
  std::vector<uint64_t> versions;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->stream_index));
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
  impl_->db->MultiGet(rocksdb::ReadOptions(), impl_->events, keys_to_get.size(), keys_to_get.data(),
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
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
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
  // From the stream index rather than stream_heads: the index lets us skip
  // entries of groups that are written but not yet acknowledged.
  const uint64_t head = impl_->head->position().value();
  const std::string prefix = keys::stream_index_prefix(stream);
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->stream_index));
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

const std::filesystem::path& Log::dir() const {
  return impl_->dir;
}

KeyStore& Log::keys() {
  return *impl_->key_store;
}

result<ModelStore*> Log::model_store(std::string_view name) {
  const bool valid = !name.empty() && name.size() <= kMaxModelNameBytes &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                              c == '.' || c == '-' || c == '@';
                     });
  if (!valid) {
    return make_error(errc::invalid_argument,
                      fmt::format("model names are 1..{} of [a-z0-9_.@-]", kMaxModelNameBytes));
  }
  std::lock_guard lock(impl_->models_mu);
  if (auto it = impl_->models.find(name); it != impl_->models.end()) return it->second.get();
  if (!impl_->writer) return make_error(errc::read_only, "the log is open read-only");
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  const std::string family = std::string(keys::kModelCfPrefix) + std::string(name);
  if (auto s =
          impl_->db->CreateColumnFamily(family_options(impl_->block_cache, true), family, &handle);
      !s.ok()) {
    return from_status(s, fmt::format("creating read model '{}'", name));
  }
  impl_->handles.push_back(handle);
  auto store = std::make_unique<ModelStore>(impl_->db.get(), handle, std::string(name), false);
  ModelStore* raw = store.get();
  impl_->models.emplace(std::string(name), std::move(store));
  return raw;
}

result<void> Log::drop_model_store(std::string_view name) {
  std::lock_guard lock(impl_->models_mu);
  auto it = impl_->models.find(name);
  if (it == impl_->models.end()) {
    return make_error(errc::not_found, fmt::format("no read model '{}'", name));
  }
  if (!impl_->writer) return make_error(errc::read_only, "the log is open read-only");
  if (auto s = impl_->db->DropColumnFamily(it->second->family()); !s.ok()) {
    return from_status(s, fmt::format("dropping read model '{}'", name));
  }
  std::error_code ec;
  std::filesystem::remove_all(model_dir(name), ec);
  if (ec) {
    return make_error(errc::io_error,
                      fmt::format("removing {}: {}", model_dir(name).string(), ec.message()));
  }
  // The handle stays open (in `handles`) until the log closes: RocksDB keeps
  // a dropped family readable through it, for readers still holding it.
  impl_->retired_models.push_back(std::move(it->second));
  impl_->models.erase(it);
  return {};
}

std::filesystem::path Log::model_dir(std::string_view name) const {
  return impl_->dir / "models" / std::string(name);
}

std::vector<std::string> Log::model_stores() const {
  std::lock_guard lock(impl_->models_mu);
  std::vector<std::string> names;
  for (const auto& [name, store] : impl_->models) names.push_back(name);
  return names;
}

result<std::optional<Position>> Log::latest_entity_event(std::string_view stream,
                                                         std::string_view entity) const {
  const LogOptions& o = impl_->options;
  if (auto r = check_name("stream name", stream, o.max_stream_name_bytes, false); !r)
    return r.error();
  if (auto r = check_name("entity", entity, o.max_entity_bytes, false); !r) return r.error();
  // Entries of written but unacknowledged groups sort after the head's.
  const Position head = impl_->head->position();
  const std::string prefix = keys::entity_prefix(stream, entity);
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->entity_index));
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
      impl_->db->Get(rocksdb::ReadOptions(), impl_->meta, keys::kMetaEntityIndex, &name);
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
  if (auto s = impl_->db->DeleteRange(wo, impl_->entity_index, "", end); !s.ok())
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
    if (auto s = impl_->db->Write(wo, &batch); !s.ok())
      return from_status(s, "writing the entity index");
    next = page->back().position().next();
  }
  wo.sync = true;
  if (auto s = impl_->db->Put(wo, impl_->meta, keys::kMetaEntityIndex,
                              rocksdb::Slice(name.data(), name.size()));
      !s.ok()) {
    return from_status(s, "recording the entity index's name");
  }
  return {};
}

result<std::optional<RecordedEvent>> Log::find_event(const Uuid& id) const {
  std::string value;
  const rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), impl_->dedupe, keys::dedupe_key(id.hi, id.lo), &value);
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
