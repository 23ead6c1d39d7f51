#include "commands/bus.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>

#include "commands/errors.h"
#include "commands/idempotency.h"
#include "commands/ids.h"
#include "commands/render.h"
#include "commands/state_cache.h"
#include "core/flexjson.h"
#include "core/json.h"
#include "core/logging.h"
#include "core/sha256.h"
#include "core/thread_role.h"

namespace engram::commands {
namespace {

// Rebuilding a state reads its stream in pages of this many events.
constexpr size_t kRebuildPageEvents = 1000;

// The log's completions of one group commit come together; a bus thread
// handles up to this many of them per turn (core::SerialQueue), so a group
// wakes one bus thread rather than one per command.
constexpr size_t kCompletionsPerTurn = 64;

using Done = CommandBus::Done;

// One command from admission to its answer; retries share it.
struct Job {
  // As it arrived: JSON (json set) or typed (typed.command).
  std::optional<CommandRequest> json;
  TypedRequest typed;
  Done done;
  // Set by prepare(): the command as parsed, and what its execution needs.
  std::string stream;
  core::Uuid command_id;
  EventIds ids;
  std::string digest;    // the request's digest (hex); empty without an idempotency key
  std::string metadata;  // the first event's metadata; empty without an idempotency key
  int conflicts = 0;
  // After a lost race: the version the stream has at least. The log answers
  // a conflict only once that version is readable (core/log.h).
  uint64_t min_version = 0;
  uint64_t destroyed_generation = 0;  // ForgetSubject: the highest generation destroyed so far

  const CommandOrigin& origin() const {
    if (json) return *json;
    return typed;
  }
  const Principal& principal() const { return origin().principal; }
  bool keyed() const { return origin().idempotency_key.has_value(); }
};

// A decision ready to append.
struct Plan {
  uint64_t expected_version = 0;  // the version decided against
  std::vector<core::EventData> events;
  std::vector<nlohmann::json> data;      // each event's rendered data, for the outcome
  std::shared_ptr<const Snapshot> next;  // the state after the events
};

std::string request_digest(std::string_view type, const nlohmann::json& body) {
  core::Sha256 h;
  h.update("engram/request/v1");
  h.update(type);
  h.update("\0", 1);
  // dump() orders object keys, so equal bodies give equal bytes.
  h.update(body.dump());
  const core::Hash256 d = h.finish();
  return core::to_hex(d);
}

// The JSON form's body as an object: parsed here, unless the adapter did.
result<nlohmann::json> body_object(CommandRequest& request) {
  if (request.parsed_body) {
    if (!request.parsed_body->is_object()) {
      return malformed("", "malformed_json", "the body must be a JSON object");
    }
    return std::move(*request.parsed_body);
  }
  auto parsed = core::parse_json_object(request.body);
  if (!parsed) {
    const core::JsonError& e = parsed.error();
    if (e.code == core::JsonErrc::duplicate_key) {
      return malformed(e.pointer, "invalid_field", e.message);
    }
    return malformed("", "malformed_json", "the body must be a JSON object: " + e.message);
  }
  return std::move(*parsed);
}

// The JSON form core::ExpectedVersion::from_json reads.
nlohmann::json expected_json(const core::ExpectedVersion& e) {
  if (e.kind() == core::ExpectedVersion::Kind::exact) return e.version().value();
  return e.to_string();
}

// Whether a race can change the answer to an explicit expectation: "any" and
// "stream_exists" still hold after another append, so the bus re-decides.
bool strict(const std::optional<core::ExpectedVersion>& e) {
  return e && (e->kind() == core::ExpectedVersion::Kind::exact ||
               e->kind() == core::ExpectedVersion::Kind::no_stream);
}

EventView view_of(const core::RecordedEvent& e) {
  return EventView{e.type(), e.payload(), e.version().value()};
}

// The log's entity index made by this module's extractor; rebuilt (a whole
// read of the log) when another or none made it.
core::result<void> prepare_entity_index(core::Log& log) {
  auto name = log.entity_index_name();
  if (!name) return name.error();
  if (*name == kEntityIndexName) return {};
  core::logging::write(core::logging::Level::info, "rebuilding the entity index",
                       {{"from", *name}, {"to", std::string(kEntityIndexName)}});
  return log.rebuild_entity_index(kEntityIndexName,
                                  [](const core::RecordedEvent& e) { return entity_of(e); });
}

// The bus's working part. Commands in flight are counted, and the
// destructor waits for them, so the log's callbacks and the executor's tasks
// never outlive it.
class Engine {
 public:
  Engine(core::Log& log, core::KeyStore& keys, BusOptions options)
      : log_(log),
        keys_(keys),
        options_(std::move(options)),
        cache_(options_.state_cache_entries, options_.state_cache_bytes),
        ready_(prepare_entity_index(log)) {
    ENGRAM_ASSERT(options_.max_events_per_command >= 1);
    ENGRAM_ASSERT(options_.max_conflict_retries >= 0);
    if (options_.executor != nullptr) {
      executor_ = options_.executor;
    } else {
      pool_ = std::make_unique<core::ThreadPool>(core::ThreadPoolOptions{
          "bus", options_.threads, options_.max_queued_commands, core::ThreadRole::bus});
      executor_ = pool_.get();
    }
    completions_ = std::make_unique<core::SerialQueue>(*executor_, kCompletionsPerTurn);
    if (!ready_) {
      core::logging::write(core::logging::Level::error, "the command bus cannot start",
                           {{"cause", ready_.error().to_string()}});
    }
  }
  ~Engine();

  void submit(std::shared_ptr<Job> job);
  BusStats stats() const;
  const core::KeyStore& keys() const { return keys_; }
  const core::result<void>& ready() const { return ready_; }

 private:
  void start(const std::shared_ptr<Job>& job);
  result<void> prepare(Job& job);
  void attempt(const std::shared_ptr<Job>& job, bool catch_up);
  result<Plan> plan(Job& job, const Snapshot& snapshot, bool catch_up, const Needs& needs,
                    const std::optional<core::RecordedEvent>& entity_event);
  void appended(const std::shared_ptr<Job>& job, const std::shared_ptr<Plan>& plan,
                core::result<core::AppendResult> r);
  void decision_failed(const std::shared_ptr<Job>& job, CommandError error);
  result<std::optional<CommandOutcome>> find_replay(const Job& job);
  void replay_or_fail(const std::shared_ptr<Job>& job);
  result<std::shared_ptr<const Snapshot>> load(const std::string& stream, bool catch_up);
  result<std::shared_ptr<const Snapshot>> load_from_entities(
      const std::string& stream, std::span<const std::string_view> entities);
  result<std::optional<core::RecordedEvent>> latest_event(const std::string& stream,
                                                          std::string_view entity);
  // Answers the job and ends its time in flight: the last thing a path
  // does with the engine.
  void finish(Job& job, result<CommandOutcome> r);

  core::Log& log_;
  core::KeyStore& keys_;
  const BusOptions options_;
  StateCache cache_;
  const core::result<void> ready_;
  std::unique_ptr<core::ThreadPool> pool_;  // null with BusOptions::executor
  core::Executor* executor_ = nullptr;
  // Appends' outcomes, handed over by the log's thread (destroyed before
  // the pool it runs on).
  std::unique_ptr<core::SerialQueue> completions_;

  std::mutex mu_;
  std::condition_variable idle_;
  size_t in_flight_ = 0;
  bool stopping_ = false;

  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> retries_{0};
  std::atomic<uint64_t> replays_{0};
};

}  // namespace

Engine::~Engine() {
  ENGRAM_ASSERT_MSG(core::thread_role() != core::ThreadRole::bus,
                    "a CommandBus is destroyed on a bus thread: it would wait for itself");
  std::unique_lock lock(mu_);
  stopping_ = true;
  idle_.wait(lock, [&] { return in_flight_ == 0; });
  lock.unlock();
  if (pool_) pool_->stop();
}

void Engine::submit(std::shared_ptr<Job> job) {
  bool stopping = false;
  {
    std::lock_guard lock(mu_);
    stopping = stopping_;
    if (!stopping) ++in_flight_;
  }
  if (stopping) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    failed_.fetch_add(1, std::memory_order_relaxed);
    job->done(unavailable("shutting_down", "the command bus is stopping"));
    return;
  }
  if (!executor_->try_post([this, job] { start(job); })) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    finish(*job, overloaded("the command bus has as many commands waiting as it takes; retry "
                            "later"));
  }
}

void Engine::start(const std::shared_ptr<Job>& job) {
  if (!ready_) return finish(*job, from_log(ready_.error()));
  if (auto r = prepare(*job); !r) return finish(*job, r.error());
  if (job->keyed()) {
    auto replay = find_replay(*job);
    if (!replay) return finish(*job, replay.error());
    if (*replay) return finish(*job, std::move(**replay));
  }
  attempt(job, false);
}

result<void> Engine::prepare(Job& job) {
  const Principal& who = job.principal();
  const std::optional<std::string>& key = job.origin().idempotency_key;
  const std::string type(job.json ? std::string_view(job.json->type) : type_of(job.typed.command));
  const CommandSpec* spec = find_command(type);
  if (spec == nullptr) return unknown_command(fmt::format("no command \"{}\"", type));
  if (auto r = authorize_role(*spec, who); !r) return r.error();
  if (key && !valid_idempotency_key(*key)) {
    return malformed("", "invalid_idempotency_key", std::string(kIdempotencyKeyRule));
  }

  // Both forms go through the type's parser: JSON as sent, a typed command
  // as its to_json, so that one set of rules checks every field.
  nlohmann::json body;
  if (job.json) {
    auto parsed = body_object(*job.json);
    if (!parsed) return parsed.error();
    body = std::move(*parsed);
    if (key) job.digest = request_digest(type, body);
    if (const auto it = body.find("expected_version"); it != body.end()) {
      job.typed.expected_version = core::ExpectedVersion::from_json(*it);
      if (!job.typed.expected_version) {
        return malformed("/expected_version", "invalid_field",
                         fmt::format("/expected_version must be {}", core::kExpectedVersionHelp));
      }
      body.erase(it);
    }
  } else {
    body = to_json(job.typed.command);
    if (key) {
      nlohmann::json keyed_body = body;
      if (job.typed.expected_version) {
        keyed_body["expected_version"] = expected_json(*job.typed.expected_version);
      }
      job.digest = request_digest(type, keyed_body);
    }
  }
  job.command_id = key ? keyed_command_id(who.subject, *key) : core::Uuid::v7_now();

  const ParseContext pc{options_, job.command_id.to_string()};
  try {
    auto command = spec->parse(type, body, pc);
    if (!command) return command.error();
    job.typed.command = std::move(*command);
  } catch (const nlohmann::json::exception& e) {
    return malformed("", "malformed_json", e.what());
  }
  if (auto r = authorize(job.typed.command, who); !r) return r.error();
  job.stream = stream_of(job.typed.command);
  if (key) {
    job.ids = EventIds::keyed(who.subject, *key);
    auto metadata = core::json_to_flex({{"idempotency_key", *key}, {"request_digest", job.digest}});
    ENGRAM_ASSERT(metadata.has_value());
    job.metadata = std::move(*metadata);
  } else {
    job.ids = EventIds::fresh();
  }
  return {};
}

void Engine::attempt(const std::shared_ptr<Job>& job, bool catch_up) {
  core::expect_not_log_thread("CommandBus: deciding a command");
  const std::optional<core::ExpectedVersion>& expected = job->typed.expected_version;
  auto snapshot = load(job->stream, catch_up);
  if (!snapshot) return finish(*job, snapshot.error());
  if (expected && !expected->admits(core::StreamVersion((*snapshot)->version)) && !catch_up) {
    // The cache may trail a writer it did not see; only the log can say no.
    snapshot = load(job->stream, true);
    if (!snapshot) return finish(*job, snapshot.error());
  }
  if ((*snapshot)->version < job->min_version) {
    return finish(*job, internal("storage_error",
                                 fmt::format("{} reads version {} after the log reported {}",
                                             job->stream, (*snapshot)->version, job->min_version)));
  }
  const Needs needs = needs_of(job->typed.command);
  std::optional<core::RecordedEvent> entity_event;
  if (!needs.entity.empty()) {
    auto latest = latest_event(job->stream, needs.entity);
    if (!latest) return finish(*job, latest.error());
    if (*latest && (*latest)->version().value() > (*snapshot)->version && !catch_up) {
      // The entity moved past the cached state: decide against the stream
      // as the log has it, not against an entity newer than its state.
      job->min_version = (*latest)->version().value();
      return attempt(job, true);
    }
    entity_event = std::move(*latest);
  }
  auto planned = plan(*job, **snapshot, catch_up, needs, entity_event);
  if (!planned) return decision_failed(job, planned.error());
  auto p = std::make_shared<Plan>(std::move(*planned));
  const CommandOrigin& origin = job->origin();
  const core::AppendContext context{
      job->command_id, origin.causation_id,
      origin.correlation_id.is_nil() ? job->command_id : origin.correlation_id,
      origin.principal.subject};
  // The log calls back on its own thread: the outcome only crosses back to
  // the bus there (the job in flight keeps the engine alive).
  auto queued = log_.append_async(
      job->stream, core::ExpectedVersion::exact(core::StreamVersion(p->expected_version)),
      p->events, context, [this, job, p](core::result<core::AppendResult> r) {
        completions_->post(
            [this, job, p, r = std::move(r)]() mutable { appended(job, p, std::move(r)); });
      });
  if (!queued) finish(*job, from_log(queued.error()));
}

result<Plan> Engine::plan(Job& job, const Snapshot& snapshot, bool catch_up, const Needs& needs,
                          const std::optional<core::RecordedEvent>& entity_event) {
  const uint64_t version = snapshot.version;
  const std::optional<core::ExpectedVersion>& expected = job.typed.expected_version;
  if (expected && !expected->admits(core::StreamVersion(version))) {
    return conflict(
        "wrong_expected_version",
        fmt::format("{} is at version {}, expected {}", job.stream, version, expected->to_string()),
        version);
  }

  Context ctx(job.principal(), job.ids);
  std::shared_ptr<const Snapshot> agent_snapshot, project_snapshot;  // keep ctx's pointers alive
  if (!needs.agent_id.empty()) {
    auto s = load(stream_name(kAgentStreamPrefix, needs.agent_id), catch_up);
    if (!s) return s.error();
    agent_snapshot = std::move(*s);
    ctx.agent = &std::get<agent::State>(agent_snapshot->state);
  }
  if (!needs.project_id.empty()) {
    auto s = load(stream_name(kProjectStreamPrefix, needs.project_id), catch_up);
    if (!s) return s.error();
    project_snapshot = std::move(*s);
    ctx.project = &std::get<project::State>(project_snapshot->state);
  }
  if (entity_event) ctx.entity_event = view_of(*entity_event);
  if (needs.key == KeyUse::seal) {
    auto key = keys_.get_or_create(needs.key_owner);
    if (!key) return from_log(key.error());
    ctx.key = *key;
  } else if (needs.key == KeyUse::destroy) {
    // Before the append, so that the content is unreadable even if the
    // append then fails; a retry destroys nothing more and appends again.
    auto destroyed = keys_.destroy(needs.key_owner);
    if (!destroyed) return from_log(destroyed.error());
    job.destroyed_generation = std::max(job.destroyed_generation, *destroyed);
    ctx.destroyed_generation = job.destroyed_generation;
  }

  auto events = decide(snapshot.state, job.typed.command, ctx);
  if (!events) return events.error();
  ENGRAM_ASSERT(!events->empty() && events->size() <= options_.max_events_per_command);

  Plan p;
  p.expected_version = version;
  auto next = std::make_shared<Snapshot>(snapshot);
  const RenderContext rc{keys_};
  for (size_t i = 0; i < events->size(); ++i) {
    NewEvent& e = (*events)[i];
    const std::span<const uint8_t> payload(reinterpret_cast<const uint8_t*>(e.payload.data()),
                                           e.payload.size());
    ENGRAM_ASSERT_MSG(evolve(next->state, EventView{e.type, payload, next->version + 1}),
                      "a decision emitted an event its own evolve rejects");
    ++next->version;
    auto data = render_domain(e.type, payload, rc);
    ENGRAM_ASSERT(data.has_value());
    p.data.push_back(std::move(*data));

    core::EventData d;
    d.id = job.ids.at(i);
    d.entity = entity_of(job.stream, e.type, payload).value_or(std::string());
    d.type = std::move(e.type);
    d.schema_version = 1;
    d.payload_format = core::PayloadFormat::flatbuffer;
    d.payload = std::move(e.payload);
    if (i == 0) d.metadata = job.metadata;
    p.events.push_back(std::move(d));
  }
  p.next = std::move(next);
  return p;
}

void Engine::appended(const std::shared_ptr<Job>& job, const std::shared_ptr<Plan>& p,
                      core::result<core::AppendResult> r) {
  core::expect_not_log_thread("CommandBus: a command's completion");
  if (r) {
    if (!r->deduplicated) cache_.advance(job->stream, p->expected_version, p->next);
    CommandOutcome o;
    o.stream = job->stream;
    o.version = r->version.value();
    o.first_position = r->first.value();
    o.last_position = r->last.value();
    o.command_id = job->command_id;
    o.replayed = r->deduplicated;
    const uint64_t n = p->events.size();
    for (uint64_t i = 0; i < n; ++i) {
      o.events.push_back(WrittenEvent{o.first_position + i, o.version - n + 1 + i,
                                      p->events[i].type, p->events[i].id, std::move(p->data[i])});
    }
    return finish(*job, std::move(o));
  }
  const core::Error& e = r.error();
  if (e.code == core::errc::wrong_expected_version && !strict(job->typed.expected_version)) {
    if (job->conflicts < options_.max_conflict_retries) {
      ++job->conflicts;
      job->min_version = e.actual_version.value_or(0);
      retries_.fetch_add(1, std::memory_order_relaxed);
      // Re-deciding reads the log: on a thread of its own, not in the
      // completions' turn.
      return executor_->post([this, job] { attempt(job, true); });
    }
    return finish(*job, conflict("wrong_expected_version",
                                 fmt::format("{} kept moving: lost the race {} times", job->stream,
                                             job->conflicts + 1),
                                 e.actual_version));
  }
  if (e.code == core::errc::duplicate_id_conflict && job->keyed()) {
    // The same request, delivered twice, decided against different states:
    // the first one to land is the answer (read on a thread of its own).
    return executor_->post([this, job] { replay_or_fail(job); });
  }
  finish(*job, from_log(e));
}

void Engine::replay_or_fail(const std::shared_ptr<Job>& job) {
  auto replay = find_replay(*job);
  if (!replay) return finish(*job, replay.error());
  if (*replay) return finish(*job, std::move(**replay));
  finish(*job, internal("idempotency_lookup_failed",
                        "the log reported the event ids as taken but cannot find them"));
}

void Engine::decision_failed(const std::shared_ptr<Job>& job, CommandError error) {
  // A twin of this request may have landed since the lookup before deciding;
  // then its outcome, not this rejection, is the answer.
  if (job->keyed() && (error.kind == Failure::rule || error.kind == Failure::not_found ||
                       error.kind == Failure::conflict)) {
    auto replay = find_replay(*job);
    if (!replay) return finish(*job, replay.error());
    if (*replay) return finish(*job, std::move(**replay));
  }
  finish(*job, std::move(error));
}

result<std::optional<CommandOutcome>> Engine::find_replay(const Job& job) {
  auto found = log_.find_event(job.ids.at(0));
  if (!found) return from_log(found.error());
  if (!*found) return std::optional<CommandOutcome>();
  const core::RecordedEvent& first = **found;
  auto metadata = core::flex_to_json(first.metadata());
  bool same = false;
  if (metadata && metadata->is_object()) {
    const auto it = metadata->find("request_digest");
    same =
        it != metadata->end() && it->is_string() && it->get_ref<const std::string&>() == job.digest;
  }
  if (!same) {
    return conflict("idempotency_key_reused", "this Idempotency-Key was used for another request");
  }
  auto events = log_.read_all(first.position(), options_.max_events_per_command);
  if (!events) return from_log(events.error());
  CommandOutcome o;
  o.stream = std::string(first.stream());
  o.command_id = first.command_id();
  o.replayed = true;
  const RenderContext rc{keys_};
  for (const auto& e : *events) {
    if (e.command_id() != o.command_id || e.stream() != o.stream) break;
    o.events.push_back(WrittenEvent{e.position().value(), e.version().value(),
                                    std::string(e.type()), e.id(), render_data(e, rc).data});
  }
  ENGRAM_ASSERT(!o.events.empty());
  o.version = o.events.back().version;
  o.first_position = o.events.front().position;
  o.last_position = o.events.back().position;
  return std::optional<CommandOutcome>(std::move(o));
}

result<std::shared_ptr<const Snapshot>> Engine::load(const std::string& stream, bool catch_up) {
  std::shared_ptr<const Snapshot> cached = cache_.get(stream);
  if (cached && !catch_up) return cached;
  if (const auto entities = state_entities(stream); !entities.empty()) {
    return load_from_entities(stream, entities);
  }
  std::shared_ptr<Snapshot> fresh;  // made on the first event read, copied from the cached one
  for (;;) {
    const uint64_t from = (fresh ? fresh->version : cached ? cached->version : 0) + 1;
    auto page = log_.read_stream(stream, core::StreamVersion(from), kRebuildPageEvents,
                                 core::Direction::forward);
    if (!page) return from_log(page.error());
    if (page->empty()) break;
    if (!fresh) {
      fresh = cached ? std::make_shared<Snapshot>(*cached)
                     : std::make_shared<Snapshot>(Snapshot{0, *initial_state(stream)});
    }
    for (const auto& e : *page) {
      if (auto r = evolve(fresh->state, view_of(e)); !r) {
        return internal("corrupt_event", fmt::format("{} version {}: {}", stream,
                                                     e.version().value(), r.error().message));
      }
      fresh->version = e.version().value();
    }
  }
  if (!fresh) {
    if (cached) return cached;
    fresh = std::make_shared<Snapshot>(Snapshot{0, *initial_state(stream)});
  }
  cache_.refresh(stream, fresh);
  return std::shared_ptr<const Snapshot>(std::move(fresh));
}

result<std::shared_ptr<const Snapshot>> Engine::load_from_entities(
    const std::string& stream, std::span<const std::string_view> entities) {
  // The version is read first. An entity event past it means the stream
  // moved between the reads; the state would then mix two versions, so the
  // reads start over (the version only grows).
  for (int round = 0;; ++round) {
    auto version = log_.stream_version(stream);
    if (!version) return from_log(version.error());
    auto fresh = std::make_shared<Snapshot>(Snapshot{version->value(), *initial_state(stream)});
    std::vector<core::RecordedEvent> latest;
    bool moved = false;
    for (std::string_view entity : entities) {
      auto event = latest_event(stream, entity);
      if (!event) return event.error();
      if (!*event) continue;
      if ((*event)->version().value() > fresh->version) {
        moved = true;
        break;
      }
      latest.push_back(std::move(**event));
    }
    if (moved) {
      if (round < options_.max_conflict_retries) continue;
      return conflict("wrong_expected_version",
                      fmt::format("{} kept moving while its state was read", stream));
    }
    std::sort(latest.begin(), latest.end(), [](const auto& a, const auto& b) {
      return a.version().value() < b.version().value();
    });
    for (const auto& e : latest) {
      if (auto r = evolve(fresh->state, view_of(e)); !r) {
        return internal("corrupt_event", fmt::format("{} version {}: {}", stream,
                                                     e.version().value(), r.error().message));
      }
    }
    cache_.refresh(stream, fresh);
    return std::shared_ptr<const Snapshot>(std::move(fresh));
  }
}

result<std::optional<core::RecordedEvent>> Engine::latest_event(const std::string& stream,
                                                                std::string_view entity) {
  auto position = log_.latest_entity_event(stream, entity);
  if (!position) return from_log(position.error());
  if (!*position) return std::optional<core::RecordedEvent>();
  auto events = log_.read_all(**position, 1);
  if (!events) return from_log(events.error());
  if (events->empty() || events->front().position() != **position ||
      events->front().stream() != stream) {
    return internal("storage_error",
                    fmt::format("the entity index names position {} for {} of {}, which the "
                                "log does not hold",
                                position->value().value(), entity, stream));
  }
  return std::optional<core::RecordedEvent>(std::move(events->front()));
}

void Engine::finish(Job& job, result<CommandOutcome> r) {
  if (r) {
    ok_.fetch_add(1, std::memory_order_relaxed);
    if (r->replayed) replays_.fetch_add(1, std::memory_order_relaxed);
  } else {
    failed_.fetch_add(1, std::memory_order_relaxed);
  }
  Done done = std::move(job.done);
  done(std::move(r));
  std::lock_guard lock(mu_);
  if (--in_flight_ == 0) idle_.notify_all();
}

BusStats Engine::stats() const {
  const CacheStats c = cache_.stats();
  BusStats s;
  s.commands_ok = ok_.load(std::memory_order_relaxed);
  s.commands_failed = failed_.load(std::memory_order_relaxed);
  s.commands_refused = refused_.load(std::memory_order_relaxed);
  s.conflict_retries = retries_.load(std::memory_order_relaxed);
  s.replays = replays_.load(std::memory_order_relaxed);
  s.cache_hits = c.hits;
  s.cache_misses = c.misses;
  s.cache_entries = c.entries;
  s.cache_bytes = c.bytes;
  return s;
}

struct CommandBus::Impl {
  Impl(core::Log& log, core::KeyStore& keys, BusOptions options)
      : engine(log, keys, std::move(options)) {}
  Engine engine;
};

CommandBus::CommandBus(core::Log& log, core::KeyStore& keys, BusOptions options)
    : impl_(std::make_unique<Impl>(log, keys, std::move(options))) {}

CommandBus::~CommandBus() = default;

core::result<void> CommandBus::status() const {
  return impl_->engine.ready();
}

void CommandBus::execute(CommandRequest request, Done done) {
  auto job = std::make_shared<Job>();
  job->json = std::move(request);
  job->done = std::move(done);
  impl_->engine.submit(std::move(job));
}

void CommandBus::execute(TypedRequest request, Done done) {
  auto job = std::make_shared<Job>();
  job->typed = std::move(request);
  job->done = std::move(done);
  impl_->engine.submit(std::move(job));
}

namespace {

template <typename Request>
result<CommandOutcome> execute_and_wait(CommandBus& bus, Request request) {
  ENGRAM_ASSERT_MSG(core::thread_role() != core::ThreadRole::bus,
                    "CommandBus::execute_sync on a bus thread would wait for itself");
  core::expect_may_block("CommandBus::execute_sync");
  std::promise<result<CommandOutcome>> answer;
  auto future = answer.get_future();
  bus.execute(std::move(request),
              [&answer](result<CommandOutcome> r) { answer.set_value(std::move(r)); });
  return future.get();
}

}  // namespace

result<CommandOutcome> CommandBus::execute_sync(CommandRequest request) {
  return execute_and_wait(*this, std::move(request));
}

result<CommandOutcome> CommandBus::execute_sync(TypedRequest request) {
  return execute_and_wait(*this, std::move(request));
}

core::Uuid CommandBus::command_id_for(std::string_view subject, std::string_view idempotency_key) {
  return keyed_command_id(subject, idempotency_key);
}

const std::vector<std::string_view>& CommandBus::command_types() {
  static const std::vector<std::string_view> types = [] {
    std::vector<std::string_view> out;
    for (const auto& spec : command_specs()) out.push_back(spec.type);
    return out;
  }();
  return types;
}

bool CommandBus::is_domain_stream(std::string_view stream) {
  return commands::is_domain_stream(stream);
}

nlohmann::json CommandBus::render_event(const core::RecordedEvent& event) const {
  return render_event_json(event, RenderContext{impl_->engine.keys()});
}

BusStats CommandBus::stats() const {
  return impl_->engine.stats();
}

}  // namespace engram::commands
