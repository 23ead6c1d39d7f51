#include "adapters/audit/audit.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "commands/inspect.h"
#include "commands/render.h"
#include "core/base64.h"
#include "core/log_tree.h"
#include "core/merkle.h"
#include "core/thread_role.h"
#include "core/time.h"
#include "projections/audit.h"

namespace engram::audit {
namespace {

using core::Position;
using core::Uuid;

constexpr size_t kMaxTraceDepth = 256;
constexpr size_t kMaxProofDocumentBytes = 4 << 20;

json hashes_to_json(const std::vector<core::Hash256>& hashes) {
  json a = json::array();
  for (const auto& h : hashes) a.push_back(core::to_hex(h));
  return a;
}

std::optional<std::vector<core::Hash256>> hashes_from_json(const json& a) {
  if (!a.is_array() || a.size() > core::merkle::kMaxProofHashes) return std::nullopt;
  std::vector<core::Hash256> out;
  for (const auto& v : a) {
    core::Hash256 h{};
    if (!v.is_string() || !core::from_hex(v.get<std::string>(), h)) return std::nullopt;
    out.push_back(h);
  }
  return out;
}

core::result<core::RecordedEvent> read_event(const core::Log& log, Position p) {
  auto events = log.read_all(p, 1);
  if (!events) return events.error();
  if (events->empty() || events->front().position() != p) {
    return core::make_error(core::errc::not_found,
                            fmt::format("no event at position {}", p.value()));
  }
  return std::move(events->front());
}

json row(const Sources& s, const core::RecordedEvent& e) {
  return s.render(e);
}

core::result<std::vector<core::Checkpoint>> load_checkpoints(const std::filesystem::path& file) {
  auto cs = core::read_checkpoints(file);
  if (!cs && cs.error().code == core::errc::not_found) return std::vector<core::Checkpoint>{};
  return cs;
}

// The tree of one correlation, built from the events' command and causation ids.
class TraceBuilder {
 public:
  TraceBuilder(const Sources& sources, std::map<uint64_t, core::RecordedEvent> events)
      : sources_(sources), events_(std::move(events)) {
    for (const auto& [pos, e] : events_) {
      event_at_[e.id()] = pos;
      const Uuid key = e.command_id().is_nil() ? e.id() : e.command_id();
      auto [it, fresh] = groups_.try_emplace(key);
      if (fresh) order_.push_back(key);
      it->second.positions.push_back(pos);
      if (it->second.positions.size() == 1) it->second.cause = e.causation_id();
    }
    for (const Uuid& key : order_) {
      const Uuid cause = groups_[key].cause;
      if (!cause.is_nil() && event_at_.count(cause) > 0) {
        caused_by_event_[event_at_[cause]].push_back(key);
      } else if (!cause.is_nil() && cause != key && groups_.count(cause) > 0) {
        caused_by_command_[cause].push_back(key);
      } else {
        roots_.push_back(key);
      }
    }
  }

  json roots() {
    json out = json::array();
    for (const Uuid& key : roots_) out.push_back(group(key, 0));
    // A cycle (only a tampered log makes one) leaves groups unreached: show them as roots.
    for (const Uuid& key : order_) {
      if (rendered_.count(key) == 0) out.push_back(group(key, 0));
    }
    return out;
  }
  bool depth_cut() const { return depth_cut_; }

 private:
  struct Group {
    std::vector<uint64_t> positions;
    Uuid cause;
  };

  json group(const Uuid& key, size_t depth) {
    rendered_.insert(key);
    const Group& g = groups_.at(key);
    const core::RecordedEvent& first = events_.at(g.positions.front());
    json node;
    node["command_id"] = first.command_id().is_nil() ? json(nullptr) : json(key.to_string());
    node["caused_by"] = g.cause.is_nil() ? json(nullptr) : json(g.cause.to_string());
    node["actor"] = std::string(first.actor());
    node["stream"] = std::string(first.stream());
    json events = json::array();
    for (uint64_t pos : g.positions) {
      json r = row(sources_, events_.at(pos));
      r["caused"] = children(caused_by_event_[pos], depth);
      events.push_back(std::move(r));
    }
    node["events"] = std::move(events);
    node["caused"] = children(caused_by_command_[key], depth);
    return node;
  }

  json children(const std::vector<Uuid>& keys, size_t depth) {
    json out = json::array();
    for (const Uuid& k : keys) {
      if (rendered_.count(k) > 0) continue;
      if (depth + 1 >= kMaxTraceDepth) {
        depth_cut_ = true;
        continue;
      }
      out.push_back(group(k, depth + 1));
    }
    return out;
  }

  const Sources& sources_;
  std::map<uint64_t, core::RecordedEvent> events_;
  std::unordered_map<Uuid, uint64_t, core::UuidHash> event_at_;
  std::unordered_map<Uuid, Group, core::UuidHash> groups_;
  std::vector<Uuid> order_;  // groups by first position
  std::unordered_map<uint64_t, std::vector<Uuid>> caused_by_event_;
  std::unordered_map<Uuid, std::vector<Uuid>, core::UuidHash> caused_by_command_;
  std::vector<Uuid> roots_;
  std::unordered_set<Uuid, core::UuidHash> rendered_;
  bool depth_cut_ = false;
};

}  // namespace

core::result<json> history(const Sources& s, std::string_view stream, uint64_t from_version,
                           size_t limit) {
  if (limit == 0 || limit > kMaxHistoryEvents) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("limit must be 1..{}", kMaxHistoryEvents));
  }
  auto version = s.log.stream_version(stream);
  if (!version) return version.error();
  if (version->value() == 0) {
    return core::make_error(core::errc::not_found, fmt::format("no stream '{}'", stream));
  }
  json out;
  out["stream"] = std::string(stream);
  out["version"] = version->value();
  json events = json::array();
  uint64_t next = std::max<uint64_t>(from_version, 1);
  while (events.size() < limit && next <= version->value()) {
    auto page = s.log.read_stream(stream, core::StreamVersion(next), limit - events.size(),
                                  core::Direction::forward);
    if (!page) return page.error();
    if (page->empty()) break;
    for (const auto& e : *page) events.push_back(row(s, e));
    next = page->back().version().value() + 1;
  }
  out["truncated"] = next <= version->value();
  out["events"] = std::move(events);
  return out;
}

core::result<json> trace(const Sources& s, const Uuid& correlation) {
  const Position head = s.log.head().position;
  auto hits =
      projections::events_of_correlation(s.index, s.log, head, correlation, kMaxTraceEvents);
  if (!hits) return hits.error();
  if (hits->positions.empty()) {
    return core::make_error(core::errc::not_found,
                            fmt::format("no events of correlation {}", correlation.to_string()));
  }
  bool truncated = hits->truncated;
  std::map<uint64_t, core::RecordedEvent> events;
  std::deque<Uuid> to_expand;
  std::unordered_set<Uuid, core::UuidHash> expanded;
  auto take = [&](Position p) -> core::result<void> {
    if (events.count(p.value()) > 0) return {};
    auto e = read_event(s.log, p);
    if (!e) return e.error();
    to_expand.push_back(e->id());
    if (!e->command_id().is_nil()) to_expand.push_back(e->command_id());
    events.emplace(p.value(), std::move(*e));
    return {};
  };
  for (Position p : hits->positions) {
    if (auto r = take(p); !r) return r.error();
  }
  // Follow causation links out of the correlation (a saga that started its own).
  while (!to_expand.empty() && events.size() < kMaxTraceEvents) {
    const Uuid id = to_expand.front();
    to_expand.pop_front();
    if (!expanded.insert(id).second) continue;
    auto caused =
        projections::events_caused_by(s.index, s.log, head, id, kMaxTraceEvents - events.size());
    if (!caused) return caused.error();
    truncated = truncated || caused->truncated;
    for (Position p : caused->positions) {
      if (auto r = take(p); !r) return r.error();
    }
  }
  truncated = truncated || !to_expand.empty();
  const size_t count = events.size();
  TraceBuilder tree(s, std::move(events));
  json out;
  out["correlation_id"] = correlation.to_string();
  out["events"] = count;
  out["roots"] = tree.roots();
  out["truncated"] = truncated || tree.depth_cut();
  return out;
}

core::result<json> actor(const Sources& s, std::string_view actor, int64_t since_ns,
                         int64_t until_ns, Position after, size_t limit) {
  if (limit == 0 || limit > kMaxActorEvents) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("limit must be 1..{}", kMaxActorEvents));
  }
  if (since_ns > until_ns) {
    return core::make_error(core::errc::invalid_argument, "since is after until");
  }
  auto hits = projections::events_of_actor(s.index, s.log, s.log.head().position, actor, since_ns,
                                           until_ns, after, limit);
  if (!hits) return hits.error();
  json out;
  out["actor"] = std::string(actor);
  json events = json::array();
  for (Position p : hits->positions) {
    auto e = read_event(s.log, p);
    if (!e) return e.error();
    events.push_back(row(s, *e));
  }
  out["events"] = std::move(events);
  out["truncated"] = hits->truncated;
  out["next_cursor"] = hits->truncated && !hits->positions.empty()
                           ? json(hits->positions.back().value())
                           : json(nullptr);
  return out;
}

core::result<json> state(const Sources& s, std::string_view stream, Position at) {
  if (at > s.log.head().position) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("position {} is past the head ({})", at.value(),
                                        s.log.head().position.value()));
  }
  auto st = commands::state_at(s.log, stream, at);
  if (!st) return st.error();
  json out;
  out["stream"] = st->stream;
  out["at"] = at.value();
  out["version"] = st->version;
  out["position"] = st->position;
  out["recorded_at"] =
      st->position == 0 ? json(nullptr) : json(core::format_rfc3339_ns(st->recorded_at_ns));
  out["state"] = std::move(st->state);
  return out;
}

core::result<json> checkpoints(const Sources& s) {
  auto cs = load_checkpoints(s.checkpoints);
  if (!cs) return cs.error();
  json out;
  out["file"] = s.checkpoints.string();
  json list = json::array();
  for (const auto& c : *cs) list.push_back(json(c.to_json()));
  out["checkpoints"] = std::move(list);
  return out;
}

core::result<json> inclusion_proof(const Sources& s, Position position,
                                   std::optional<Position> tree_size) {
  auto cs = load_checkpoints(s.checkpoints);
  if (!cs) return cs.error();
  const core::Checkpoint* chosen = nullptr;
  for (const auto& c : *cs) {
    if (c.log_id != s.log.log_id()) continue;
    if (tree_size ? c.position == *tree_size : c.position >= position) chosen = &c;
  }
  if (chosen == nullptr) {
    return core::make_error(
        core::errc::invalid_argument,
        tree_size ? fmt::format("no signed checkpoint of tree size {}", tree_size->value())
                  : fmt::format("no signed checkpoint covers position {} yet", position.value()));
  }
  if (position.value() == 0 || position > chosen->position) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("position {} is not in the checkpoint of tree size {}",
                                        position.value(), chosen->position.value()));
  }
  if (chosen->position > s.log.head().position) {
    return core::make_error(core::errc::corruption,
                            fmt::format("the log ends at {}, before the checkpoint's position {}",
                                        s.log.head().position.value(), chosen->position.value()));
  }
  auto e = read_event(s.log, position);
  if (!e) return e.error();
  auto path = core::LogTree(s.log).inclusion_proof(position, chosen->position);
  if (!path) return path.error();
  // The server proves only what still holds: a log that no longer matches
  // the checkpoint gets an error, not a proof that would fail later.
  if (!core::merkle::verify_inclusion(position.value() - 1, chosen->position.value(),
                                      core::merkle::leaf_hash(e->hash()), *path,
                                      chosen->tree_root)) {
    return core::make_error(core::errc::corruption,
                            fmt::format("the log no longer matches the checkpoint of tree size {}",
                                        chosen->position.value()));
  }
  json out;
  out["format"] = "engram-inclusion-proof-v1";
  out["position"] = position.value();
  out["tree_size"] = chosen->position.value();
  out["event_hash"] = core::to_hex(e->hash());
  out["envelope"] = core::base64_encode(e->bytes());
  out["path"] = hashes_to_json(*path);
  out["checkpoint"] = json(chosen->to_json());
  return out;
}

core::result<json> consistency_proof(const Sources& s, Position old_size, Position new_size) {
  auto cs = load_checkpoints(s.checkpoints);
  if (!cs) return cs.error();
  auto find = [&](Position size) -> const core::Checkpoint* {
    for (const auto& c : *cs) {
      if (c.log_id == s.log.log_id() && c.position == size) return &c;
    }
    return nullptr;
  };
  const core::Checkpoint* old_cp = find(old_size);
  const core::Checkpoint* new_cp = find(new_size);
  for (auto [cp, size] : {std::pair{old_cp, old_size}, std::pair{new_cp, new_size}}) {
    if (cp == nullptr) {
      return core::make_error(core::errc::invalid_argument,
                              fmt::format("no signed checkpoint of tree size {}", size.value()));
    }
  }
  if (old_size.value() == 0 || old_size > new_size) {
    return core::make_error(core::errc::invalid_argument,
                            "the old tree size must be at least 1 and at most the new one");
  }
  auto path = core::LogTree(s.log).consistency_proof(old_size, new_size);
  if (!path) return path.error();
  if (!core::merkle::verify_consistency(old_size.value(), new_size.value(), old_cp->tree_root,
                                        new_cp->tree_root, *path)) {
    return core::make_error(core::errc::corruption,
                            fmt::format("the log no longer matches the checkpoints of tree sizes "
                                        "{} and {}",
                                        old_size.value(), new_size.value()));
  }
  json out;
  out["format"] = "engram-consistency-proof-v1";
  out["old"] = json(old_cp->to_json());
  out["new"] = json(new_cp->to_json());
  out["path"] = hashes_to_json(*path);
  return out;
}

json verify_proof(const json& proof, const std::optional<core::PublicKey>& trusted) {
  json out;
  out["ok"] = false;
  out["key_pinned"] = trusted.has_value();
  auto bad = [&](std::string problem) {
    out["problem"] = std::move(problem);
    return out;
  };
  if (!proof.is_object()) return bad("the proof is not a JSON object");
  const std::string format = proof.value("format", "");
  auto checkpoint = [&](const char* field) -> core::result<core::Checkpoint> {
    if (!proof.contains(field)) {
      return core::make_error(core::errc::invalid_argument, fmt::format("no \"{}\"", field));
    }
    auto c = core::Checkpoint::from_json(proof.at(field));
    if (!c) return c.error();
    out["key_id"] = c->key.id();
    if (!c->signature_valid()) {
      return core::make_error(core::errc::invalid_argument,
                              fmt::format("\"{}\": the signature does not verify", field));
    }
    if (trusted && c->key != *trusted) {
      return core::make_error(core::errc::invalid_argument,
                              fmt::format("\"{}\" is signed by key {}, not the trusted key {}",
                                          field, c->key.id(), trusted->id()));
    }
    return c;
  };
  auto path = hashes_from_json(proof.value("path", json()));
  if (!path) {
    return bad(fmt::format("\"path\" must be an array of at most {} hex SHA-256 hashes",
                           core::merkle::kMaxProofHashes));
  }

  if (format == "engram-inclusion-proof-v1") {
    out["kind"] = "inclusion";
    auto c = checkpoint("checkpoint");
    if (!c) return bad(c.error().message);
    if (!proof.contains("position") || !proof["position"].is_number_unsigned() ||
        !proof.contains("envelope") || !proof["envelope"].is_string()) {
      return bad("\"position\" (a number) and \"envelope\" (base64) are required");
    }
    const uint64_t position = proof["position"].get<uint64_t>();
    const auto& envelope = proof["envelope"].get_ref<const std::string&>();
    auto bytes = envelope.size() <= kMaxProofDocumentBytes ? core::base64_decode(envelope)
                                                           : std::nullopt;
    if (!bytes) return bad("\"envelope\" is not base64");
    auto e = core::RecordedEvent::decode(std::move(*bytes));
    if (!e) return bad("\"envelope\" is not an engram event");
    if (e->position().value() != position) {
      return bad(
          fmt::format("the envelope is of position {}, not {}", e->position().value(), position));
    }
    if (e->compute_hash() != e->hash()) return bad("the event's content does not match its hash");
    if (core::to_hex(e->hash()) != proof.value("event_hash", "")) {
      return bad("\"event_hash\" is not the event's hash");
    }
    if (proof.value("tree_size", uint64_t{0}) != c->position.value()) {
      return bad("\"tree_size\" differs from the checkpoint's position");
    }
    if (!core::merkle::verify_inclusion(position - 1, c->position.value(),
                                        core::merkle::leaf_hash(e->hash()), *path, c->tree_root)) {
      return bad(fmt::format("the path does not lead from event {} to the checkpoint's tree root",
                             position));
    }
    out["position"] = position;
    out["tree_size"] = c->position.value();
  } else if (format == "engram-consistency-proof-v1") {
    out["kind"] = "consistency";
    auto old_cp = checkpoint("old");
    if (!old_cp) return bad(old_cp.error().message);
    auto new_cp = checkpoint("new");
    if (!new_cp) return bad(new_cp.error().message);
    if (old_cp->log_id != new_cp->log_id) return bad("the checkpoints are of different logs");
    if (!core::merkle::verify_consistency(old_cp->position.value(), new_cp->position.value(),
                                          old_cp->tree_root, new_cp->tree_root, *path)) {
      return bad(
          fmt::format("the tree of {} events does not extend the tree of {}: the log was "
                      "rewritten between the checkpoints",
                      new_cp->position.value(), old_cp->position.value()));
    }
    out["old_tree_size"] = old_cp->position.value();
    out["new_tree_size"] = new_cp->position.value();
  } else {
    return bad("\"format\" is neither engram-inclusion-proof-v1 nor engram-consistency-proof-v1");
  }
  out["ok"] = true;
  return out;
}

core::result<json> verify(const Sources& s, const VerifyOptions& o) {
  core::expect_may_block("an audit verify");
  auto report = s.log.verify(o.from, o.to, o.progress, o.threads);
  if (!report) return report.error();
  json out;
  out["ok"] = report->ok();
  out["events_checked"] = report->events_checked;
  out["head_position"] = s.log.head().position.value();
  out["head_hash"] = core::to_hex(s.log.head().hash);
  out["whole_log"] = report->whole_log;
  if (report->whole_log) {
    out["tree_root"] = core::to_hex(report->tree_root);
    out["tree_nodes_checked"] = report->tree_nodes_checked;
    out["index_entries_checked"] = report->index_entries_checked;
    out["streams_checked"] = report->streams_checked;
  }
  if (!report->ok()) {
    out["first_bad_position"] = report->first_bad->value();
    out["problem"] = report->problem;
  }

  const std::filesystem::path file = o.checkpoints_file.value_or(s.checkpoints);
  std::error_code ec;
  if (!o.checkpoints_file && !std::filesystem::exists(file, ec)) return out;
  json cj;
  cj["file"] = file.string();
  std::optional<core::PublicKey> trusted = o.trusted;
  if (!trusted && !o.public_key_file.empty() && std::filesystem::exists(o.public_key_file, ec)) {
    auto k = core::load_public_key(o.public_key_file.string());
    if (!k) return k.error();
    trusted = *k;
  }
  cj["key_pinned"] = trusted.has_value();
  auto cs = core::read_checkpoints(file);
  if (!cs) return cs.error();
  cj["checked"] = 0;
  cj["ok"] = true;
  const core::Head head = s.log.head();
  auto failed = [&](size_t line, const core::Checkpoint& c, std::string problem) {
    cj["ok"] = false;
    cj["first_bad"] = json{{"line", line}, {"position", c.position.value()}, {"problem", problem}};
    out["ok"] = false;
  };
  for (size_t i = 0; i < cs->size(); ++i) {
    const core::Checkpoint& c = (*cs)[i];
    const size_t line = i + 1;
    if (!trusted) trusted = c.key;  // unpinned: the first checkpoint's key binds the rest
    if (!c.signature_valid()) {
      failed(line, c, "its signature does not verify");
      break;
    }
    if (c.key != *trusted) {
      failed(
          line, c,
          fmt::format("it is signed by key {}, not the trusted key {}", c.key.id(), trusted->id()));
      break;
    }
    if (c.log_id != s.log.log_id()) {
      failed(line, c, fmt::format("it is of another log ({})", c.log_id.to_string()));
      break;
    }
    if (c.position > head.position) {
      // A follower's view of a running server (a secondary open) is as of
      // its last catch-up, and the server may have signed since: when the
      // log has reached the checkpoint by now, it and every later one are
      // newer than what this verify walked, not evidence of a drop.
      if (auto now = s.log.catch_up(); now && now->position >= c.position) {
        cj["newer_than_verified"] = cs->size() - i;
        break;
      }
      failed(line, c,
             fmt::format("the log ends at position {}, before this checkpoint's {}: acknowledged "
                         "events were dropped",
                         head.position.value(), c.position.value()));
      break;
    }
    if (c.position.value() > 0) {
      auto e = read_event(s.log, c.position);
      if (!e) {
        failed(line, c, e.error().message);
        break;
      }
      if (e->hash() != c.head_hash) {
        failed(line, c,
               fmt::format("event {} is not the one checkpointed: the log was rewritten",
                           c.position.value()));
        break;
      }
    }
    auto root = core::LogTree(s.log).root(c.position);
    if (!root) {
      failed(line, c, root.error().message);
      break;
    }
    if (*root != c.tree_root) {
      failed(line, c,
             fmt::format("the first {} events are not those checkpointed (the Merkle root "
                         "differs): the log was rewritten",
                         c.position.value()));
      break;
    }
    cj["checked"] = cj["checked"].get<uint64_t>() + 1;
  }
  if (trusted) cj["key_id"] = trusted->id();
  out["checkpoints"] = std::move(cj);
  return out;
}

}  // namespace engram::audit
