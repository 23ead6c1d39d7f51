#include "projections/knowledge.h"

#include <fmt/format.h>
#include <xapian.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <system_error>
#include <unordered_map>

#include "core/assert.h"
#include "core/sha256.h"
#include "core/thread_role.h"
#include "projections/decode.h"
#include "projections/vector_index.h"
#include "schemas/domain/knowledge_generated.h"
#include "schemas/payload.h"

namespace engram::projections {
namespace {

using nlohmann::json;
namespace d = engram::domain;

constexpr std::string_view kItemPrefix = "item/";
constexpr std::string_view kVecPrefix = "vec/";
constexpr std::string_view kEmbedderKey = "meta/embedder";
constexpr const char* kPositionMetadata = "position";

// Xapian refuses terms longer than this (bytes).
constexpr size_t kMaxTermBytes = 245;
// Title words count twice in the unprefixed terms: a word in the title says
// more about an item than the same word in its body.
constexpr Xapian::termcount kTitleWdf = 2;
// Idle read-only Xapian databases kept for queries; more are opened (and
// then closed) under bursts.
constexpr size_t kMaxIdleReaders = 8;
// A reader whose revision the writer overwrote meanwhile
// (DatabaseModifiedError) reopens and retries this many times.
constexpr int kModifiedRetries = 3;

core::Error xapian_error(const Xapian::Error& e, std::string_view what) {
  // Xapian::Error has no virtual functions: its type is a name.
  const bool corrupt = std::string_view(e.get_type()) == "DatabaseCorruptError";
  return core::make_error(corrupt ? core::errc::corruption : core::errc::io_error,
                          fmt::format("knowledge index: {}: {}", what, e.get_description()));
}

json strs(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  json out = json::array();
  if (v) {
    for (const auto* s : *v) out.push_back(s->str());
  }
  return out;
}

std::string item_key(std::string_view id) {
  return std::string(kItemPrefix) + std::string(id);
}
std::string vec_key(std::string_view id) {
  return std::string(kVecPrefix) + std::string(id);
}

// float32, little-endian, whatever the host's byte order.
std::string encode_vector(std::span<const float> v) {
  std::string out(v.size() * 4, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(v[i]);
    for (size_t b = 0; b < 4; ++b) out[i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xffu);
  }
  return out;
}

std::optional<std::vector<float>> decode_vector(std::string_view bytes, size_t dimensions) {
  if (bytes.size() != dimensions * 4) return std::nullopt;
  std::vector<float> out(dimensions);
  for (size_t i = 0; i < dimensions; ++i) {
    uint32_t bits = 0;
    for (size_t b = 0; b < 4; ++b) {
      bits |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i * 4 + b])) << (8 * b);
    }
    out[i] = std::bit_cast<float>(bits);
  }
  return out;
}

// Scales `v` to norm 1 for the inner-product index (client vectors need
// not be normalised). False for a zero (or non-finite) vector, which has no
// direction and is left out of the index. In memory only: the store keeps
// the vector as it came.
bool normalise(std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * static_cast<double>(x);
  if (!(sum > 0) || !std::isfinite(sum)) return false;
  const double norm = std::sqrt(sum);
  for (float& x : v) x = static_cast<float>(static_cast<double>(x) / norm);
  return true;
}

// Filter values match case-insensitively: Xapian's Unicode lower case,
// which is the same on every machine.
std::string fold(std::string_view v) {
  return Xapian::Unicode::tolower(std::string(v));
}

std::string filter_term(std::string_view prefix, std::string_view value) {
  std::string folded = fold(value);
  if (folded.size() > kKnowledgeMaxFilterBytes) folded.resize(kKnowledgeMaxFilterBytes);
  return std::string(prefix) + folded;
}

// Ids are at most 128 bytes by default (BusOptions::max_id_bytes), but that
// is configurable: a longer id is named by its hash ('#' is not an id
// character, so the two forms never meet).
std::string unique_term(std::string_view id) {
  if (1 + id.size() <= kMaxTermBytes) {
    // Appended, not "Q" + std::string(id): GCC 12 at -O3 warns a false
    // -Wrestrict on the operator+ form.
    std::string term = "Q";
    term.append(id);
    return term;
  }
  core::Sha256 h;
  h.update(id);
  const core::Hash256 digest = h.finish();
  return "Q#" + core::to_hex(digest);
}

// The filterable fields of an item, folded.
struct Filters {
  std::string domain;
  std::vector<std::string> tags;
  std::string agent;  // empty: none
};

Filters filters_of(const json& r) {
  Filters f;
  f.domain = fold(r.value("domain", std::string()));
  for (const auto& t : r.value("tags", json::array())) f.tags.push_back(fold(t.get<std::string>()));
  if (r.contains("agent") && r["agent"].is_string()) f.agent = fold(r["agent"].get<std::string>());
  return f;
}

// `want` holds folded query filters; an empty field accepts anything.
bool passes(const Filters& item, const Filters& want) {
  if (!want.domain.empty() && item.domain != want.domain) return false;
  if (!want.agent.empty() && item.agent != want.agent) return false;
  for (const auto& t : want.tags) {
    if (std::find(item.tags.begin(), item.tags.end(), t) == item.tags.end()) return false;
  }
  return true;
}

core::result<json> parse_record(std::string_view key, const std::string& bytes) {
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string()) {
    return core::make_error(core::errc::corruption, fmt::format("bad knowledge record '{}'", key));
  }
  return j;
}

// The knowledge id an event is about.
core::result<std::string> knowledge_id_of(const core::RecordedEvent& e) {
  const schema::Aligned bytes(e.payload());
  const std::string_view type = e.type();
  const auto get = [&]<typename T>() -> core::result<std::string> {
    auto p = decode<T>(bytes, e);
    if (!p) return p.error();
    return (*p)->knowledge_id()->str();
  };
  if (type == "KnowledgeRecorded") return get.template operator()<d::KnowledgeRecorded>();
  if (type == "KnowledgeRevised") return get.template operator()<d::KnowledgeRevised>();
  if (type == "KnowledgeTransferred") return get.template operator()<d::KnowledgeTransferred>();
  if (type == "KnowledgeRetracted") return get.template operator()<d::KnowledgeRetracted>();
  return core::make_error(core::errc::invalid_argument,
                          fmt::format("{} is not a knowledge event", type));
}

// An index change apply() staged for committed(): the item's final record
// in the batch (nullopt: deleted) and, when the batch changed it, its vector.
struct Staged {
  json record;
  std::vector<float> vector;
  bool vector_changed = false;
};

struct Meta {
  std::string id;
  Filters filters;
};

}  // namespace

std::string embedder_id(const TextEmbedder& embedder) {
  return fmt::format("{}/{}", embedder.name(), embedder.version());
}

struct KnowledgeProjection::Impl {
  explicit Impl(std::shared_ptr<const TextEmbedder> e)
      : embedder(std::move(e)), id(embedder_id(*embedder)), dimensions(embedder->dimensions()) {
    generator.set_stemmer(Xapian::Stem("english"));
    generator.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
  }

  std::shared_ptr<const TextEmbedder> embedder;
  const std::string id;
  const size_t dimensions;

  // --- the worker thread's ---
  std::map<std::string, std::optional<Staged>> stage;
  std::unique_ptr<Xapian::WritableDatabase> writer;
  Xapian::TermGenerator generator;
  core::Position xapian_position;  // in Xapian's committed metadata
  core::Position synced;           // what Xapian reflects (committed or not yet)

  // --- shared with query threads ---
  // Guards everything below; queries hold it shared.
  mutable std::shared_mutex mu;
  bool opened = false;
  std::filesystem::path xapian_path;
  std::unique_ptr<VectorIndex> vectors;
  std::unordered_map<int64_t, Meta> meta;  // by vector_id(id), for every item
  // Idle read-only databases; a query takes one out, so each is used by one
  // thread at a time.
  mutable std::mutex readers_mu;
  mutable std::vector<std::unique_ptr<Xapian::Database>> readers;

  json embedder_meta() const {
    return json{{"name", std::string(embedder->name())},
                {"version", embedder->version()},
                {"dimensions", dimensions},
                {"id", id}};
  }

  std::vector<float> embed_text(std::string_view title, std::string_view body) const {
    std::string text;
    text.reserve(title.size() + 1 + body.size());
    text.append(title).append("\n").append(body);
    std::vector<float> v = embedder->embed(text);
    ENGRAM_ASSERT_MSG(v.size() == dimensions, "the embedder broke its dimensions() contract");
    return v;
  }

  // The event's own vector when it was made by this embedder with this many
  // dimensions.
  std::optional<std::vector<float>> usable(const flatbuffers::Vector<float>* embedding,
                                           const flatbuffers::String* embedder_name) const {
    if (embedding == nullptr || embedder_name == nullptr) return std::nullopt;
    if (std::string_view(embedder_name->c_str(), embedder_name->size()) != id) return std::nullopt;
    if (embedding->size() != dimensions) return std::nullopt;
    return std::vector<float>(embedding->begin(), embedding->end());
  }

  // ---- apply ----

  core::result<json> load(core::ModelStore::Batch& batch, const std::string& kid,
                          const core::RecordedEvent& e) const {
    const std::string key = item_key(kid);
    auto stored = batch.get(key);
    if (!stored) return stored.error();
    if (!stored->has_value()) {
      return core::make_error(core::errc::corruption,
                              fmt::format("{} at position {} changes unknown knowledge '{}'",
                                          e.type(), e.position().value(), kid));
    }
    return parse_record(key, **stored);
  }

  // Stores `record` (and `vector`, when it changed) and stages both.
  core::result<void> put(core::ModelStore::Batch& batch, json record,
                         std::optional<std::vector<float>> vector) {
    const std::string kid = record["id"].get<std::string>();
    // Texts come from JSON commands, so they are UTF-8; should one not be,
    // `replace` keeps dump() from throwing on the worker thread (and is as
    // deterministic).
    const std::string value = record.dump(-1, ' ', false, json::error_handler_t::replace);
    if (auto r = batch.put(item_key(kid), value); !r) return r;
    if (vector) {
      if (auto r = batch.put(vec_key(kid), encode_vector(*vector)); !r) return r;
    }
    auto& slot = stage[kid];
    Staged s;
    s.record = std::move(record);
    if (vector) {
      s.vector = std::move(*vector);
      s.vector_changed = true;
    } else if (slot && slot->vector_changed) {
      // Changed earlier in this batch: still to be indexed.
      s.vector = std::move(slot->vector);
      s.vector_changed = true;
    }
    slot = std::move(s);
    return {};
  }

  core::result<void> apply_one(core::ModelStore::Batch& batch, const core::RecordedEvent& e) {
    const schema::Aligned bytes(e.payload());
    const std::string_view type = e.type();
    const uint64_t at = e.position().value();
    if (type == "KnowledgeRecorded") {
      auto decoded = decode<d::KnowledgeRecorded>(bytes, e);
      if (!decoded) return decoded.error();
      const d::KnowledgeRecorded* p = *decoded;
      const std::string kid = p->knowledge_id()->str();
      auto existing = batch.get(item_key(kid));
      if (!existing) return existing.error();
      if (existing->has_value()) {
        return core::make_error(core::errc::corruption,
                                fmt::format("KnowledgeRecorded at position {} records existing "
                                            "knowledge '{}'",
                                            at, kid));
      }
      std::optional<std::vector<float>> vector = usable(p->embedding(), p->embedder());
      const bool from_event = vector.has_value();
      if (!vector) vector = embed_text(p->title()->str(), p->body()->str());
      json r = {{"id", kid},
                {"title", p->title()->str()},
                {"body", p->body()->str()},
                {"domain", p->domain()->str()},
                {"tags", strs(p->tags())},
                {"agent", p->source_agent() ? json(p->source_agent()->str()) : json(nullptr)},
                {"source_task", p->source_task() ? json(p->source_task()->str()) : json(nullptr)},
                {"confidence", p->confidence()},
                {"created_position", at},
                {"updated_position", at},
                {"created_at_ns", e.recorded_at_ns()},
                {"updated_at_ns", e.recorded_at_ns()},
                {"revisions", 0},
                {"embedding", from_event ? "event" : "embedder"}};
      return put(batch, std::move(r), std::move(vector));
    }
    if (type == "KnowledgeRevised") {
      auto decoded = decode<d::KnowledgeRevised>(bytes, e);
      if (!decoded) return decoded.error();
      const d::KnowledgeRevised* p = *decoded;
      auto loaded = load(batch, p->knowledge_id()->str(), e);
      if (!loaded) return loaded.error();
      json r = std::move(*loaded);
      if (p->title()) r["title"] = p->title()->str();
      if (p->body()) r["body"] = p->body()->str();
      if (p->tags()) r["tags"] = strs(p->tags());
      if (p->confidence()) r["confidence"] = *p->confidence();
      r["revisions"] = r.value("revisions", uint64_t{0}) + 1;
      r["updated_position"] = at;
      r["updated_at_ns"] = e.recorded_at_ns();
      std::optional<std::vector<float>> vector = usable(p->embedding(), p->embedder());
      if (vector) {
        r["embedding"] = "event";
      } else if (p->title() || p->body() || p->embedding()) {
        // The old vector describes the old text (or the event's vector is
        // unusable): embed what the item says now.
        vector = embed_text(r["title"].get<std::string>(), r["body"].get<std::string>());
        r["embedding"] = "embedder";
      }
      return put(batch, std::move(r), std::move(vector));
    }
    if (type == "KnowledgeTransferred") {
      auto decoded = decode<d::KnowledgeTransferred>(bytes, e);
      if (!decoded) return decoded.error();
      const d::KnowledgeTransferred* p = *decoded;
      auto loaded = load(batch, p->knowledge_id()->str(), e);
      if (!loaded) return loaded.error();
      json r = std::move(*loaded);
      r["agent"] = p->to_agent()->str();
      r["updated_position"] = at;
      r["updated_at_ns"] = e.recorded_at_ns();
      return put(batch, std::move(r), std::nullopt);
    }
    if (type == "KnowledgeRetracted") {
      auto decoded = decode<d::KnowledgeRetracted>(bytes, e);
      if (!decoded) return decoded.error();
      const std::string kid = (*decoded)->knowledge_id()->str();
      if (auto loaded = load(batch, kid, e); !loaded) return loaded.error();
      if (auto r = batch.del(item_key(kid)); !r) return r;
      if (auto r = batch.del(vec_key(kid)); !r) return r;
      stage[kid] = std::nullopt;
      return {};
    }
    return {};  // a type this version does not read
  }

  // ---- Xapian, on the worker thread ----

  Xapian::Document document(const json& r) {
    Xapian::Document doc;
    const std::string kid = r["id"].get<std::string>();
    doc.set_data(kid);
    doc.add_boolean_term(unique_term(kid));
    generator.set_document(doc);
    const std::string title = r.value("title", std::string());
    generator.index_text(title, kTitleWdf);
    generator.index_text(title, 1, "S");
    generator.increase_termpos();
    generator.index_text(r.value("body", std::string()));
    const Filters f = filters_of(r);
    // filters_of folds; filter_term folds again, which changes nothing.
    if (!f.domain.empty()) doc.add_boolean_term(filter_term("XD", f.domain));
    for (const auto& t : f.tags) {
      if (!t.empty()) doc.add_boolean_term(filter_term("XT", t));
    }
    if (!f.agent.empty()) doc.add_boolean_term(filter_term("XA", f.agent));
    return doc;
  }

  // Puts one item's state (nullptr: absent) into the writer, uncommitted.
  core::result<void> write_xapian(const std::string& kid, const json* record) {
    ENGRAM_ASSERT(writer != nullptr);
    try {
      if (record == nullptr) {
        writer->delete_document(unique_term(kid));
      } else {
        writer->replace_document(unique_term(kid), document(*record));
      }
    } catch (const Xapian::Error& e) {
      return xapian_error(e, fmt::format("indexing '{}'", kid));
    }
    return {};
  }

  core::result<void> commit_xapian(core::Position position) {
    ENGRAM_ASSERT(writer != nullptr);
    try {
      writer->set_metadata(kPositionMetadata, std::to_string(position.value()));
      writer->commit();
    } catch (const Xapian::Error& e) {
      return xapian_error(e, "commit");
    }
    xapian_position = position;
    return {};
  }

  // Opens (creating) the writer at `path`. A database that is corrupt, of a
  // format this Xapian cannot read, or says it is past `checkpoint` is
  // deleted and made anew: it derives from the store, and position 0 makes
  // the worker refresh everything the log ever touched.
  core::result<core::Position> open_xapian(const std::filesystem::path& path,
                                           core::Position checkpoint) {
    for (int attempt = 0;; ++attempt) {
      bool reset = false;
      std::string why;
      std::error_code ec;
      std::filesystem::create_directories(path, ec);
      if (ec) {
        return core::make_error(core::errc::io_error,
                                fmt::format("creating {}: {}", path.string(), ec.message()));
      }
      try {
        writer =
            std::make_unique<Xapian::WritableDatabase>(path.string(), Xapian::DB_CREATE_OR_OPEN);
        const std::string stored = writer->get_metadata(kPositionMetadata);
        uint64_t at = 0;
        if (!stored.empty()) {
          const auto [end, err] = std::from_chars(stored.data(), stored.data() + stored.size(), at);
          if (err != std::errc() || end != stored.data() + stored.size()) {
            reset = true;
            why = fmt::format("bad position metadata '{}'", stored);
          }
        }
        if (!reset && at > checkpoint.value()) {
          reset = true;
          why = fmt::format("its position {} is past the store's checkpoint {}", at,
                            checkpoint.value());
        }
        if (!reset) {
          xapian_position = core::Position(at);
          synced = xapian_position;
          return xapian_position;
        }
      } catch (const Xapian::DatabaseLockError& e) {
        return core::make_error(
            core::errc::locked,
            fmt::format("knowledge index {} is in use: {}", path.string(), e.get_description()));
      } catch (const Xapian::DatabaseCorruptError& e) {
        reset = true;
        why = e.get_description();
      } catch (const Xapian::DatabaseVersionError& e) {
        reset = true;
        why = e.get_description();
      } catch (const Xapian::Error& e) {
        return xapian_error(e, fmt::format("opening {}", path.string()));
      }
      writer.reset();
      if (attempt > 0) {
        return core::make_error(
            core::errc::corruption,
            fmt::format("knowledge index {} is unusable even when new: {}", path.string(), why));
      }
      std::filesystem::remove_all(path, ec);
      if (ec) {
        return core::make_error(
            core::errc::io_error,
            fmt::format("removing {} ({}): {}", path.string(), why, ec.message()));
      }
    }
  }

  // ---- vectors and filters, under mu exclusively ----

  core::result<void> set_meta(int64_t vid, const std::string& kid, Filters f) {
    auto it = meta.find(vid);
    if (it != meta.end() && it->second.id != kid) {
      return core::make_error(
          core::errc::corruption,
          fmt::format("knowledge ids '{}' and '{}' share vector id {}", it->second.id, kid, vid));
    }
    meta[vid] = Meta{kid, std::move(f)};
    return {};
  }

  // Rebuilds the vectors and the filter map from the store, in pages.
  core::result<void> load_vectors(const core::ModelStore& store) {
    std::string from(kItemPrefix);
    for (;;) {
      auto page = store.scan(kItemPrefix, from, core::ModelStore::kMaxScanEntries);
      if (!page) return page.error();
      for (const auto& [key, value] : *page) {
        auto r = parse_record(key, value);
        if (!r) return r.error();
        const std::string kid = key.substr(kItemPrefix.size());
        if (auto s = set_meta(vector_id(kid), kid, filters_of(*r)); !s) return s;
      }
      if (page->size() < core::ModelStore::kMaxScanEntries) break;
      from = page->back().first + std::string(1, '\0');
    }
    from = std::string(kVecPrefix);
    for (;;) {
      auto page = store.scan(kVecPrefix, from, core::ModelStore::kMaxScanEntries);
      if (!page) return page.error();
      std::vector<int64_t> ids;
      std::vector<float> flat;
      for (const auto& [key, value] : *page) {
        const std::string kid = key.substr(kVecPrefix.size());
        const int64_t vid = vector_id(kid);
        auto it = meta.find(vid);
        if (it == meta.end() || it->second.id != kid) {
          return core::make_error(core::errc::corruption,
                                  fmt::format("vector '{}' has no knowledge record", key));
        }
        auto v = decode_vector(value, dimensions);
        if (!v) {
          return core::make_error(
              core::errc::corruption,
              fmt::format("vector '{}' has {} bytes, not {}", key, value.size(), dimensions * 4));
        }
        if (!normalise(*v)) continue;
        ids.push_back(vid);
        flat.insert(flat.end(), v->begin(), v->end());
      }
      if (!ids.empty()) {
        if (auto r = vectors->upsert_many(ids, flat); !r) return r;
      }
      if (page->size() < core::ModelStore::kMaxScanEntries) break;
      from = page->back().first + std::string(1, '\0');
    }
    return {};
  }

  // ---- queries ----

  std::unique_ptr<Xapian::Database> take_reader() const {
    {
      std::lock_guard lock(readers_mu);
      if (!readers.empty()) {
        auto r = std::move(readers.back());
        readers.pop_back();
        return r;
      }
    }
    return std::make_unique<Xapian::Database>(xapian_path.string());  // may throw
  }

  void give_back(std::unique_ptr<Xapian::Database> reader) const {
    std::lock_guard lock(readers_mu);
    if (readers.size() < kMaxIdleReaders) readers.push_back(std::move(reader));
  }

  // Under mu shared.
  core::result<std::vector<std::pair<std::string, double>>> keyword(const KnowledgeQuery& q,
                                                                    const Filters& want,
                                                                    size_t depth) const {
    Xapian::Query query;
    try {
      Xapian::QueryParser parser;
      parser.set_stemmer(Xapian::Stem("english"));
      parser.set_stemming_strategy(Xapian::QueryParser::STEM_SOME);
      parser.set_default_op(Xapian::Query::OP_OR);
      parser.add_prefix("title", "S");
      query = parser.parse_query(q.text, Xapian::QueryParser::FLAG_DEFAULT);
    } catch (const Xapian::QueryParserError& e) {
      return core::make_error(core::errc::invalid_argument,
                              fmt::format("bad keyword query: {}", e.get_msg()));
    } catch (const Xapian::Error& e) {
      return xapian_error(e, "parsing the query");
    }
    std::vector<std::pair<std::string, double>> out;
    if (query.empty()) return out;  // nothing searchable ("!!!")
    std::vector<Xapian::Query> filters;
    if (!want.domain.empty()) filters.emplace_back(filter_term("XD", want.domain));
    for (const auto& t : want.tags) filters.emplace_back(filter_term("XT", t));
    if (!want.agent.empty()) filters.emplace_back(filter_term("XA", want.agent));
    if (!filters.empty()) {
      query = Xapian::Query(Xapian::Query::OP_FILTER, query,
                            Xapian::Query(Xapian::Query::OP_AND, filters.begin(), filters.end()));
    }
    std::unique_ptr<Xapian::Database> reader;
    for (int attempt = 0;; ++attempt) {
      try {
        if (!reader) reader = take_reader();
        reader->reopen();  // to the last commit
        Xapian::Enquire enquire(*reader);
        enquire.set_query(query);
        enquire.set_weighting_scheme(Xapian::BM25Weight());
        const Xapian::MSet mset = enquire.get_mset(0, static_cast<Xapian::doccount>(depth));
        out.clear();
        for (auto it = mset.begin(); it != mset.end(); ++it) {
          out.emplace_back(it.get_document().get_data(), it.get_weight());
        }
        give_back(std::move(reader));
        return out;
      } catch (const Xapian::DatabaseModifiedError& e) {
        if (attempt >= kModifiedRetries) return xapian_error(e, "searching");
      } catch (const Xapian::Error& e) {
        return xapian_error(e, "searching");  // the reader is dropped, not pooled
      }
    }
  }

  // Under mu shared.
  core::result<std::vector<std::pair<std::string, double>>> semantic(const KnowledgeQuery& q,
                                                                     const Filters& want,
                                                                     size_t depth) const {
    std::vector<std::pair<std::string, double>> out;
    std::vector<float> v = embedder->embed(q.text);
    ENGRAM_ASSERT_MSG(v.size() == dimensions, "the embedder broke its dimensions() contract");
    if (!normalise(v)) return out;  // no features: nothing is similar
    const bool filtered = !want.domain.empty() || !want.tags.empty() || !want.agent.empty();
    VectorIndex::Keep keep;
    if (filtered) {
      keep = [&](int64_t vid, const VectorIndex::Payload&) {
        auto it = meta.find(vid);
        return it != meta.end() && passes(it->second.filters, want);
      };
    }
    auto hits = vectors->search(v, std::min(depth, VectorIndex::kMaxK), keep);
    if (!hits) return hits.error();
    for (const auto& h : *hits) {
      if (!(h.score > 0)) continue;
      auto it = meta.find(h.id);
      if (it == meta.end()) continue;
      out.emplace_back(it->second.id, static_cast<double>(h.score));
    }
    return out;
  }
};

KnowledgeProjection::KnowledgeProjection(std::shared_ptr<const TextEmbedder> embedder) {
  ENGRAM_ASSERT(embedder != nullptr);
  ENGRAM_ASSERT(embedder->dimensions() >= 1 &&
                embedder->dimensions() <= VectorIndex::kMaxDimensions);
  impl_ = std::make_unique<Impl>(std::move(embedder));
}

KnowledgeProjection::~KnowledgeProjection() = default;

const TextEmbedder& KnowledgeProjection::embedder() const {
  return *impl_->embedder;
}

std::vector<std::string> KnowledgeProjection::event_types() const {
  return {"KnowledgeRecorded", "KnowledgeRevised", "KnowledgeTransferred", "KnowledgeRetracted"};
}

core::result<void> KnowledgeProjection::apply(std::span<const core::RecordedEvent> events,
                                              core::ModelStore::Batch& batch) {
  // What an earlier apply() staged belongs to a batch that was never
  // committed (committed() clears the stage): forget it.
  impl_->stage.clear();
  auto recorded = batch.get(kEmbedderKey);
  if (!recorded) return recorded.error();
  if (!recorded->has_value()) {
    if (auto r = batch.put(kEmbedderKey, impl_->embedder_meta().dump()); !r) return r;
  }
  for (const auto& e : events) {
    if (auto r = impl_->apply_one(batch, e); !r) return r;
  }
  return {};
}

core::result<core::Position> KnowledgeProjection::open(const core::ModelStore& store,
                                                       const std::filesystem::path& dir) {
  Impl& m = *impl_;
  std::unique_lock lock(m.mu);
  m.opened = false;
  m.writer.reset();
  m.stage.clear();
  {
    std::lock_guard readers_lock(m.readers_mu);
    m.readers.clear();
  }
  m.meta.clear();
  VectorIndex::Options options;
  options.dimensions = m.dimensions;
  m.vectors = std::make_unique<VectorIndex>(options);

  auto recorded = store.get(kEmbedderKey);
  if (!recorded) return recorded.error();
  if (recorded->has_value()) {
    const json stored = json::parse(**recorded, nullptr, false);
    const json current = m.embedder_meta();
    if (stored != current) {
      return core::make_error(
          core::errc::invalid_argument,
          fmt::format("store {} was built with embedder {} and this node's embedder is {}: the "
                      "stored vectors are not comparable, rebuild the knowledge model under a "
                      "new projection version",
                      store.name(), stored.is_discarded() ? *recorded.value() : stored.dump(),
                      current.dump()));
    }
  }

  m.xapian_path = dir / "xapian";
  auto position = m.open_xapian(m.xapian_path, store.checkpoint());
  if (!position) return position.error();
  if (auto r = m.load_vectors(store); !r) return r.error();
  m.opened = true;
  return *position;
}

core::result<void> KnowledgeProjection::refresh(std::span<const core::RecordedEvent> events,
                                                const core::ModelStore& store) {
  Impl& m = *impl_;
  ENGRAM_ASSERT(m.writer != nullptr);
  if (events.empty()) return {};
  // The vectors were rebuilt from the store by open(): only Xapian can be
  // behind it.
  std::set<std::string> ids;
  for (const auto& e : events) {
    auto kid = knowledge_id_of(e);
    if (!kid) return kid.error();
    ids.insert(std::move(*kid));
  }
  for (const auto& kid : ids) {
    auto record = get_knowledge(store, kid);
    if (!record) return record.error();
    if (auto r = m.write_xapian(kid, record->has_value() ? &**record : nullptr); !r) return r;
  }
  // Every item the events up to here touched now matches the store.
  const core::Position last = events.back().position();
  if (last > m.xapian_position) {
    if (auto r = m.commit_xapian(last); !r) return r;
  }
  m.synced = std::max(m.synced, last);
  return {};
}

core::result<void> KnowledgeProjection::committed(const core::ModelStore& store,
                                                  core::Position position) {
  (void)store;
  Impl& m = *impl_;
  ENGRAM_ASSERT(m.writer != nullptr);
  for (const auto& [kid, staged] : m.stage) {
    if (auto r = m.write_xapian(kid, staged ? &staged->record : nullptr); !r) return r;
  }
  if (!m.stage.empty() || position.value() - m.xapian_position.value() >= kKnowledgeCommitEvery) {
    if (auto r = m.commit_xapian(position); !r) return r;
  }
  m.synced = position;
  {
    std::unique_lock lock(m.mu);
    for (auto& [kid, staged] : m.stage) {
      const int64_t vid = vector_id(kid);
      if (!staged) {
        m.vectors->remove(vid);
        m.meta.erase(vid);
        continue;
      }
      if (auto r = m.set_meta(vid, kid, filters_of(staged->record)); !r) return r;
      if (staged->vector_changed) {
        if (normalise(staged->vector)) {
          if (auto r = m.vectors->upsert(vid, staged->vector); !r) return r;
        } else {
          m.vectors->remove(vid);  // a zero vector has no direction
        }
      }
    }
  }
  m.stage.clear();
  return {};
}

void KnowledgeProjection::close(const core::ModelStore& store) {
  (void)store;
  Impl& m = *impl_;
  if (!m.writer) return;
  if (m.synced > m.xapian_position) {
    // A failure leaves the older position: the next open() refreshes more.
    (void)m.commit_xapian(m.synced);
  }
  try {
    m.writer->close();
  } catch (const Xapian::Error&) {
    // Nothing to do at stop: the next open() checks the database.
  }
  m.writer.reset();
}

core::result<std::optional<json>> get_knowledge(const core::ModelStore& store,
                                                std::string_view id) {
  const std::string key = item_key(id);
  auto v = store.get(key);
  if (!v) return v.error();
  if (!v->has_value()) return std::optional<json>();
  auto r = parse_record(key, **v);
  if (!r) return r.error();
  return std::optional<json>(std::move(*r));
}

core::result<std::vector<KnowledgeHit>> search_knowledge(const KnowledgeProjection& projection,
                                                         const core::ModelStore& store,
                                                         const KnowledgeQuery& q) {
  core::expect_may_block("a knowledge search");
  using Mode = KnowledgeQuery::Mode;
  const auto invalid = [](std::string why) {
    return core::make_error(core::errc::invalid_argument, std::move(why));
  };
  if (q.text.empty()) return invalid("the query text is empty");
  if (q.text.size() > kKnowledgeMaxTextBytes) {
    return invalid(fmt::format("the query text has {} bytes, more than {}", q.text.size(),
                               kKnowledgeMaxTextBytes));
  }
  if (q.limit == 0 || q.limit > kKnowledgeMaxLimit) {
    return invalid(fmt::format("limit {} is not in 1..{}", q.limit, kKnowledgeMaxLimit));
  }
  for (const auto* f : {&q.domain, &q.tag, &q.agent}) {
    if (f->size() > kKnowledgeMaxFilterBytes) {
      return invalid(fmt::format("a filter value has {} bytes, more than {}", f->size(),
                                 kKnowledgeMaxFilterBytes));
    }
  }
  Filters want;
  want.domain = fold(q.domain);
  if (!q.tag.empty()) want.tags.push_back(fold(q.tag));
  want.agent = fold(q.agent);

  const KnowledgeProjection::Impl& m = *projection.impl_;
  const size_t depth = q.mode == Mode::hybrid ? kKnowledgeHybridDepth : q.limit;
  std::vector<std::pair<std::string, double>> by_keyword;
  std::vector<std::pair<std::string, double>> by_meaning;
  {
    std::shared_lock lock(m.mu);
    if (!m.opened) {
      return core::make_error(core::errc::not_found, "the knowledge model is not open yet");
    }
    if (q.mode != Mode::semantic) {
      auto r = m.keyword(q, want, depth);
      if (!r) return r.error();
      by_keyword = std::move(*r);
    }
    if (q.mode != Mode::keyword) {
      auto r = m.semantic(q, want, depth);
      if (!r) return r.error();
      by_meaning = std::move(*r);
    }
  }

  struct Candidate {
    std::string id;
    double score = 0;
    std::optional<size_t> keyword_rank, semantic_rank;
    std::optional<double> keyword_score, semantic_score;
    size_t best_rank() const {
      return std::min(keyword_rank.value_or(SIZE_MAX), semantic_rank.value_or(SIZE_MAX));
    }
  };
  std::vector<Candidate> candidates;
  std::unordered_map<std::string, size_t> at;  // id -> index in candidates
  const auto slot = [&](const std::string& id) -> Candidate& {
    auto [it, inserted] = at.emplace(id, candidates.size());
    if (inserted) {
      candidates.emplace_back();
      candidates.back().id = id;
    }
    return candidates[it->second];
  };
  for (size_t i = 0; i < by_keyword.size(); ++i) {
    Candidate& c = slot(by_keyword[i].first);
    c.keyword_rank = i + 1;
    c.keyword_score = by_keyword[i].second;
  }
  for (size_t i = 0; i < by_meaning.size(); ++i) {
    Candidate& c = slot(by_meaning[i].first);
    c.semantic_rank = i + 1;
    c.semantic_score = by_meaning[i].second;
  }
  for (auto& c : candidates) {
    switch (q.mode) {
      case Mode::keyword:
        c.score = c.keyword_score.value_or(0);
        break;
      case Mode::semantic:
        c.score = c.semantic_score.value_or(0);
        break;
      case Mode::hybrid:
        c.score = 0;
        if (c.keyword_rank)
          c.score += 1.0 / (kKnowledgeRrfK + static_cast<double>(*c.keyword_rank));
        if (c.semantic_rank) {
          c.score += 1.0 / (kKnowledgeRrfK + static_cast<double>(*c.semantic_rank));
        }
        break;
    }
  }
  // Single modes keep their index's order (Xapian breaks BM25 ties by
  // document id); hybrid sorts by the fused score.
  if (q.mode == Mode::hybrid) {
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& a, const Candidate& b) {
                       if (a.score != b.score) return a.score > b.score;
                       if (a.best_rank() != b.best_rank()) return a.best_rank() < b.best_rank();
                       return a.id < b.id;
                     });
  }

  std::vector<KnowledgeHit> hits;
  for (auto& c : candidates) {
    if (hits.size() >= q.limit) break;
    auto record = get_knowledge(store, c.id);
    if (!record) return record.error();
    if (!record->has_value()) continue;  // retracted after the index lookup
    if (!passes(filters_of(**record), want)) continue;
    KnowledgeHit h;
    h.item = std::move(**record);
    h.score = c.score;
    h.keyword_rank = c.keyword_rank;
    h.semantic_rank = c.semantic_rank;
    h.keyword_score = c.keyword_score;
    h.semantic_score = c.semantic_score;
    hits.push_back(std::move(h));
  }
  return hits;
}

}  // namespace engram::projections
