#include "projections/catalog.h"

#include <fmt/format.h>

#include <functional>
#include <set>

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

std::string escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

std::string record_key(CatalogKind k, std::string_view id) {
  return fmt::format("{}/{}", kind_name(k), id);
}

std::string index_prefix(CatalogKind k, std::string_view field, std::string_view value) {
  return fmt::format("ix/{}/{}/{}/", kind_name(k), field, escape(value));
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

// The (field, value) pairs a record is indexed under.
std::set<std::pair<std::string, std::string>> index_entries(CatalogKind k, const json& r) {
  std::set<std::pair<std::string, std::string>> out;
  if (r.is_null()) return out;
  auto add = [&](const char* field, const char* key) {
    if (r.contains(key) && r[key].is_string()) out.emplace(field, r[key].get<std::string>());
  };
  switch (k) {
    case CatalogKind::agent:
      add("status", "status");
      for (const auto& dom : r.value("domains", json::array()))
        out.emplace("domain", dom.get<std::string>());
      break;
    case CatalogKind::project:
      add("phase", "phase");
      out.emplace("archived", r.value("archived", false) ? "true" : "false");
      break;
    case CatalogKind::task:
      add("status", "status");
      add("project", "project_id");
      add("assignee", "assignee");
      add("domain", "domain");
      break;
  }
  return out;
}

class Applier {
 public:
  explicit Applier(core::ModelStore::Batch& batch) : batch_(batch) {}

  // Loads a record (null when absent), lets `change` edit it, stores it and
  // its indexes. Creating requires `create`; editing a missing record is
  // corruption of the log's meaning and fails.
  core::result<void> update(CatalogKind k, const std::string& id, const core::RecordedEvent& e,
                            bool create, const std::function<void(json&)>& change) {
    const std::string key = record_key(k, id);
    auto stored = batch_.get(key);
    if (!stored) return stored.error();
    json before = stored->has_value() ? json::parse(**stored, nullptr, false) : json();
    if (before.is_discarded()) {
      return core::make_error(core::errc::corruption, fmt::format("bad record '{}'", key));
    }
    if (before.is_null() && !create) {
      return core::make_error(core::errc::corruption,
                              fmt::format("{} at position {} updates unknown '{}'", e.type(),
                                          e.position().value(), key));
    }
    json after =
        before.is_null() ? json{{"created_position", e.position().value()}, {"events", 0}} : before;
    change(after);
    after["events"] = after["events"].get<uint64_t>() + 1;
    after["updated_position"] = e.position().value();
    const auto old_ix = index_entries(k, before);
    const auto new_ix = index_entries(k, after);
    for (const auto& [field, value] : old_ix) {
      if (new_ix.count({field, value}) == 0) {
        if (auto r = batch_.del(index_prefix(k, field, value) + id); !r) return r;
      }
    }
    for (const auto& [field, value] : new_ix) {
      if (old_ix.count({field, value}) == 0) {
        if (auto r = batch_.put(index_prefix(k, field, value) + id, ""); !r) return r;
      }
    }
    return batch_.put(key, after.dump());
  }

 private:
  core::ModelStore::Batch& batch_;
};

template <typename T>
core::result<const T*> decode(const schema::Aligned& bytes, const core::RecordedEvent& e) {
  const T* t = schema::verified<T>(bytes);
  if (t == nullptr) {
    return core::make_error(core::errc::corruption, fmt::format("{} at position {} does not verify",
                                                                e.type(), e.position().value()));
  }
  return t;
}

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

core::result<void> CatalogProjection::apply(std::span<const core::RecordedEvent> events,
                                            core::ModelStore::Batch& batch) {
  Applier a(batch);
  for (const auto& e : events) {
    if (auto r = apply_one(a, e); !r) return r;
  }
  return {};
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
        match = indexed.count(q.filters[i]) > 0;
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
