#include "projections/patterns.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "core/assert.h"
#include "core/thread_role.h"
#include "projections/decode.h"
#include "projections/key_part.h"
#include "schemas/domain/patterns_generated.h"
#include "schemas/payload.h"

namespace engram::projections {
namespace {

using nlohmann::json;
namespace d = engram::domain;

constexpr std::string_view kRecordPrefix = "pattern/";
constexpr std::string_view kVectorPrefix = "vec/";
constexpr std::string_view kRankPrefix = "rank/";
constexpr std::string_view kEmbedderKey = "meta/embedder";
// The score key of a rank key: two 64-bit values as 16 hex digits each.
constexpr size_t kScoreKeyChars = 32;

std::string record_key(std::string_view id) {
  return fmt::format("{}{}", kRecordPrefix, id);
}
std::string vector_key(std::string_view id) {
  return fmt::format("{}{}", kVectorPrefix, id);
}
std::string rank_prefix(std::string_view domain) {
  return fmt::format("{}{}/", kRankPrefix, escape_key_part(domain));
}
// Complemented so that a forward scan meets high bounds and high counts
// first. The bound is a double in [0, 1] that is never -0.0, so its bits
// order as its values do.
std::string rank_key(std::string_view domain, double wilson, uint64_t observations,
                     std::string_view id) {
  ENGRAM_ASSERT(wilson >= 0 && wilson <= 1 && !std::signbit(wilson));
  return fmt::format("{}{:016x}{:016x}/{}", rank_prefix(domain), ~std::bit_cast<uint64_t>(wilson),
                     ~observations, id);
}

std::string encode_vector(std::span<const float> v) {
  std::string out(v.size() * sizeof(uint32_t), '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(v[i]);
    for (size_t b = 0; b < sizeof(uint32_t); ++b) {
      out[i * sizeof(uint32_t) + b] = static_cast<char>((bits >> (8 * b)) & 0xffu);
    }
  }
  return out;
}

core::result<std::vector<float>> decode_vector(std::string_view bytes, size_t dimensions,
                                               std::string_view key) {
  if (bytes.size() != dimensions * sizeof(uint32_t)) {
    return core::make_error(core::errc::corruption,
                            fmt::format("'{}' holds {} bytes, not the {} of {} float32s", key,
                                        bytes.size(), dimensions * sizeof(uint32_t), dimensions));
  }
  std::vector<float> out(dimensions);
  for (size_t i = 0; i < dimensions; ++i) {
    uint32_t bits = 0;
    for (size_t b = 0; b < sizeof(uint32_t); ++b) {
      bits |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i * sizeof(uint32_t) + b]))
              << (8 * b);
    }
    out[i] = std::bit_cast<float>(bits);
  }
  return out;
}

bool all_zero(std::span<const float> v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; });
}

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

core::Error corrupt(std::string message) {
  return core::make_error(core::errc::corruption, std::move(message));
}

// A pattern record, typed; the stored JSON adds the derived fields.
struct Record {
  std::string pattern_id;
  std::string domain;
  std::string signature;
  uint64_t observations = 0;
  uint64_t successes = 0;
  double reward_sum = 0;
  uint64_t first_seen_position = 0;
  int64_t first_seen_at_ns = 0;
  uint64_t last_seen_position = 0;
  int64_t last_seen_at_ns = 0;
  std::optional<std::string> last_agent;
  bool retired = false;
  std::string retired_reason;
  uint64_t retired_position = 0;
  int64_t retired_at_ns = 0;

  double wilson() const { return wilson_lower_bound(successes, observations); }
};

json to_json(const Record& r) {
  ENGRAM_ASSERT(r.observations > 0 && r.successes <= r.observations);
  const auto n = static_cast<double>(r.observations);
  json j = {{"pattern_id", r.pattern_id},
            {"domain", r.domain},
            {"signature", r.signature},
            {"observations", r.observations},
            {"successes", r.successes},
            {"failures", r.observations - r.successes},
            {"reward_sum", r.reward_sum},
            {"mean_reward", r.reward_sum / n},
            {"success_rate", static_cast<double>(r.successes) / n},
            {"wilson_lower", r.wilson()},
            {"first_seen_position", r.first_seen_position},
            {"first_seen_at_ns", r.first_seen_at_ns},
            {"last_seen_position", r.last_seen_position},
            {"last_seen_at_ns", r.last_seen_at_ns},
            {"retired", r.retired}};
  if (r.last_agent) j["last_agent"] = *r.last_agent;
  if (r.retired) {
    j["retired_reason"] = r.retired_reason;
    j["retired_position"] = r.retired_position;
    j["retired_at_ns"] = r.retired_at_ns;
  }
  return j;
}

core::result<json> parse_json(std::string_view text, std::string_view key) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return corrupt(fmt::format("'{}' is not a JSON object", key));
  }
  return j;
}

core::result<Record> parse_record(std::string_view text, std::string_view key) {
  auto j = parse_json(text, key);
  if (!j) return j.error();
  try {
    Record r;
    r.pattern_id = j->at("pattern_id").get<std::string>();
    r.domain = j->at("domain").get<std::string>();
    r.signature = j->at("signature").get<std::string>();
    r.observations = j->at("observations").get<uint64_t>();
    r.successes = j->at("successes").get<uint64_t>();
    r.reward_sum = j->at("reward_sum").get<double>();
    r.first_seen_position = j->at("first_seen_position").get<uint64_t>();
    r.first_seen_at_ns = j->at("first_seen_at_ns").get<int64_t>();
    r.last_seen_position = j->at("last_seen_position").get<uint64_t>();
    r.last_seen_at_ns = j->at("last_seen_at_ns").get<int64_t>();
    if (j->contains("last_agent")) r.last_agent = j->at("last_agent").get<std::string>();
    r.retired = j->at("retired").get<bool>();
    if (r.retired) {
      r.retired_reason = j->at("retired_reason").get<std::string>();
      r.retired_position = j->at("retired_position").get<uint64_t>();
      r.retired_at_ns = j->at("retired_at_ns").get<int64_t>();
    }
    if (r.observations == 0 || r.successes > r.observations) {
      return corrupt(fmt::format("'{}' counts {} successes of {} observations", key, r.successes,
                                 r.observations));
    }
    return r;
  } catch (const json::exception& e) {
    return corrupt(fmt::format("'{}' is not a pattern record: {}", key, e.what()));
  }
}

core::result<std::optional<Record>> load_record(const core::ModelStore& store,
                                                std::string_view id) {
  const std::string key = record_key(id);
  auto stored = store.get(key);
  if (!stored) return stored.error();
  if (!stored->has_value()) return std::optional<Record>();
  auto r = parse_record(**stored, key);
  if (!r) return r.error();
  return std::optional<Record>(std::move(*r));
}

// The pattern id an event names, checked to be usable inside a key.
core::result<std::string> event_pattern_id(const flatbuffers::String* s,
                                           const core::RecordedEvent& e) {
  std::string id = str(s);
  if (id.empty() || id.find('/') != std::string::npos) {
    return corrupt(
        fmt::format("{} at position {} names pattern '{}'", e.type(), e.position().value(), id));
  }
  return id;
}

// A change to the vector index that a commit makes: index the vector, or
// (empty) drop the pattern.
struct IndexChange {
  std::string pattern_id;
  std::string domain;
  std::vector<float> vector;
};

// One apply(): the patterns it touches, each read once through the batch and
// folded in memory, then written once.
class Folder {
 public:
  Folder(core::ModelStore::Batch& batch, const TextEmbedder& embedder)
      : batch_(batch), embedder_(embedder) {}

  core::result<void> apply(const core::RecordedEvent& e) {
    const schema::Aligned bytes(e.payload());
    const std::string_view type = e.type();
    if (type == "PatternObserved") {
      auto p = decode<d::PatternObserved>(bytes, e);
      if (!p) return p.error();
      return observe(**p, e);
    }
    if (type == "PatternRetired") {
      auto p = decode<d::PatternRetired>(bytes, e);
      if (!p) return p.error();
      return retire(**p, e);
    }
    return {};  // a type this version does not read
  }

  // Writes every touched pattern and stages the index changes.
  core::result<void> flush(std::vector<IndexChange>& staged) {
    for (auto& [id, t] : touched_) {
      const Record& r = t.record;
      const std::string now_rank =
          r.retired ? std::string() : rank_key(r.domain, r.wilson(), r.observations, id);
      if (now_rank != t.old_rank) {
        if (!t.old_rank.empty()) {
          if (auto w = batch_.del(t.old_rank); !w) return w;
        }
        if (!now_rank.empty()) {
          if (auto w = batch_.put(now_rank, ""); !w) return w;
        }
      }
      if (auto w = batch_.put(record_key(id), to_json(r).dump()); !w) return w;
      if (t.created) {
        if (auto w = batch_.put(vector_key(id), encode_vector(t.vector)); !w) return w;
        if (!r.retired && !all_zero(t.vector)) {
          staged.push_back({id, r.domain, std::move(t.vector)});
        }
      } else if (r.retired && !t.was_retired) {
        staged.push_back({id, r.domain, {}});
      }
    }
    return {};
  }

 private:
  struct Touched {
    Record record;
    std::string old_rank;  // the rank key as committed; empty: none
    bool created = false;
    bool was_retired = false;
    std::vector<float> vector;  // when created: the signature's embedding
  };

  // The pattern as the batch has it so far; null when it does not exist.
  core::result<Touched*> find(const std::string& id) {
    if (auto it = touched_.find(id); it != touched_.end()) return &it->second;
    const std::string key = record_key(id);
    auto stored = batch_.get(key);
    if (!stored) return stored.error();
    if (!stored->has_value()) return static_cast<Touched*>(nullptr);
    auto r = parse_record(**stored, key);
    if (!r) return r.error();
    Touched t;
    t.was_retired = r->retired;
    if (!r->retired) t.old_rank = rank_key(r->domain, r->wilson(), r->observations, id);
    t.record = std::move(*r);
    return &touched_.emplace(id, std::move(t)).first->second;
  }

  core::result<void> observe(const d::PatternObserved& p, const core::RecordedEvent& e) {
    auto id = event_pattern_id(p.pattern_id(), e);
    if (!id) return id.error();
    const std::string domain = str(p.domain());
    const std::string signature = str(p.signature());
    if (!std::isfinite(p.reward())) {
      return corrupt(fmt::format("PatternObserved at position {} has reward {}",
                                 e.position().value(), p.reward()));
    }
    if (p.outcome() != d::PatternOutcome::success && p.outcome() != d::PatternOutcome::failure) {
      return corrupt(fmt::format("PatternObserved at position {} has outcome {}",
                                 e.position().value(), static_cast<int>(p.outcome())));
    }
    auto found = find(*id);
    if (!found) return found.error();
    Touched* t = *found;
    if (t == nullptr) {
      Touched fresh;
      fresh.created = true;
      fresh.record.pattern_id = *id;
      fresh.record.domain = domain;
      fresh.record.signature = signature;
      fresh.record.first_seen_position = e.position().value();
      fresh.record.first_seen_at_ns = e.recorded_at_ns();
      fresh.vector = embedder_.embed(signature);
      ENGRAM_ASSERT_MSG(fresh.vector.size() == embedder_.dimensions(),
                        "an embedder returned a vector of the wrong size");
      t = &touched_.emplace(*id, std::move(fresh)).first->second;
    }
    Record& r = t->record;
    if (r.domain != domain || r.signature != signature) {
      return corrupt(
          fmt::format("PatternObserved at position {} gives pattern {} another domain or signature",
                      e.position().value(), *id));
    }
    ++r.observations;
    if (p.outcome() == d::PatternOutcome::success) ++r.successes;
    r.reward_sum += p.reward();
    r.last_seen_position = e.position().value();
    r.last_seen_at_ns = e.recorded_at_ns();
    if (p.agent_id() != nullptr) r.last_agent = p.agent_id()->str();
    return {};
  }

  core::result<void> retire(const d::PatternRetired& p, const core::RecordedEvent& e) {
    auto id = event_pattern_id(p.pattern_id(), e);
    if (!id) return id.error();
    auto found = find(*id);
    if (!found) return found.error();
    if (*found == nullptr) {
      return corrupt(fmt::format("PatternRetired at position {} retires unknown pattern {}",
                                 e.position().value(), *id));
    }
    Record& r = (*found)->record;
    r.retired = true;
    r.retired_reason = str(p.reason());
    r.retired_position = e.position().value();
    r.retired_at_ns = e.recorded_at_ns();
    return {};
  }

  core::ModelStore::Batch& batch_;
  const TextEmbedder& embedder_;
  std::map<std::string, Touched> touched_;  // ordered: the writes come in a stable order
};

VectorIndex::Options index_options(const TextEmbedder* embedder) {
  ENGRAM_ASSERT(embedder != nullptr);
  ENGRAM_ASSERT(embedder->dimensions() >= 1 &&
                embedder->dimensions() <= VectorIndex::kMaxDimensions);
  VectorIndex::Options o;
  o.dimensions = embedder->dimensions();
  return o;
}

core::result<void> check_limit(size_t limit) {
  if (limit == 0 || limit > kPatternsMaxLimit) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("limit must be 1..{}, not {}", kPatternsMaxLimit, limit));
  }
  return {};
}

}  // namespace

double wilson_lower_bound(uint64_t successes, uint64_t observations) {
  ENGRAM_ASSERT(observations > 0 && successes <= observations);
  // No successes: the bound is exactly 0, which the formula reaches only up
  // to rounding (its centre and spread cancel).
  if (successes == 0) return 0.0;
  const auto n = static_cast<double>(observations);
  const double p = static_cast<double>(successes) / n;
  const double z2 = kWilsonZ * kWilsonZ;
  const double centre = p + z2 / (2 * n);
  const double spread = kWilsonZ * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n));
  const double lower = (centre - spread) / (1 + z2 / n);
  // Never -0.0 or a rounding below 0: rank keys rely on the bits' order.
  if (!(lower > 0)) return 0.0;
  return std::min(lower, 1.0);
}

PatternsProjection::PatternsProjection(std::shared_ptr<const TextEmbedder> embedder)
    : embedder_(std::move(embedder)), index_(index_options(embedder_.get())) {
  embedder_meta_ = json{{"name", std::string(embedder_->name())},
                        {"version", embedder_->version()},
                        {"dimensions", embedder_->dimensions()}}
                       .dump();
}

PatternsProjection::~PatternsProjection() = default;

std::vector<std::string> PatternsProjection::event_types() const {
  return {"PatternObserved", "PatternRetired"};
}

core::result<void> PatternsProjection::apply(std::span<const core::RecordedEvent> events,
                                             core::ModelStore::Batch& batch) {
  staged_.clear();  // what an apply() whose commit failed left
  if (!meta_checked_) {
    // open() refused a store with another embedder; a new store gets this one.
    auto meta = batch.get(kEmbedderKey);
    if (!meta) return meta.error();
    if (!meta->has_value()) {
      if (auto w = batch.put(kEmbedderKey, embedder_meta_); !w) return w;
    }
    meta_checked_ = true;
  }
  Folder folder(batch, *embedder_);
  for (const auto& e : events) {
    if (auto r = folder.apply(e); !r) return r;
  }
  std::vector<IndexChange> changes;
  if (auto r = folder.flush(changes); !r) return r;
  for (auto& c : changes) {
    staged_.push_back({std::move(c.pattern_id), std::move(c.domain), std::move(c.vector)});
  }
  return {};
}

core::result<void> PatternsProjection::add(std::vector<Staged> adds) {
  if (adds.empty()) return {};
  std::vector<int64_t> ids;
  std::vector<float> vectors;
  ids.reserve(adds.size());
  vectors.reserve(adds.size() * index_.dimensions());
  {
    std::unique_lock lock(mu_);
    for (auto& a : adds) {
      const int64_t vid = vector_id(a.pattern_id);
      auto [it, inserted] = members_.try_emplace(vid, Member{a.pattern_id, a.domain});
      if (!inserted && it->second.pattern_id != a.pattern_id) {
        return corrupt(fmt::format("patterns {} and {} share vector id {}", it->second.pattern_id,
                                   a.pattern_id, vid));
      }
      ids.push_back(vid);
      vectors.insert(vectors.end(), a.vector.begin(), a.vector.end());
    }
  }
  // Outside mu_: a query holds mu_ while it searches (nearest()).
  return index_.upsert_many(ids, vectors);
}

void PatternsProjection::remove(const std::string& pattern_id) {
  const int64_t vid = vector_id(pattern_id);
  {
    std::shared_lock lock(mu_);
    auto it = members_.find(vid);
    if (it == members_.end() || it->second.pattern_id != pattern_id) return;
  }
  // The index first, so every indexed id keeps a member.
  index_.remove(vid);
  std::unique_lock lock(mu_);
  members_.erase(vid);
}

core::result<void> PatternsProjection::sync(const core::ModelStore& store,
                                            const std::string& pattern_id) {
  auto record = load_record(store, pattern_id);
  if (!record) return record.error();
  if (!record->has_value() || (*record)->retired) {
    remove(pattern_id);
    return {};
  }
  const std::string key = vector_key(pattern_id);
  auto bytes = store.get(key);
  if (!bytes) return bytes.error();
  if (!bytes->has_value()) return corrupt(fmt::format("pattern {} has no '{}'", pattern_id, key));
  auto vector = decode_vector(**bytes, embedder_->dimensions(), key);
  if (!vector) return vector.error();
  if (all_zero(*vector)) {
    remove(pattern_id);
    return {};
  }
  return add({Staged{pattern_id, (*record)->domain, std::move(*vector)}});
}

core::result<core::Position> PatternsProjection::open(const core::ModelStore& store,
                                                      const std::filesystem::path& dir) {
  (void)dir;  // nothing is kept outside the store: the index is rebuilt from it
  staged_.clear();
  meta_checked_ = false;
  index_.clear();
  {
    std::unique_lock lock(mu_);
    members_.clear();
  }
  auto meta = store.get(kEmbedderKey);
  if (!meta) return meta.error();
  if (meta->has_value() && json::parse(**meta, nullptr, false) != json::parse(embedder_meta_)) {
    return core::make_error(
        core::errc::invalid_argument,
        fmt::format("store {} holds embeddings of embedder {}, but the embedder is now {}; "
                    "its vectors cannot be compared: the patterns projection needs a new "
                    "version to rebuild with it",
                    store.name(), **meta, embedder_meta_));
  }
  const std::string prefix(kVectorPrefix);
  std::string from = prefix;
  for (;;) {
    auto page = store.scan(prefix, from, core::ModelStore::kMaxScanEntries);
    if (!page) return page.error();
    std::vector<Staged> adds;
    for (auto& [key, bytes] : *page) {
      const std::string id = key.substr(prefix.size());
      auto record = load_record(store, id);
      if (!record) return record.error();
      if (!record->has_value()) return corrupt(fmt::format("'{}' has no record", key));
      if ((*record)->retired) continue;
      auto vector = decode_vector(bytes, embedder_->dimensions(), key);
      if (!vector) return vector.error();
      if (all_zero(*vector)) continue;
      adds.push_back({id, (*record)->domain, std::move(*vector)});
    }
    if (auto r = add(std::move(adds)); !r) return r.error();
    if (page->size() < core::ModelStore::kMaxScanEntries) break;
    from = page->back().first + std::string(1, '\0');
  }
  return store.checkpoint();
}

core::result<void> PatternsProjection::refresh(std::span<const core::RecordedEvent> events,
                                               const core::ModelStore& store) {
  std::set<std::string> ids;
  for (const auto& e : events) {
    const schema::Aligned bytes(e.payload());
    core::result<std::string> id = std::string();
    if (e.type() == "PatternObserved") {
      auto p = decode<d::PatternObserved>(bytes, e);
      if (!p) return p.error();
      id = event_pattern_id((*p)->pattern_id(), e);
    } else if (e.type() == "PatternRetired") {
      auto p = decode<d::PatternRetired>(bytes, e);
      if (!p) return p.error();
      id = event_pattern_id((*p)->pattern_id(), e);
    } else {
      continue;
    }
    if (!id) return id.error();
    ids.insert(std::move(*id));
  }
  for (const auto& id : ids) {
    if (auto r = sync(store, id); !r) return r;
  }
  return {};
}

core::result<void> PatternsProjection::committed(const core::ModelStore& store,
                                                 core::Position position) {
  (void)store;
  (void)position;
  std::vector<Staged> staged = std::move(staged_);
  staged_.clear();
  std::vector<Staged> adds;
  for (auto& s : staged) {
    if (s.vector.empty()) {
      remove(s.pattern_id);
    } else {
      adds.push_back(std::move(s));
    }
  }
  return add(std::move(adds));
}

core::result<std::vector<PatternsProjection::Neighbour>> PatternsProjection::nearest(
    std::span<const float> query, std::string_view exclude_domain, std::string_view exclude_id,
    size_t k) const {
  if (query.size() != embedder_->dimensions()) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("a query of {} dimensions for an index of {}", query.size(),
                                        embedder_->dimensions()));
  }
  std::vector<Neighbour> out;
  if (k == 0) return out;
  // Held across the search so the keep-predicate reads members_ unlocked;
  // the writer never holds mu_ while it waits for the index.
  std::shared_lock lock(mu_);
  auto hits = index_.search(query, k, [&](int64_t id, const VectorIndex::Payload&) {
    auto it = members_.find(id);
    return it != members_.end() && it->second.domain != exclude_domain &&
           it->second.pattern_id != exclude_id;
  });
  if (!hits) return hits.error();
  for (const auto& h : *hits) {
    auto it = members_.find(h.id);
    if (it == members_.end()) continue;  // cannot happen: keep() refused unknown ids
    out.push_back({it->second.pattern_id, h.score});
  }
  return out;
}

size_t PatternsProjection::indexed() const {
  return index_.size();
}

core::result<json> get_pattern(const core::ModelStore& store, std::string_view id) {
  const std::string key = record_key(id);
  auto v = store.get(key);
  if (!v) return v.error();
  if (!v->has_value()) {
    return core::make_error(core::errc::not_found, fmt::format("no pattern '{}'", id));
  }
  return parse_json(**v, key);
}

core::result<std::vector<json>> recommend_patterns(const core::ModelStore& store,
                                                   std::string_view domain, size_t limit) {
  core::expect_may_block("a pattern recommendation");
  if (auto r = check_limit(limit); !r) return r.error();
  if (domain.empty()) {
    return core::make_error(core::errc::invalid_argument, "recommend needs a domain");
  }
  const std::string prefix = rank_prefix(domain);
  auto entries = store.scan(prefix, prefix, limit);
  if (!entries) return entries.error();
  std::vector<json> out;
  out.reserve(entries->size());
  for (const auto& [key, value] : *entries) {
    // <prefix><score key>/<id>
    if (key.size() <= prefix.size() + kScoreKeyChars + 1 ||
        key[prefix.size() + kScoreKeyChars] != '/') {
      return corrupt(fmt::format("bad rank key '{}'", key));
    }
    const std::string_view id = std::string_view(key).substr(prefix.size() + kScoreKeyChars + 1);
    auto record = get_pattern(store, id);
    if (!record) {
      if (record.error().code == core::errc::not_found) {
        return corrupt(fmt::format("rank key '{}' has no record", key));
      }
      return record.error();
    }
    out.push_back(std::move(*record));
  }
  return out;
}

core::result<std::vector<SimilarPattern>> similar_patterns(const PatternsProjection& projection,
                                                           const core::ModelStore& store,
                                                           std::string_view id, size_t limit,
                                                           std::optional<double> min_score) {
  core::expect_may_block("a similar-pattern search");
  if (auto r = check_limit(limit); !r) return r.error();
  if (min_score && !std::isfinite(*min_score)) {
    return core::make_error(core::errc::invalid_argument, "min_score must be a finite number");
  }
  auto record = get_pattern(store, id);
  if (!record) return record.error();
  const std::string domain = record->value("domain", "");
  const std::string key = vector_key(id);
  auto bytes = store.get(key);
  if (!bytes) return bytes.error();
  if (!bytes->has_value()) return corrupt(fmt::format("pattern {} has no '{}'", id, key));
  auto vector = decode_vector(**bytes, projection.embedder().dimensions(), key);
  if (!vector) return vector.error();
  std::vector<SimilarPattern> out;
  if (all_zero(*vector)) return out;  // no features: nothing is like it
  auto hits = projection.nearest(*vector, domain, id, limit);
  if (!hits) return hits.error();
  for (const auto& h : *hits) {
    if (min_score && h.score < *min_score) break;  // best first: the rest score lower
    auto other = get_pattern(store, h.pattern_id);
    if (!other) {
      if (other.error().code == core::errc::not_found) continue;
      return other.error();
    }
    // The index follows the store after each commit; between the two a
    // pattern may be retired in the store and still indexed.
    if (other->value("retired", false) || other->value("domain", "") == domain) continue;
    out.push_back({std::move(*other), static_cast<double>(h.score)});
  }
  return out;
}

}  // namespace engram::projections
