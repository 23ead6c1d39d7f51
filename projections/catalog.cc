#include "projections/catalog.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <list>
#include <mutex>
#include <unordered_map>

#include "core/assert.h"
#include "core/thread_role.h"
#include "projections/decode.h"
#include "projections/key_part.h"
#include "schemas/domain/agents_generated.h"
#include "schemas/domain/projects_generated.h"
#include "schemas/domain/tasks_generated.h"
#include "schemas/payload.h"

namespace engram::projections {
namespace {

using nlohmann::json;
namespace d = engram::domain;

const char* kind_name(CatalogKind k) {
  switch (k) {
    case CatalogKind::agent:
      return "agent";
    case CatalogKind::project:
      return "project";
    case CatalogKind::task:
      return "task";
  }
  return "?";
}

std::string record_key(CatalogKind k, std::string_view id) {
  return fmt::format("{}/{}", kind_name(k), id);
}

std::string index_prefix(CatalogKind k, std::string_view field, std::string_view value) {
  return fmt::format("ix/{}/{}/{}/", kind_name(k), field, escape_key_part(value));
}

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

json strs(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  json out = json::array();
  if (v) {
    for (const auto* s : *v) out.push_back(s->str());
  }
  return out;
}

// The (field, value) pairs a record is indexed under, sorted, without
// duplicates (an agent may list a domain twice).
using IndexEntries = std::vector<std::pair<std::string, std::string>>;

IndexEntries index_entries(CatalogKind k, const json& r) {
  IndexEntries out;
  if (r.is_null()) return out;
  auto add = [&](const char* field, const char* key) {
    const auto it = r.find(key);
    if (it != r.end() && it->is_string()) out.emplace_back(field, it->get<std::string>());
  };
  switch (k) {
    case CatalogKind::agent:
      add("status", "status");
      if (const auto it = r.find("domains"); it != r.end() && it->is_array()) {
        for (const auto& dom : *it) out.emplace_back("domain", dom.get<std::string>());
      }
      break;
    case CatalogKind::project: {
      add("phase", "phase");
      const auto it = r.find("archived");
      const bool archived = it != r.end() && it->is_boolean() && it->get<bool>();
      out.emplace_back("archived", archived ? "true" : "false");
      break;
    }
    case CatalogKind::task:
      add("status", "status");
      add("project", "project_id");
      add("assignee", "assignee");
      add("domain", "domain");
      break;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ix/<kind>/<field>/<value>/<id>, built without fmt: it runs for every
// index change.
std::string index_key(CatalogKind k, std::string_view field, std::string_view value,
                      std::string_view id) {
  std::string out;
  out.reserve(4 + 8 + field.size() + value.size() + id.size() + 8);
  out += "ix/";
  out += kind_name(k);
  out += '/';
  out += field;
  out += '/';
  out += escape_key_part(value);
  out += '/';
  out += id;
  return out;
}

// A record as the cache and a batch hold it: decoded, with the index entries
// the store holds for it.
struct Decoded {
  json record;  // null: absent
  IndexEntries indexed;
};

// Least recently used records, bounded by a count. Only the worker's thread
// uses it (under State::mu).
class RecordCache {
 public:
  explicit RecordCache(size_t max_records) : max_records_(max_records) {}

  // Moves the record out (a batch changes it; it comes back once committed).
  std::optional<Decoded> take(const std::string& key) {
    const auto it = by_key_.find(key);
    if (it == by_key_.end()) return std::nullopt;
    Decoded out = std::move(it->second->second);
    lru_.erase(it->second);
    by_key_.erase(it);
    return out;
  }
  void put(std::string key, Decoded value) {
    if (max_records_ == 0) return;
    if (const auto it = by_key_.find(key); it != by_key_.end()) {
      lru_.erase(it->second);
      by_key_.erase(it);
    }
    lru_.emplace_front(key, std::move(value));
    by_key_.emplace(std::move(key), lru_.begin());
    while (lru_.size() > max_records_) {
      by_key_.erase(lru_.back().first);
      lru_.pop_back();
    }
    ENGRAM_ASSERT(by_key_.size() == lru_.size());
  }
  void clear() {
    by_key_.clear();
    lru_.clear();
  }
  size_t size() const { return lru_.size(); }

 private:
  const size_t max_records_;
  std::list<std::pair<std::string, Decoded>> lru_;  // most recent first
  std::unordered_map<std::string, std::list<std::pair<std::string, Decoded>>::iterator> by_key_;
};

}  // namespace

struct CatalogProjection::State {
  explicit State(size_t max_records) : cache(max_records) {}

  // Forgets everything: the cache mirrors no store any more.
  void reset() {
    cache.clear();
    pending.clear();
    store = nullptr;
  }

  // apply() and committed() run on one worker thread; the lock only guards
  // against an instance shared by two workers (each then resets the cache).
  mutable std::mutex mu;
  const core::ModelStore* store = nullptr;  // what the cache mirrors; null: nothing
  RecordCache cache;
  // What the last apply() wrote, for the cache once its commit succeeds.
  std::vector<std::pair<std::string, Decoded>> pending;
  uint64_t hits = 0;
  uint64_t misses = 0;
};

namespace {

// One apply(): every record it touches, decoded once, changed in memory and
// written once by finish().
class Applier {
 public:
  Applier(core::ModelStore::Batch& batch, CatalogProjection::State& state)
      : batch_(batch), state_(state) {}

  // Lets `change` edit a record (null when absent) and counts the event.
  // Creating requires `create`; editing a missing record is corruption of
  // the log's meaning and fails.
  template <typename Change>
  core::result<void> update(CatalogKind k, std::string_view id, const core::RecordedEvent& e,
                            bool create, const Change& change) {
    auto at = load(k, id);
    if (!at) return at.error();
    Touched& t = touched_[*at];
    json& r = t.now.record;
    if (r.is_null()) {
      if (!create) {
        return core::make_error(core::errc::corruption,
                                fmt::format("{} at position {} updates unknown '{}'", e.type(),
                                            e.position().value(), t.key));
      }
      r = json{{"created_position", e.position().value()}, {"events", 0}};
    }
    change(r);
    json& events = r["events"];
    events = events.get<uint64_t>() + 1;
    r["updated_position"] = e.position().value();
    return {};
  }

  // Writes each touched record and its net index changes (between the
  // record as the batch found it and as it leaves it), in key order: the
  // store's memtable inserts a run of ascending keys much faster than the
  // same keys in a random order (its skiplist reuses the last insert's
  // position). Every key is written at most once, so the order changes
  // nothing else.
  core::result<void> finish() {
    struct Write {
      std::string key;
      std::string value;
      bool del = false;
    };
    std::vector<Write> writes;
    writes.reserve(touched_.size() * 3);
    for (Touched& t : touched_) {
      if (t.now.record.is_null()) continue;  // looked up, never created
      IndexEntries after = index_entries(t.kind, t.now.record);
      const IndexEntries& before = t.now.indexed;
      IndexEntries gone;
      IndexEntries added;
      std::set_difference(before.begin(), before.end(), after.begin(), after.end(),
                          std::back_inserter(gone));
      std::set_difference(after.begin(), after.end(), before.begin(), before.end(),
                          std::back_inserter(added));
      for (const auto& [field, value] : gone) {
        writes.push_back(Write{index_key(t.kind, field, value, t.id), {}, true});
      }
      for (const auto& [field, value] : added) {
        writes.push_back(Write{index_key(t.kind, field, value, t.id), {}, false});
      }
      writes.push_back(Write{t.key, t.now.record.dump(), false});
      t.now.indexed = std::move(after);
    }
    std::sort(writes.begin(), writes.end(),
              [](const Write& a, const Write& b) { return a.key < b.key; });
    for (const Write& w : writes) {
      if (auto r = w.del ? batch_.del(w.key) : batch_.put(w.key, w.value); !r) return r;
    }
    return {};
  }

  // The records as finish() wrote them, for the cache after the commit.
  std::vector<std::pair<std::string, Decoded>> written() && {
    std::vector<std::pair<std::string, Decoded>> out;
    out.reserve(touched_.size());
    for (Touched& t : touched_) {
      if (!t.now.record.is_null()) out.emplace_back(std::move(t.key), std::move(t.now));
    }
    return out;
  }

 private:
  struct Touched {
    CatalogKind kind;
    std::string id;
    std::string key;
    Decoded now;  // indexed: as the store holds it until finish()
  };

  // The position in touched_ of a record, loaded on first touch from the
  // cache, else from the batch (which sees the store and any earlier
  // apply() into the same batch).
  core::result<size_t> load(CatalogKind k, std::string_view id) {
    std::string key = record_key(k, id);
    if (const auto it = position_.find(key); it != position_.end()) return it->second;
    Decoded d;
    if (auto cached = state_.cache.take(key)) {
      ++state_.hits;
      d = std::move(*cached);
    } else {
      ++state_.misses;
      auto stored = batch_.get(key);
      if (!stored) return stored.error();
      if (stored->has_value()) {
        d.record = json::parse(**stored, nullptr, false);
        if (d.record.is_discarded() || !d.record.is_object()) {
          return core::make_error(core::errc::corruption, fmt::format("bad record '{}'", key));
        }
        d.indexed = index_entries(k, d.record);
      }
    }
    position_.emplace(key, touched_.size());
    touched_.push_back(Touched{k, std::string(id), std::move(key), std::move(d)});
    return touched_.size() - 1;
  }

  core::ModelStore::Batch& batch_;
  CatalogProjection::State& state_;
  std::vector<Touched> touched_;
  std::unordered_map<std::string, size_t> position_;  // record key -> touched_ index
};

core::result<void> apply_one(Applier& a, const core::RecordedEvent& e) {
  const schema::Aligned bytes(e.payload());
  const std::string_view type = e.type();
  using K = CatalogKind;
#define ENGRAM_DECODE(T)                 \
  auto decoded = decode<d::T>(bytes, e); \
  if (!decoded) return decoded.error();  \
  const d::T* p = *decoded

  if (type == "AgentRegistered") {
    ENGRAM_DECODE(AgentRegistered);
    return a.update(K::agent, str(p->agent_id()), e, true, [&](json& r) {
      r["agent_id"] = str(p->agent_id());
      r["name"] = str(p->name());
      if (p->kind()) r["kind"] = str(p->kind());
      r["status"] = "active";
      r["capabilities"] = strs(p->capabilities());
      r["domains"] = strs(p->domains());
    });
  }
  if (type == "AgentAdapted") {
    ENGRAM_DECODE(AgentAdapted);
    return a.update(K::agent, str(p->agent_id()), e, false, [&](json& r) {
      r["capabilities"] = strs(p->capabilities());
      r["domains"] = strs(p->domains());
    });
  }
  if (type == "AgentSuspended" || type == "AgentRetired") {
    const bool retired = type == "AgentRetired";
    std::string id;
    if (retired) {
      ENGRAM_DECODE(AgentRetired);
      id = str(p->agent_id());
    } else {
      ENGRAM_DECODE(AgentSuspended);
      id = str(p->agent_id());
    }
    return a.update(K::agent, id, e, false,
                    [&](json& r) { r["status"] = retired ? "retired" : "suspended"; });
  }
  if (type == "ProjectCreated") {
    ENGRAM_DECODE(ProjectCreated);
    return a.update(K::project, str(p->project_id()), e, true, [&](json& r) {
      r["project_id"] = str(p->project_id());
      r["name"] = str(p->name());
      if (p->description()) r["description"] = str(p->description());
      r["phase"] = "research";
      r["archived"] = false;
      r["tasks"] = 0;
    });
  }
  if (type == "ProjectPhaseAdvanced") {
    ENGRAM_DECODE(ProjectPhaseAdvanced);
    return a.update(K::project, str(p->project_id()), e, false,
                    [&](json& r) { r["phase"] = d::EnumNameProjectPhase(p->to_phase()); });
  }
  if (type == "ProjectPhaseReverted") {
    ENGRAM_DECODE(ProjectPhaseReverted);
    return a.update(K::project, str(p->project_id()), e, false,
                    [&](json& r) { r["phase"] = d::EnumNameProjectPhase(p->to_phase()); });
  }
  if (type == "ProjectArchived") {
    ENGRAM_DECODE(ProjectArchived);
    return a.update(K::project, str(p->project_id()), e, false,
                    [&](json& r) { r["archived"] = true; });
  }
  if (type == "ResearchRequested") {
    ENGRAM_DECODE(ResearchRequested);
    if (auto r = a.update(K::project, str(p->project_id()), e, false,
                          [&](json& rec) { rec["tasks"] = rec.value("tasks", 0) + 1; });
        !r) {
      return r;
    }
    return a.update(K::task, str(p->task_id()), e, true, [&](json& r) {
      r["task_id"] = str(p->task_id());
      r["project_id"] = str(p->project_id());
      r["title"] = str(p->title());
      if (p->domain()) r["domain"] = str(p->domain());
      r["status"] = "requested";
      r["checkpoint"] = "none";
      r["tests"] = "none";
    });
  }
  // The remaining task events change the task's status (and a few fields).
  std::string id;
  std::function<void(json&)> change;
  if (type == "TaskAssigned") {
    ENGRAM_DECODE(TaskAssigned);
    id = str(p->task_id());
    const std::string agent = str(p->agent_id());
    change = [agent](json& r) {
      r["assignee"] = agent;
      r["status"] = "assigned";
    };
  } else if (type == "FindingsSubmitted") {
    ENGRAM_DECODE(FindingsSubmitted);
    id = str(p->task_id());
    change = [](json& r) { r["status"] = "findings_submitted"; };
  } else if (type == "CheckpointRequested") {
    ENGRAM_DECODE(CheckpointRequested);
    id = str(p->task_id());
    change = [](json& r) {
      r["status"] = "in_review";
      r["checkpoint"] = "pending";
    };
  } else if (type == "CheckpointApproved") {
    ENGRAM_DECODE(CheckpointApproved);
    id = str(p->task_id());
    change = [](json& r) {
      r["status"] = "approved";
      r["checkpoint"] = "approved";
    };
  } else if (type == "CheckpointRejected") {
    ENGRAM_DECODE(CheckpointRejected);
    id = str(p->task_id());
    change = [](json& r) {
      r["status"] = "assigned";
      r["checkpoint"] = "rejected";
      r["tests"] = "none";
    };
  } else if (type == "DevelopmentOpened") {
    ENGRAM_DECODE(DevelopmentOpened);
    id = str(p->task_id());
    change = [](json& r) { r["status"] = "in_development"; };
  } else if (type == "TestResultReported") {
    ENGRAM_DECODE(TestResultReported);
    id = str(p->task_id());
    const bool passed = p->passed();
    change = [passed](json& r) { r["tests"] = passed ? "passed" : "failed"; };
  } else if (type == "TaskCompleted") {
    ENGRAM_DECODE(TaskCompleted);
    id = str(p->task_id());
    change = [](json& r) { r["status"] = "completed"; };
  } else if (type == "TaskFailed") {
    ENGRAM_DECODE(TaskFailed);
    id = str(p->task_id());
    change = [](json& r) { r["status"] = "failed"; };
  } else {
    return {};  // a type this version does not read
  }
#undef ENGRAM_DECODE
  return a.update(K::task, id, e, false, change);
}

}  // namespace

std::vector<std::string> CatalogProjection::event_types() const {
  return {"AgentRegistered",      "AgentAdapted",       "AgentSuspended",
          "AgentRetired",         "ProjectCreated",     "ProjectPhaseAdvanced",
          "ProjectPhaseReverted", "ProjectArchived",    "ResearchRequested",
          "TaskAssigned",         "FindingsSubmitted",  "CheckpointRequested",
          "CheckpointApproved",   "CheckpointRejected", "DevelopmentOpened",
          "TestResultReported",   "TaskCompleted",      "TaskFailed"};
}

CatalogProjection::CatalogProjection(CatalogOptions options)
    : state_(std::make_unique<State>(options.cache_max_records)) {}

CatalogProjection::~CatalogProjection() = default;

core::result<core::Position> CatalogProjection::open(const core::ModelStore& store,
                                                     const std::filesystem::path& dir) {
  (void)dir;
  // A new worker: whatever the cache held may be another store's, or stale.
  std::lock_guard lock(state_->mu);
  state_->reset();
  return store.checkpoint();
}

core::result<void> CatalogProjection::apply(std::span<const core::RecordedEvent> events,
                                            core::ModelStore::Batch& batch) {
  std::lock_guard lock(state_->mu);
  State& s = *state_;
  if (s.store != &batch.store()) {
    s.reset();
    s.store = &batch.store();
  }
  // A previous apply() whose commit was never confirmed: its records are
  // not in the store, so they must not reach the cache.
  s.pending.clear();
  Applier a(batch, s);
  core::result<void> r;
  for (const auto& e : events) {
    r = apply_one(a, e);
    if (!r) break;
  }
  if (r) r = a.finish();
  if (!r) {
    // The records taken out of the cache are half changed: forget them all.
    s.reset();
    return r;
  }
  s.pending = std::move(a).written();
  return {};
}

core::result<void> CatalogProjection::committed(const core::ModelStore& store,
                                                core::Position position) {
  (void)position;
  std::lock_guard lock(state_->mu);
  State& s = *state_;
  if (s.store == &store) {
    for (auto& [key, record] : s.pending) s.cache.put(std::move(key), std::move(record));
  }
  s.pending.clear();
  return {};
}

CatalogProjection::CacheStats CatalogProjection::cache_stats() const {
  std::lock_guard lock(state_->mu);
  return CacheStats{state_->hits, state_->misses, state_->cache.size()};
}

const std::vector<std::string>& catalog_fields(CatalogKind kind) {
  static const std::vector<std::string> agent = {"status", "domain"};
  static const std::vector<std::string> project = {"phase", "archived"};
  static const std::vector<std::string> task = {"status", "project", "assignee", "domain"};
  switch (kind) {
    case CatalogKind::agent:
      return agent;
    case CatalogKind::project:
      return project;
    case CatalogKind::task:
      return task;
  }
  return agent;
}

core::result<std::optional<json>> get_catalog(const core::ModelStore& store, CatalogKind kind,
                                              std::string_view id) {
  auto v = store.get(record_key(kind, id));
  if (!v) return v.error();
  if (!v->has_value()) return std::optional<json>();
  json j = json::parse(**v, nullptr, false);
  if (j.is_discarded()) {
    return core::make_error(core::errc::corruption, "a catalog record is not JSON");
  }
  return std::optional<json>(std::move(j));
}

core::result<CatalogPage> list_catalog(const core::ModelStore& store, const CatalogQuery& q) {
  core::expect_may_block("a catalog scan");
  const auto& fields = catalog_fields(q.kind);
  for (const auto& [field, value] : q.filters) {
    if (std::find(fields.begin(), fields.end(), field) == fields.end()) {
      return core::make_error(core::errc::invalid_argument,
                              fmt::format("unknown filter '{}' for {}s", field, kind_name(q.kind)));
    }
  }
  const size_t limit = std::min(q.limit, kCatalogMaxPage);
  // The first filter picks the index to walk; the others are checked on the
  // records. Without filters the records themselves are walked.
  const std::string prefix = q.filters.empty()
                                 ? std::string(kind_name(q.kind)) + "/"
                                 : index_prefix(q.kind, q.filters[0].first, q.filters[0].second);
  std::string from = q.cursor.empty() ? prefix : prefix + q.cursor + std::string(1, '\0');
  CatalogPage page;
  size_t scanned = 0;
  while (page.items.size() < limit && scanned < kCatalogMaxScanned) {
    const size_t want = std::min(limit - page.items.size(), kCatalogMaxScanned - scanned);
    auto entries = store.scan(prefix, from, want);
    if (!entries) return entries.error();
    for (const auto& [key, value] : *entries) {
      ++scanned;
      const std::string id = key.substr(prefix.size());
      from = key + std::string(1, '\0');
      page.next_cursor = id;
      json record;
      if (q.filters.empty()) {
        record = json::parse(value, nullptr, false);
      } else {
        auto r = get_catalog(store, q.kind, id);
        if (!r) return r.error();
        if (!r->has_value()) continue;
        record = std::move(**r);
      }
      if (record.is_discarded()) {
        return core::make_error(core::errc::corruption, "a catalog record is not JSON");
      }
      const auto indexed = index_entries(q.kind, record);
      bool match = true;
      for (size_t i = 1; i < q.filters.size() && match; ++i) {
        match = std::binary_search(indexed.begin(), indexed.end(), q.filters[i]);
      }
      if (match) page.items.push_back(std::move(record));
    }
    if (entries->size() < want) {  // the end of the range: nothing behind it
      page.next_cursor.clear();
      return page;
    }
  }
  // A full page, or the scan budget spent: the cursor continues from here.
  return page;
}

}  // namespace engram::projections
