#include "commands/bus.h"

#include <fmt/format.h>

#include <atomic>
#include <future>

#include "commands/aggregates.h"
#include "commands/errors.h"
#include "commands/ids.h"
#include "commands/render.h"
#include "commands/state_cache.h"
#include "core/flexjson.h"
#include "core/sha256.h"

namespace engram::commands {
namespace {

// Rebuilding a state reads its stream in pages of this many events.
constexpr size_t kRebuildPageEvents = 1000;
// The longest Idempotency-Key accepted, in bytes.
constexpr size_t kMaxIdempotencyKeyBytes = 128;

using Done = CommandBus::Done;

// One request from validation to its answer; retries share it.
struct Job {
  CommandRequest request;
  Done done;
  AnyCommand command;
  std::string stream;
  std::optional<core::ExpectedVersion> expected;  // from the body
  core::Uuid command_id;
  EventIds ids;
  std::string digest;    // the request's digest (hex); empty without an Idempotency-Key
  std::string metadata;  // the first event's metadata; empty without an Idempotency-Key
  int conflicts = 0;
  // After a lost race: the version the stream has at least. The log answers
  // a conflict only once that version is readable (core/log.h).
  uint64_t min_version = 0;
  uint64_t destroyed_generation = 0;  // ForgetSubject: the highest generation destroyed so far

  bool keyed() const { return request.idempotency_key.has_value(); }
};

// A decision ready to append.
struct Plan {
  uint64_t expected_version = 0;  // the version decided against
  std::vector<core::EventData> events;
  std::vector<nlohmann::json> data;      // each event's rendered data, for the outcome
  std::shared_ptr<const Snapshot> next;  // the state after the events
};

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxIdempotencyKeyBytes) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

result<std::optional<core::ExpectedVersion>> parse_expected_version(nlohmann::json& body) {
  const auto it = body.find("expected_version");
  if (it == body.end()) return std::optional<core::ExpectedVersion>();
  std::optional<core::ExpectedVersion> expected;
  if (it->is_number_unsigned()) {  // the parser reads every integer >= 0 as unsigned
    expected = core::ExpectedVersion::exact(core::StreamVersion(it->get<uint64_t>()));
  } else if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    if (s == "any") expected = core::ExpectedVersion::any();
    if (s == "no_stream") expected = core::ExpectedVersion::no_stream();
    if (s == "stream_exists") expected = core::ExpectedVersion::stream_exists();
  }
  if (!expected) {
    return malformed("/expected_version", "invalid_field",
                     "/expected_version must be an integer >= 0, \"any\", \"no_stream\" or "
                     "\"stream_exists\"");
  }
  body.erase(it);
  return expected;
}

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

// Whether a race can change the answer to an explicit expectation: "any" and
// "stream_exists" still hold after another append, so the bus re-decides.
bool strict(const std::optional<core::ExpectedVersion>& e) {
  return e && (e->kind() == core::ExpectedVersion::Kind::exact ||
               e->kind() == core::ExpectedVersion::Kind::no_stream);
}

// The bus's working part, shared with the callbacks of appends in flight so
// that they stay valid whatever the order of teardown.
class Engine : public std::enable_shared_from_this<Engine> {
 public:
  Engine(core::Log& log, core::KeyStore& keys, BusOptions options)
      : log_(log),
        keys_(keys),
        options_(std::move(options)),
        cache_(options_.state_cache_entries, options_.state_cache_bytes) {
    ENGRAM_ASSERT(options_.max_events_per_command >= 1);
    ENGRAM_ASSERT(options_.max_conflict_retries >= 0);
  }

  void execute(CommandRequest request, Done done);
  BusStats stats() const;
  const core::KeyStore& keys() const { return keys_; }

 private:
  result<std::shared_ptr<Job>> prepare(CommandRequest& request);
  void attempt(const std::shared_ptr<Job>& job, bool catch_up);
  result<Plan> plan(Job& job, const Snapshot& snapshot, bool catch_up);
  void appended(const std::shared_ptr<Job>& job, const std::shared_ptr<Plan>& plan,
                core::result<core::AppendResult> r);
  void decision_failed(const std::shared_ptr<Job>& job, CommandError error);
  result<std::optional<CommandOutcome>> find_replay(const Job& job);
  result<std::shared_ptr<const Snapshot>> load(const std::string& stream, bool catch_up);
  void later(std::function<void()> fn);
  void finish(Job& job, result<CommandOutcome> r);

  core::Log& log_;
  core::KeyStore& keys_;
  const BusOptions options_;
  StateCache cache_;
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> retries_{0};
  std::atomic<uint64_t> replays_{0};
};

}  // namespace

void Engine::execute(CommandRequest request, Done done) {
  auto prepared = prepare(request);
  if (!prepared) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    done(prepared.error());
    return;
  }
  std::shared_ptr<Job> job = std::move(*prepared);
  job->request = std::move(request);
  job->done = std::move(done);
  if (job->keyed()) {
    auto replay = find_replay(*job);
    if (!replay) return finish(*job, replay.error());
    if (*replay) return finish(*job, std::move(**replay));
  }
  attempt(job, false);
}

result<std::shared_ptr<Job>> Engine::prepare(CommandRequest& request) {
  const CommandSpec* spec = find_command(request.type);
  if (spec == nullptr) {
    return unknown_command(fmt::format("no command \"{}\"", request.type));
  }
  if (!role_allows(*spec, request.principal)) {
    return forbidden("role_not_allowed", fmt::format("{} needs the role {} or admin", spec->type,
                                                     spec->review ? "reviewer" : "writer"));
  }
  const auto& key = request.idempotency_key;
  if (key && !valid_idempotency_key(*key)) {
    return malformed("", "invalid_idempotency_key",
                     fmt::format("an Idempotency-Key is 1..{} printable ASCII characters",
                                 kMaxIdempotencyKeyBytes));
  }
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return malformed("", "malformed_json", "the body must be a JSON object");
  }
  auto job = std::make_shared<Job>();
  if (key) job->digest = request_digest(request.type, body);
  auto expected = parse_expected_version(body);
  if (!expected) return expected.error();
  job->expected = *expected;
  job->command_id = key ? keyed_command_id(request.principal.subject, *key) : core::Uuid::v7_now();

  const ParseContext pc{options_, job->command_id.to_string()};
  try {
    auto command = spec->parse(request.type, body, pc);
    if (!command) return command.error();
    job->command = std::move(*command);
  } catch (const nlohmann::json::exception& e) {
    return malformed("", "malformed_json", e.what());
  }
  if (auto r = authorize(job->command, request.principal); !r) return r.error();
  job->stream = stream_of(job->command);
  if (key) {
    job->ids = EventIds::keyed(request.principal.subject, *key);
    auto metadata =
        core::json_to_flex({{"idempotency_key", *key}, {"request_digest", job->digest}});
    ENGRAM_ASSERT(metadata.has_value());
    job->metadata = std::move(*metadata);
  } else {
    job->ids = EventIds::fresh();
  }
  return job;
}

void Engine::attempt(const std::shared_ptr<Job>& job, bool catch_up) {
  auto snapshot = load(job->stream, catch_up);
  if (!snapshot) return finish(*job, snapshot.error());
  if (job->expected && !job->expected->admits(core::StreamVersion((*snapshot)->version)) &&
      !catch_up) {
    // The cache may trail a writer it did not see; only the log can say no.
    snapshot = load(job->stream, true);
    if (!snapshot) return finish(*job, snapshot.error());
  }
  if ((*snapshot)->version < job->min_version) {
    return finish(*job, internal("storage_error",
                                 fmt::format("{} reads version {} after the log reported {}",
                                             job->stream, (*snapshot)->version, job->min_version)));
  }
  auto planned = plan(*job, **snapshot, catch_up);
  if (!planned) return decision_failed(job, planned.error());
  auto p = std::make_shared<Plan>(std::move(*planned));
  const core::AppendContext context{
      job->command_id, job->request.causation_id,
      job->request.correlation_id.is_nil() ? job->command_id : job->request.correlation_id,
      job->request.principal.subject};
  auto self = shared_from_this();
  auto queued = log_.append_async(
      job->stream, core::ExpectedVersion::exact(core::StreamVersion(p->expected_version)),
      p->events, context,
      [self, job, p](core::result<core::AppendResult> r) { self->appended(job, p, std::move(r)); });
  if (!queued) finish(*job, from_log(queued.error()));
}

result<Plan> Engine::plan(Job& job, const Snapshot& snapshot, bool catch_up) {
  const uint64_t version = snapshot.version;
  if (job.expected && !job.expected->admits(core::StreamVersion(version))) {
    return conflict("wrong_expected_version",
                    fmt::format("{} is at version {}, expected {}", job.stream, version,
                                job.expected->to_string()),
                    version);
  }

  const Needs needs = needs_of(job.command);
  Context ctx(job.request.principal, job.ids);
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

  auto events = decide(snapshot.state, job.command, ctx);
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
    ENGRAM_ASSERT_MSG(evolve(next->state, e.type, payload).has_value(),
                      "a decision emitted an event its own evolve rejects");
    ++next->version;
    auto data = render_domain(e.type, payload, rc);
    ENGRAM_ASSERT(data.has_value());
    p.data.push_back(std::move(*data));

    core::EventData d;
    d.id = job.ids.at(i);
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
  if (e.code == core::errc::wrong_expected_version && !strict(job->expected)) {
    if (job->conflicts < options_.max_conflict_retries) {
      ++job->conflicts;
      job->min_version = e.actual_version.value_or(0);
      retries_.fetch_add(1, std::memory_order_relaxed);
      return later([self = shared_from_this(), job] { self->attempt(job, true); });
    }
    return finish(*job, conflict("wrong_expected_version",
                                 fmt::format("{} kept moving: lost the race {} times", job->stream,
                                             job->conflicts + 1),
                                 e.actual_version));
  }
  if (e.code == core::errc::duplicate_id_conflict && job->keyed()) {
    // The same request, delivered twice, decided against different states:
    // the first one to land is the answer.
    return later([self = shared_from_this(), job] {
      auto replay = self->find_replay(*job);
      if (!replay) return self->finish(*job, replay.error());
      if (*replay) return self->finish(*job, std::move(**replay));
      self->finish(*job, internal("idempotency_lookup_failed",
                                  "the log reported the event ids as taken but cannot find them"));
    });
  }
  finish(*job, from_log(e));
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
      if (auto r = evolve(fresh->state, e.type(), e.payload()); !r) {
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

void Engine::later(std::function<void()> fn) {
  if (options_.post) {
    options_.post(std::move(fn));
  } else {
    fn();
  }
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
}

BusStats Engine::stats() const {
  const CacheStats c = cache_.stats();
  BusStats s;
  s.commands_ok = ok_.load(std::memory_order_relaxed);
  s.commands_failed = failed_.load(std::memory_order_relaxed);
  s.conflict_retries = retries_.load(std::memory_order_relaxed);
  s.replays = replays_.load(std::memory_order_relaxed);
  s.cache_hits = c.hits;
  s.cache_misses = c.misses;
  s.cache_entries = c.entries;
  s.cache_bytes = c.bytes;
  return s;
}

struct CommandBus::Impl {
  std::shared_ptr<Engine> engine;
};

CommandBus::CommandBus(core::Log& log, core::KeyStore& keys, BusOptions options)
    : impl_(std::make_unique<Impl>(Impl{std::make_shared<Engine>(log, keys, std::move(options))})) {
}

CommandBus::~CommandBus() = default;

void CommandBus::execute(CommandRequest request, Done done) {
  impl_->engine->execute(std::move(request), std::move(done));
}

result<CommandOutcome> CommandBus::execute_sync(CommandRequest request) {
  std::promise<result<CommandOutcome>> answer;
  auto future = answer.get_future();
  execute(std::move(request),
          [&answer](result<CommandOutcome> r) { answer.set_value(std::move(r)); });
  return future.get();
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
  return render_event_json(event, RenderContext{impl_->engine->keys()});
}

BusStats CommandBus::stats() const {
  return impl_->engine->stats();
}

}  // namespace engram::commands
