#include "adapters/http/api.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "adapters/audit/audit.h"
#include "adapters/http/problem.h"
#include "adapters/http/queries.h"
#include "adapters/http/rate_limit.h"
#include "core/flexjson.h"
#include "core/logging.h"
#include "projections/catalog.h"
#include "projections/knowledge.h"
#include "projections/memories.h"
#include "projections/patterns.h"

namespace engram::http {
namespace {

using commands::Role;
using nlohmann::json;

// A catalog cursor is a record id (ids are at most 128 bytes).
constexpr size_t kMaxCursorBytes = 256;

// The method label of requests the server refused before parsing a method.
const std::string kNoMethod = "-";

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = dump(body);
  return r;
}

// %XX decoding of one path segment; nullopt on a bad escape or a NUL.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
    if (v == 0) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

struct Target {
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;
  bool ok = true;
};

Target split_target(std::string_view target) {
  Target t;
  const size_t q = target.find('?');
  t.path = std::string(target.substr(0, q));
  if (q == std::string_view::npos) return t;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto k = percent_decode(pair.substr(0, eq));
    auto v =
        percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!k || !v) {
      t.ok = false;
      return t;
    }
    t.query.emplace_back(std::move(*k), std::move(*v));
  }
  return t;
}

const std::pair<const char*, projections::CatalogKind> kCatalogRoutes[] = {
    {"agent", projections::CatalogKind::agent},
    {"project", projections::CatalogKind::project},
    {"task", projections::CatalogKind::task}};

// "/v1/agents" or "/v1/agents/{id}" (likewise projects, tasks): the kind's
// name, with the id in `id` (empty for the list).
std::optional<std::string> catalog_route(const std::string& path, std::string& id) {
  for (const auto& [name, kind] : kCatalogRoutes) {
    const std::string base = fmt::format("/v1/{}s", name);
    if (path == base) {
      id.clear();
      return std::string(name);
    }
    if (path.rfind(base + "/", 0) == 0 && path.size() > base.size() + 1) {
      auto decoded = percent_decode(std::string_view(path).substr(base.size() + 1));
      if (!decoded || decoded->find('/') != std::string::npos) return std::nullopt;
      id = std::move(*decoded);
      return std::string(name);
    }
  }
  return std::nullopt;
}

// "<prefix><id><suffix>" with a non-empty, percent-decoded id holding no '/'.
std::optional<std::string> id_route(const std::string& path, std::string_view prefix,
                                    std::string_view suffix) {
  if (path.size() <= prefix.size() + suffix.size() || path.rfind(prefix, 0) != 0 ||
      std::string_view(path).substr(path.size() - suffix.size()) != suffix) {
    return std::nullopt;
  }
  auto decoded = percent_decode(
      std::string_view(path).substr(prefix.size(), path.size() - prefix.size() - suffix.size()));
  if (!decoded || decoded->empty() || decoded->find('/') != std::string::npos) return std::nullopt;
  return decoded;
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_json_content_type(std::string_view ct) {
  const size_t semi = ct.find(';');
  std::string base(ct.substr(0, semi));
  base.erase(std::remove(base.begin(), base.end(), ' '), base.end());
  std::transform(base.begin(), base.end(), base.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return base == "application/json";
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  if (s.empty() || s.size() > 20) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

int status_of(commands::Failure f) {
  using F = commands::Failure;
  switch (f) {
    case F::malformed:
      return 400;
    case F::unknown_command:
    case F::not_found:
      return 404;
    case F::forbidden:
      return 403;
    case F::conflict:
      return 409;
    case F::rule:
      return 422;
    case F::overloaded:
    case F::unavailable:
      return 503;
    case F::internal:
      return 500;
  }
  return 500;
}

Problem problem_from_log(const core::Error& e) {
  Problem p;
  p.detail = e.message;
  p.code = core::errc_name(e.code);
  switch (e.code) {
    case core::errc::invalid_argument:
      p.status = 400;
      p.code = "invalid_field";
      break;
    case core::errc::wrong_expected_version:
      p.status = 409;
      p.actual_version = e.actual_version;
      break;
    case core::errc::duplicate_id_conflict:
      p.status = 409;
      break;
    case core::errc::overloaded:
      p.status = 503;
      p.retry_after_s = 1;
      break;
    case core::errc::read_only:
    case core::errc::shutting_down:
      p.status = 503;
      p.retry_after_s = 5;
      break;
    case core::errc::not_found:
      p.status = 404;
      break;
    default:
      p.status = 500;
      break;
  }
  return p;
}

// A read model's answer to a bad query or an unknown record.
Problem problem_from_query(const core::Error& e) {
  if (e.code == core::errc::invalid_argument) return {400, "bad_query", e.message, {}, {}, {}};
  if (e.code == core::errc::not_found) return {404, "not_found", e.message, {}, {}, {}};
  return problem_from_log(e);
}

// Memory content is for its owner and admins; others see it redacted.
void redact_memory(json& event, const commands::Principal& who) {
  const std::string stream = event.value("stream", "");
  if (stream.rfind("memory-", 0) != 0) return;
  if (who.has(Role::admin) && !who.agent_id) return;
  if (who.agent_id && stream == "memory-" + *who.agent_id) return;
  auto& data = event["data"];
  if (data.is_object() && data.contains("content")) {
    data["content"] = nullptr;
    data["content_redacted"] = true;
  }
}

// The event rows anywhere in an audit answer (nested in trace trees too),
// redacted as redact_memory does: an admin token scoped to an agent sees
// only that agent's memory content.
void redact_memories(json& j, const commands::Principal& who) {
  if (who.has(Role::admin) && !who.agent_id) return;
  if (j.is_object() && j.contains("data") && j.contains("stream") && j["stream"].is_string()) {
    redact_memory(j, who);
  }
  if (j.is_structured()) {
    for (auto& item : j.items()) redact_memories(item.value(), who);
  }
}

// An audit query's failure (adapters/audit/audit.h). A proof route's
// errc::corruption means the log no longer matches a signed checkpoint (or
// the tree nodes a proof needs are gone): 409 log_tampered. Otherwise as a
// read model's: 400 bad_query, 404 not_found, 503 overloaded (the audit
// index trails the log too far; Retry-After), 500 for storage errors and
// corruption.
Problem problem_from_audit(const core::Error& e, bool proof) {
  if (proof && e.code == core::errc::corruption)
    return {409, "log_tampered", e.message, {}, {}, {}};
  return problem_from_query(e);
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// A time bound of the audit actor route, as `engram audit actor` takes it:
// RFC 3339 UTC ("2026-01-02T03:04:05Z", with an optional fraction, cut to
// nanoseconds) or integer Unix nanoseconds. nullopt when malformed or
// outside int64 nanoseconds (1677..2262).
std::optional<int64_t> parse_time_ns(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  if (s.find_first_not_of("-0123456789") == std::string_view::npos) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
  }
  auto digits = [&](size_t at, size_t n) -> std::optional<unsigned> {
    unsigned v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  const auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2), hour = digits(11, 2),
             minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  size_t i = 19;
  int64_t fraction = 0;
  if (s[i] == '.') {
    size_t n = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++n) {
      if (n < 9) fraction = fraction * 10 + (s[i] - '0');  // finer digits are cut off
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) fraction *= 10;
  }
  if (i + 1 != s.size() || (s[i] != 'Z' && s[i] != 'z')) return std::nullopt;
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*year % 4 == 0 && *year % 100 != 0) || *year % 400 == 0;
  if (*month < 1 || *month > 12 || *day < 1 ||
      *day > kDays[*month - 1] + (*month == 2 && leap ? 1 : 0) || *hour > 23 || *minute > 59 ||
      *second > 59) {
    return std::nullopt;
  }
  const int64_t secs =
      days_from_civil(*year, *month, *day) * 86'400 + *hour * 3600 + *minute * 60 + *second;
  int64_t ns = 0;
  if (__builtin_mul_overflow(secs, int64_t{1'000'000'000}, &ns) ||
      __builtin_add_overflow(ns, fraction, &ns)) {
    return std::nullopt;
  }
  return ns;
}

// The audit routes: "/v1/audit/<name>", or "/v1/audit/<name>/{<param>}"
// taking the rest of the path (percent-decoded) as the parameter.
struct AuditRoute {
  std::string_view name;
  std::string_view param;  // empty: the route takes no path parameter
};
constexpr AuditRoute kAuditRoutes[] = {
    {"verify", {}},        {"checkpoints", {}},         {"consistency", {}},
    {"history", "stream"}, {"trace", "correlation_id"}, {"actor", "actor"},
    {"state", "stream"},   {"proof", "position"}};
constexpr std::string_view kAuditPrefix = "/v1/audit/";

const AuditRoute* audit_route(std::string_view path) {
  if (path.rfind(kAuditPrefix, 0) != 0) return nullptr;
  const std::string_view rest = path.substr(kAuditPrefix.size());
  for (const auto& r : kAuditRoutes) {
    if (r.param.empty() ? rest == r.name
                        : rest.size() > r.name.size() + 1 && rest.rfind(r.name, 0) == 0 &&
                              rest[r.name.size()] == '/') {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace

struct Api::Impl {
  core::Log& log;
  commands::CommandBus& bus;
  core::metrics::Registry& metrics;
  ApiOptions options;
  RateLimiter per_token;
  RateLimiter per_ip;
  std::atomic<int64_t> connections{0};
  core::metrics::Counter& rate_limited_ip;
  core::metrics::Counter& rate_limited_token;
  // Last member: destroyed (its thread joined) before what it renders with.
  Feed feed;

  Impl(core::Log& l, commands::CommandBus& b, core::metrics::Registry& m, ApiOptions o)
      : log(l),
        bus(b),
        metrics(m),
        options(std::move(o)),
        per_token(options.per_token_rps, options.per_token_burst, options.rate_limit_max_clients),
        per_ip(options.per_ip_rps, options.per_ip_burst, options.rate_limit_max_clients),
        rate_limited_ip(m.counter("engram_http_rate_limited_total",
                                  "Requests refused by a rate limit.", {{"scope", "ip"}})),
        rate_limited_token(m.counter("engram_http_rate_limited_total",
                                     "Requests refused by a rate limit.", {{"scope", "token"}})),
        feed(l, options.feed) {}

  // Everything one request carries through the handlers.
  struct Call {
    Request req;
    Target target;
    std::string route;
    std::string request_id;
    int64_t started_ns = 0;
    commands::Principal principal;
    Respond respond;
  };
  using CallPtr = std::shared_ptr<Call>;

  void finish(const CallPtr& c, Response r) {
    c->respond([this, c, r = std::move(r)]() mutable { return finalize(c, std::move(r)); });
  }

  // Like finish(), but the response is built by `make` on the I/O thread
  // (the caller is a log thread).
  void finish_later(const CallPtr& c, std::function<Response()> make) {
    c->respond([this, c, make = std::move(make)] { return finalize(c, make()); });
  }

  // Request id, metrics and the access log; runs on the connection's strand.
  Response finalize(const CallPtr& c, Response r) {
    r.headers.emplace_back("X-Request-Id", c->request_id);
    const double seconds = static_cast<double>(steady_ns() - c->started_ns) / 1e9;
    const std::string status = std::to_string(r.status);
    metrics
        .counter("engram_http_requests_total", "HTTP requests answered.",
                 {{"route", c->route}, {"method", c->req.method}, {"status", status}})
        .add();
    metrics
        .histogram("engram_http_request_duration_seconds", "HTTP request latency.",
                   {{"route", c->route}, {"status", status}},
                   core::metrics::latency_buckets_seconds())
        .observe(seconds);
    if (options.access_log && core::logging::enabled(core::logging::Level::info)) {
      core::logging::write(core::logging::Level::info, "request",
                           {{"request_id", c->request_id},
                            {"method", c->req.method},
                            {"path", c->target.path},
                            {"status", r.status},
                            {"duration_ms", seconds * 1e3},
                            {"remote", c->req.remote_ip},
                            {"subject", c->principal.subject}});
    }
    return r;
  }

  void fail(const CallPtr& c, Problem p) {
    finish(c, problem_response(p, c->target.path, c->request_id));
  }

  std::optional<std::string> query(const Call& c, std::string_view name) const {
    for (const auto& [k, v] : c.target.query) {
      if (k == name) return v;
    }
    return std::nullopt;
  }

  // Refuses query parameters the route does not know, so typos are loud.
  bool check_query(const CallPtr& c, std::initializer_list<std::string_view> allowed) {
    for (const auto& [k, v] : c->target.query) {
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        fail(c, {400, "bad_query", fmt::format("unknown query parameter '{}'", k), k, {}, {}});
        return false;
      }
    }
    return true;
  }

  std::optional<uint64_t> query_u64(const CallPtr& c, std::string_view name, uint64_t dflt,
                                    uint64_t min, uint64_t max) {
    auto v = query(*c, name);
    if (!v) return dflt;
    auto n = parse_u64(*v);
    if (!n || *n < min || *n > max) {
      fail(c, {400,
               "bad_query",
               fmt::format("'{}' must be an integer in {}..{}", name, min, max),
               std::string(name),
               {},
               {}});
      return std::nullopt;
    }
    return n;
  }

  bool require_role(const CallPtr& c, std::initializer_list<Role> roles) {
    for (Role r : roles) {
      if (c->principal.has(r)) return true;
    }
    fail(c, {403, "role_not_allowed", "the token's roles do not allow this", {}, {}, {}});
    return false;
  }

  // --- routes -------------------------------------------------------------

  void healthz(const CallPtr& c) { finish(c, json_response(200, {{"status", "ok"}})); }

  void readyz(const CallPtr& c) {
    const core::Health h = log.health();
    if (!h.writable) {
      Response r = json_response(503, {{"status", "not_ready"}, {"reason", h.reason}});
      r.headers.emplace_back("Retry-After", "5");
      finish(c, std::move(r));
      return;
    }
    finish(c, json_response(200, {{"status", "ready"}, {"head", log.head().position.value()}}));
  }

  void metrics_route(const CallPtr& c) {
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics.render();
    finish(c, std::move(r));
  }

  void openapi(const CallPtr& c) {
    Response r;
    r.content_type = "application/yaml";
    r.body = options.openapi_yaml;
    finish(c, std::move(r));
  }

  // An optional UUID header (nil when absent); nullopt after answering 400.
  std::optional<core::Uuid> uuid_header(const CallPtr& c, std::string_view name) {
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    const std::string_view h = c->req.header(lower);
    if (h.empty()) return core::Uuid{};
    auto u = core::Uuid::parse(h);
    if (!u) {
      fail(c,
           {400, "bad_header", fmt::format("{} must be a UUID", name), std::string(name), {}, {}});
      return std::nullopt;
    }
    return u;
  }
  std::optional<core::Uuid> correlation(const CallPtr& c) {
    return uuid_header(c, "X-Correlation-Id");
  }
  // What caused the command: the event (or command) it reacts to; audit's
  // trace follows these links.
  std::optional<core::Uuid> causation(const CallPtr& c) { return uuid_header(c, "X-Causation-Id"); }

  std::optional<std::optional<std::string>> idempotency_key(const CallPtr& c) {
    const std::string_view h = c->req.header("idempotency-key");
    if (h.empty()) return std::optional<std::string>();
    const bool printable = std::all_of(h.begin(), h.end(), [](char ch) {
      return static_cast<unsigned char>(ch) >= 0x21 && static_cast<unsigned char>(ch) <= 0x7e;
    });
    if (h.size() > options.max_idempotency_key_bytes || !printable) {
      fail(c, {400,
               "bad_header",
               fmt::format("Idempotency-Key must be 1..{} printable ASCII characters",
                           options.max_idempotency_key_bytes),
               "Idempotency-Key",
               {},
               {}});
      return std::nullopt;
    }
    return std::optional<std::string>(std::string(h));
  }

  // Content type, size and depth checks shared by the JSON routes.
  bool check_json_body(const CallPtr& c) {
    if (!is_json_content_type(c->req.header("content-type"))) {
      fail(c, {415, "unsupported_media_type", "the body must be application/json", {}, {}, {}});
      return false;
    }
    if (core::json_nesting_depth(c->req.body) > options.max_json_depth) {
      fail(c, {400,
               "malformed_json",
               fmt::format("JSON nests deeper than {} levels", options.max_json_depth),
               {},
               {},
               {}});
      return false;
    }
    return true;
  }

  void command(const CallPtr& c, std::string type) {
    if (!check_json_body(c)) return;
    auto corr = correlation(c);
    if (!corr) return;
    auto cause = causation(c);
    if (!cause) return;
    auto key = idempotency_key(c);
    if (!key) return;
    commands::CommandRequest req;
    req.causation_id = *cause;
    req.type = std::move(type);
    req.body = std::move(c->req.body);
    req.principal = c->principal;
    req.idempotency_key = std::move(*key);
    req.correlation_id = *corr;
    const std::string corr_header(c->req.header("x-correlation-id"));
    bus.execute(std::move(req),
                [this, c, corr_header](commands::result<commands::CommandOutcome> r) {
                  if (!r) {
                    const auto& e = r.error();
                    Problem p{status_of(e.kind), e.code, e.detail, e.field, e.actual_version, {}};
                    if (e.kind == commands::Failure::overloaded) p.retry_after_s = 1;
                    if (e.kind == commands::Failure::unavailable) p.retry_after_s = 5;
                    fail(c, std::move(p));
                    return;
                  }
                  auto outcome = std::make_shared<commands::CommandOutcome>(std::move(r).value());
                  finish_later(c, [c, outcome, corr_header] {
                    json body = outcome->to_json();
                    body.erase("replayed");
                    for (auto& ev : body["events"]) {
                      json full = {{"stream", outcome->stream}, {"data", std::move(ev["data"])}};
                      redact_memory(full, c->principal);
                      ev["data"] = std::move(full["data"]);
                    }
                    Response resp = json_response(201, body);
                    if (outcome->replayed) resp.headers.emplace_back("Idempotent-Replayed", "true");
                    if (!corr_header.empty())
                      resp.headers.emplace_back("X-Correlation-Id", corr_header);
                    return resp;
                  });
                });
  }

  std::optional<core::ExpectedVersion> parse_expected(const CallPtr& c, const json& v) {
    if (v.is_number_unsigned()) {
      return core::ExpectedVersion::exact(core::StreamVersion(v.get<uint64_t>()));
    }
    if (v.is_string()) {
      const auto s = v.get<std::string>();
      if (s == "any") return core::ExpectedVersion::any();
      if (s == "no_stream") return core::ExpectedVersion::no_stream();
      if (s == "stream_exists") return core::ExpectedVersion::stream_exists();
    }
    fail(c, {400,
             "invalid_field",
             "expected_version must be an integer >= 0 or \"any\", \"no_stream\", "
             "\"stream_exists\"",
             "/expected_version",
             {},
             {}});
    return std::nullopt;
  }

  void append_generic(const CallPtr& c, std::string stream) {
    if (commands::CommandBus::is_domain_stream(stream)) {
      fail(c, {403,
               "domain_stream",
               fmt::format("'{}' belongs to the domain; send a command instead", stream),
               {},
               {},
               {}});
      return;
    }
    if (!require_role(c, {Role::admin, Role::writer})) return;
    if (!check_json_body(c)) return;
    auto corr = correlation(c);
    if (!corr) return;
    auto cause = causation(c);
    if (!cause) return;
    auto key = idempotency_key(c);
    if (!key) return;
    json body;
    try {
      body = json::parse(c->req.body);
    } catch (const json::exception& e) {
      fail(c, {400, "malformed_json", e.what(), {}, {}, {}});
      return;
    }
    if (!body.is_object()) {
      fail(c, {400, "invalid_field", "the body must be a JSON object", "", {}, {}});
      return;
    }
    core::ExpectedVersion expected = core::ExpectedVersion::any();
    for (const auto& [k, v] : body.items()) {
      if (k == "expected_version") {
        auto e = parse_expected(c, v);
        if (!e) return;
        expected = *e;
      } else if (k != "events") {
        fail(c, {400, "unknown_field", fmt::format("unknown field '{}'", k), "/" + k, {}, {}});
        return;
      }
    }
    const auto events_it = body.find("events");
    if (events_it == body.end()) {
      fail(c, {400, "missing_field", "'events' is required", "/events", {}, {}});
      return;
    }
    if (!events_it->is_array() || events_it->empty() ||
        events_it->size() > options.max_events_per_request) {
      fail(c, {400,
               "invalid_field",
               fmt::format("'events' must be an array of 1..{} events",
                           options.max_events_per_request),
               "/events",
               {},
               {}});
      return;
    }
    std::vector<core::EventData> events;
    events.reserve(events_it->size());
    for (size_t i = 0; i < events_it->size(); ++i) {
      const json& e = (*events_it)[i];
      const std::string at = fmt::format("/events/{}", i);
      if (!e.is_object()) {
        fail(c, {400, "invalid_field", "an event must be an object", at, {}, {}});
        return;
      }
      core::EventData d;
      d.payload_format = core::PayloadFormat::flexbuffer;
      bool has_type = false;
      for (const auto& [k, v] : e.items()) {
        if (k == "type") {
          if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
            fail(c,
                 {400, "invalid_field", "'type' must be a non-empty string", at + "/type", {}, {}});
            return;
          }
          d.type = v.get<std::string>();
          has_type = true;
        } else if (k == "id") {
          auto u = v.is_string() ? core::Uuid::parse(v.get_ref<const std::string&>())
                                 : std::optional<core::Uuid>();
          if (!u || u->is_nil()) {
            fail(c, {400, "invalid_field", "'id' must be a non-nil UUID", at + "/id", {}, {}});
            return;
          }
          d.id = *u;
        } else if (k == "data") {
          auto f = core::json_to_flex(v, options.max_json_depth);
          if (!f) {
            fail(c, {400, "invalid_field", f.error().message, at + "/data", {}, {}});
            return;
          }
          d.payload = std::move(*f);
        } else if (k == "metadata") {
          if (!v.is_object()) {
            fail(c,
                 {400, "invalid_field", "'metadata' must be an object", at + "/metadata", {}, {}});
            return;
          }
          auto f = core::json_to_flex(v, options.max_json_depth);
          if (!f) {
            fail(c, {400, "invalid_field", f.error().message, at + "/metadata", {}, {}});
            return;
          }
          d.metadata = std::move(*f);
        } else {
          fail(c,
               {400, "unknown_field", fmt::format("unknown field '{}'", k), at + "/" + k, {}, {}});
          return;
        }
      }
      if (!has_type) {
        fail(c, {400, "missing_field", "'type' is required", at + "/type", {}, {}});
        return;
      }
      // A retry with the same Idempotency-Key derives the same ids, so the
      // log's dedupe recognises it.
      if (d.id.is_nil() && *key) {
        d.id = core::Uuid::from_name(
            fmt::format("engram/generic-event/v1\n{}\n{}\n{}", c->principal.subject, **key, i));
      }
      events.push_back(std::move(d));
    }
    core::AppendContext ctx;
    ctx.command_id = *key ? core::Uuid::from_name(fmt::format("engram/generic-command/v1\n{}\n{}",
                                                              c->principal.subject, **key))
                          : core::Uuid::v7_now();
    ctx.correlation_id = corr->is_nil() ? ctx.command_id : *corr;
    ctx.causation_id = *cause;
    ctx.actor = c->principal.subject;
    const std::string corr_header(c->req.header("x-correlation-id"));
    auto queued = log.append_async(
        stream, expected, events, ctx,
        [this, c, stream, corr_header](core::result<core::AppendResult> r) {
          if (!r) {
            fail(c, problem_from_log(r.error()));
            return;
          }
          finish_later(c, [stream, corr_header, a = *r] {
            Response resp = json_response(201, {{"stream", stream},
                                                {"version", a.version.value()},
                                                {"first_position", a.first.value()},
                                                {"last_position", a.last.value()},
                                                {"deduplicated", a.deduplicated}});
            if (!corr_header.empty()) resp.headers.emplace_back("X-Correlation-Id", corr_header);
            return resp;
          });
        });
    if (!queued) fail(c, problem_from_log(queued.error()));
  }

  json render(const core::RecordedEvent& e, const commands::Principal& who) {
    json j = bus.render_event(e);
    redact_memory(j, who);
    return j;
  }

  void read_stream(const CallPtr& c, const std::string& stream) {
    if (!check_query(c, {"from", "limit", "direction"})) return;
    if (c->principal.agent_id && stream.rfind("memory-", 0) == 0 &&
        stream != "memory-" + *c->principal.agent_id) {
      fail(c, {403, "not_own_memory", "an agent may read only its own memories", {}, {}, {}});
      return;
    }
    const std::string dir = query(*c, "direction").value_or("forward");
    if (dir != "forward" && dir != "backward") {
      fail(c, {400, "bad_query", "'direction' must be forward or backward", "direction", {}, {}});
      return;
    }
    const bool forward = dir == "forward";
    auto from = query_u64(c, "from", forward ? 1 : UINT64_MAX, 1, UINT64_MAX);
    if (!from) return;
    auto limit = query_u64(c, "limit", options.default_page_size, 1, options.max_page_size);
    if (!limit) return;
    auto version = log.stream_version(stream);
    if (!version) return fail(c, problem_from_log(version.error()));
    if (version->value() == 0) {
      fail(c, {404, "stream_not_found", fmt::format("no stream '{}'", stream), {}, {}, {}});
      return;
    }
    auto events = log.read_stream(stream, core::StreamVersion(*from), *limit,
                                  forward ? core::Direction::forward : core::Direction::backward);
    if (!events) return fail(c, problem_from_log(events.error()));
    json out = {{"stream", stream}, {"version", version->value()}};
    json list = json::array();
    for (const auto& e : *events) list.push_back(render(e, c->principal));
    json next = nullptr;
    if (!events->empty()) {
      const uint64_t last = events->back().version().value();
      if (forward && events->size() == *limit && last < version->value()) next = last + 1;
      if (!forward && last > 1) next = last - 1;
    }
    out["events"] = std::move(list);
    out["next"] = next;
    finish(c, json_response(200, out));
  }

  void read_log(const CallPtr& c) {
    if (!require_role(c, {Role::admin, Role::reader, Role::replicator})) return;
    if (!check_query(c, {"from_position", "limit"})) return;
    auto from = query_u64(c, "from_position", 1, 1, UINT64_MAX);
    if (!from) return;
    auto limit = query_u64(c, "limit", options.default_page_size, 1, options.max_page_size);
    if (!limit) return;
    const uint64_t head = log.head().position.value();
    auto events = log.read_all(core::Position(*from), *limit);
    if (!events) return fail(c, problem_from_log(events.error()));
    json list = json::array();
    for (const auto& e : *events) list.push_back(render(e, c->principal));
    json next = nullptr;
    if (!events->empty() && events->back().position().value() < head) {
      next = events->back().position().value() + 1;
    }
    finish(c, json_response(
                  200, {{"head", head}, {"events", std::move(list)}, {"next_position", next}}));
  }

  // The live feed: the log's events after `from` (or Last-Event-ID, which
  // wins, so an EventSource reconnecting with its original URL resumes
  // where it stopped) as Server-Sent Events, rendered and redacted exactly
  // like read_log's.
  void subscribe(const CallPtr& c) {
    if (!require_role(c, {Role::admin, Role::reader, Role::replicator})) return;
    if (!check_query(c, {"from", "types"})) return;
    auto from = query_u64(c, "from", 0, 0, UINT64_MAX);
    if (!from) return;
    std::string field = "from";
    if (const std::string_view last_id = c->req.header("last-event-id"); !last_id.empty()) {
      field = "Last-Event-ID";
      from = parse_u64(last_id);
      if (!from) {
        fail(c, {400,
                 "bad_header",
                 "Last-Event-ID must be a log position (an integer >= 0)",
                 field,
                 {},
                 {}});
        return;
      }
    }
    std::vector<std::string> types;
    if (auto list = query(*c, "types")) {
      auto parsed = parse_feed_types(*list);
      if (!parsed) {
        fail(c, {400, "bad_query", parsed.error().message, "types", {}, {}});
        return;
      }
      types = std::move(*parsed);
    }
    // A position the log never reached: the client follows another log (or
    // one restored from an older backup); resuming would skip events.
    const uint64_t head = log.head().position.value();
    if (*from > head) {
      fail(c, {400,
               field == "from" ? "bad_query" : "bad_header",
               fmt::format("{} ({}) is beyond the log's head ({})", field, *from, head),
               field,
               {},
               {}});
      return;
    }
    auto stream = feed.subscribe(
        core::Position(*from), std::move(types),
        [this, who = c->principal](const core::RecordedEvent& e) { return dump(render(e, who)); });
    if (!stream) {
      const bool busy = stream.error().code == core::errc::overloaded;
      fail(c, {503,
               busy ? "too_many_subscribers" : "shutting_down",
               stream.error().message,
               {},
               {},
               busy ? uint64_t{1} : uint64_t{5}});
      return;
    }
    Response r;
    r.content_type = "text/event-stream";
    r.headers.emplace_back("Cache-Control", "no-store");
    // Reverse proxies (nginx) must pass events on as they come.
    r.headers.emplace_back("X-Accel-Buffering", "no");
    r.stream = std::move(*stream);
    finish(c, std::move(r));
  }

  // --- read models ---------------------------------------------------------

  // Runs `query` once the projection has reached min_position (waiting at
  // most max_wait_ms without holding a thread), and answers with the
  // position the model reflects in X-Engram-Position.
  void unavailable(const CallPtr& c, std::string_view projection) {
    fail(c, {503,
             "read_model_unavailable",
             fmt::format("the {} read model is not running or is being rebuilt", projection),
             {},
             {},
             5});
  }

  void read_model(const CallPtr& c, std::string_view projection,
                  std::function<Response(const projections::Worker&)> query) {
    // Held for the whole query: a version swap may retire this worker
    // meanwhile, and its store stays readable while it is held.
    std::shared_ptr<projections::Worker> w =
        options.read_side ? options.read_side->serving(projection) : nullptr;
    if (w == nullptr) return unavailable(c, projection);
    auto min = query_u64(c, "min_position", 0, 0, UINT64_MAX);
    if (!min) return;
    auto answer = [this, c, w, query = std::move(query)](bool reached) {
      c->respond([this, c, w, query, reached] {
        const projections::WorkerStats st = w->stats();
        Response r;
        if (st.failed) {
          r = problem_response({503, "read_model_failed", st.failure, {}, {}, 5}, c->target.path,
                               c->request_id);
        } else if (!reached) {
          r = problem_response(
              {504,
               "position_not_reached",
               fmt::format("the read model is at position {}; min_position not reached within "
                           "{} ms",
                           st.position.value(), options.max_wait_ms),
               "min_position",
               {},
               {}},
              c->target.path, c->request_id);
        } else {
          r = query(*w);
        }
        r.headers.emplace_back("X-Engram-Position", std::to_string(st.position.value()));
        return finalize(c, std::move(r));
      });
    };
    w->when_reached(core::Position(*min), std::chrono::milliseconds(options.max_wait_ms),
                    std::move(answer));
  }

  void catalog(const CallPtr& c, projections::CatalogKind kind, const std::string& id) {
    std::vector<std::pair<std::string, std::string>> filters;
    if (id.empty()) {
      for (const auto& [k, v] : c->target.query) {
        if (k == "cursor" || k == "limit" || k == "min_position") continue;
        const auto& fields = projections::catalog_fields(kind);
        if (std::find(fields.begin(), fields.end(), k) == fields.end()) {
          fail(c, {400, "bad_query", fmt::format("unknown filter '{}'", k), k, {}, {}});
          return;
        }
        filters.emplace_back(k, v);
      }
    } else if (!check_query(c, {"min_position"})) {
      return;
    }
    auto limit = query_u64(c, "limit", options.default_page_size, 1, options.max_page_size);
    if (!limit) return;
    const std::string cursor = query(*c, "cursor").value_or("");
    if (cursor.size() > kMaxCursorBytes) {
      fail(c, {400,
               "bad_query",
               fmt::format("cursor is over {} bytes", kMaxCursorBytes),
               "cursor",
               {},
               {}});
      return;
    }
    read_model(
        c, "catalog",
        [kind, id, filters, cursor, limit = *limit, instance = c->target.path,
         rid = c->request_id](const projections::Worker& w) {
          if (!id.empty()) {
            auto r = projections::get_catalog(w.store(), kind, id);
            if (!r) return problem_response(problem_from_log(r.error()), instance, rid);
            if (!r->has_value()) {
              Problem p{404, "not_found", fmt::format("no such record '{}'", id), {}, {}, {}};
              return problem_response(p, instance, rid);
            }
            return json_response(200, **r);
          }
          projections::CatalogQuery q;
          q.kind = kind;
          q.filters = filters;
          q.cursor = cursor;
          q.limit = limit;
          auto page = projections::list_catalog(w.store(), q);
          if (!page) return problem_response(problem_from_log(page.error()), instance, rid);
          json out = {
              {"items", page->items},
              {"next_cursor", page->next_cursor.empty() ? json(nullptr) : json(page->next_cursor)}};
          return json_response(200, out);
        });
  }

  // --- knowledge, patterns, memories ---------------------------------------

  void knowledge_search(const CallPtr& c) {
    auto q = parse_knowledge_search(c->target.query);
    if (!q) return fail(c, q.error());
    read_model(c, "knowledge",
               [q = std::move(*q), instance = c->target.path,
                rid = c->request_id](const projections::Worker& w) {
                 const auto& k =
                     dynamic_cast<const projections::KnowledgeProjection&>(w.projection());
                 auto hits = projections::search_knowledge(k, w.store(), q);
                 if (!hits)
                   return problem_response(problem_from_query(hits.error()), instance, rid);
                 return json_response(200, render_knowledge_hits(*hits));
               });
  }

  void knowledge_item(const CallPtr& c, const std::string& id) {
    if (!check_query(c, {kMinPositionParam})) return;
    read_model(c, "knowledge",
               [id, instance = c->target.path, rid = c->request_id](const projections::Worker& w) {
                 auto item = projections::get_knowledge(w.store(), id);
                 if (!item)
                   return problem_response(problem_from_query(item.error()), instance, rid);
                 if (!item->has_value()) {
                   Problem p{404, "not_found", fmt::format("no knowledge item '{}'", id),
                             {},  {},          {}};
                   return problem_response(p, instance, rid);
                 }
                 return json_response(200, **item);
               });
  }

  void pattern_recommend(const CallPtr& c) {
    auto q = parse_recommend(c->target.query);
    if (!q) return fail(c, q.error());
    read_model(c, "patterns",
               [q = std::move(*q), instance = c->target.path,
                rid = c->request_id](const projections::Worker& w) {
                 auto items = projections::recommend_patterns(w.store(), q.domain, q.limit);
                 if (!items)
                   return problem_response(problem_from_query(items.error()), instance, rid);
                 return json_response(200, json{{"items", *items}});
               });
  }

  void pattern_item(const CallPtr& c, const std::string& id) {
    if (!check_query(c, {kMinPositionParam})) return;
    read_model(c, "patterns",
               [id, instance = c->target.path, rid = c->request_id](const projections::Worker& w) {
                 auto item = projections::get_pattern(w.store(), id);
                 if (!item)
                   return problem_response(problem_from_query(item.error()), instance, rid);
                 return json_response(200, *item);
               });
  }

  void pattern_similar(const CallPtr& c, const std::string& id) {
    auto q = parse_similar(c->target.query);
    if (!q) return fail(c, q.error());
    read_model(c, "patterns",
               [id, q = std::move(*q), instance = c->target.path,
                rid = c->request_id](const projections::Worker& w) {
                 const auto& p =
                     dynamic_cast<const projections::PatternsProjection&>(w.projection());
                 auto hits = projections::similar_patterns(p, w.store(), id, q.limit, q.min_score);
                 if (!hits)
                   return problem_response(problem_from_query(hits.error()), instance, rid);
                 return json_response(200, render_similar(*hits));
               });
  }

  void memory_search(const CallPtr& c) {
    if (!check_query(c, {kMinPositionParam})) return;
    if (!check_json_body(c)) return;
    json body = json::parse(c->req.body, nullptr, false);
    if (body.is_discarded()) {
      return fail(c, {400, "malformed_json", "the body is not valid JSON", {}, {}, {}});
    }
    auto serving = options.read_side ? options.read_side->serving("memories") : nullptr;
    if (serving == nullptr) return unavailable(c, "memories");
    const size_t dims =
        dynamic_cast<const projections::MemoriesProjection&>(serving->projection()).dimensions();
    auto q = parse_memory_search(body, c->principal, dims, unix_ms_now());
    if (!q) return fail(c, q.error());
    read_model(c, "memories",
               [q = std::move(*q), instance = c->target.path,
                rid = c->request_id](const projections::Worker& w) {
                 const auto& m =
                     dynamic_cast<const projections::MemoriesProjection&>(w.projection());
                 auto hits = projections::search_memories(m, w.store(), q);
                 if (!hits)
                   return problem_response(problem_from_query(hits.error()), instance, rid);
                 return json_response(200, render_memory_hits(*hits));
               });
  }

  // --- audit (admin) -------------------------------------------------------

  audit::Sources audit_sources() {
    return audit::Sources{log, options.audit_index ? options.audit_index() : nullptr,
                          options.audit_checkpoints};
  }

  // Runs an audit query and answers its JSON (200) or its problem. Like the
  // read-model queries it runs on the connection's I/O thread: a long one
  // (a verify) holds that thread while it runs, which max_audit_verify_events
  // bounds.
  void audit_answer(const CallPtr& c, bool proof,
                    std::function<core::result<json>(const audit::Sources&)> run) {
    c->respond([this, c, proof, run = std::move(run)] {
      auto answer = run(audit_sources());
      Response r;
      if (!answer) {
        r = problem_response(problem_from_audit(answer.error(), proof), c->target.path,
                             c->request_id);
      } else {
        redact_memories(*answer, c->principal);
        r = json_response(200, *answer);
      }
      return finalize(c, std::move(r));
    });
  }

  void bad_query(const CallPtr& c, std::string_view field, std::string detail) {
    fail(c, {400, "bad_query", std::move(detail), std::string(field), {}, {}});
  }

  void audit_verify(const CallPtr& c) {
    if (!check_query(c, {"from", "to"})) return;
    auto from = query_u64(c, "from", 1, 1, UINT64_MAX);
    if (!from) return;
    auto to = query_u64(c, "to", UINT64_MAX, 1, UINT64_MAX);
    if (!to) return;
    if (*from > *to) {
      return bad_query(c, "from", fmt::format("'from' ({}) is after 'to' ({})", *from, *to));
    }
    const uint64_t head = log.head().position.value();
    if (*from > std::max<uint64_t>(head, 1)) {
      return bad_query(c, "from",
                       fmt::format("'from' ({}) is beyond the log's head ({})", *from, head));
    }
    const uint64_t last = std::min(*to, head);
    const uint64_t count = last >= *from ? last - *from + 1 : 0;
    const uint64_t bound = options.max_audit_verify_events;
    if (count > bound) {
      return bad_query(c, "to",
                       fmt::format("a verify checks at most {} events (max_audit_verify_events); "
                                   "{}..{} holds {}: pass 'to' <= {} and verify the rest in "
                                   "further requests",
                                   bound, *from, last, count, *from + bound - 1));
    }
    audit::VerifyOptions o;
    o.from = core::Position(*from);
    o.to = core::Position(*to);
    o.threads = 1;
    o.public_key_file = options.audit_public_key;
    audit_answer(c, false, [o](const audit::Sources& s) { return audit::verify(s, o); });
  }

  void audit_checkpoints(const CallPtr& c) {
    if (!check_query(c, {})) return;
    audit_answer(c, false, [](const audit::Sources& s) { return audit::checkpoints(s); });
  }

  void audit_history(const CallPtr& c, std::string stream) {
    if (!check_query(c, {"from_version", "limit"})) return;
    auto from = query_u64(c, "from_version", 1, 1, UINT64_MAX);
    if (!from) return;
    auto limit = query_u64(c, "limit", 100, 1, audit::kMaxHistoryEvents);
    if (!limit) return;
    audit_answer(c, false,
                 [stream = std::move(stream), from = *from, limit = *limit](
                     const audit::Sources& s) { return audit::history(s, stream, from, limit); });
  }

  void audit_trace(const CallPtr& c, const std::string& id) {
    if (!check_query(c, {})) return;
    auto correlation = core::Uuid::parse(id);
    if (!correlation) {
      fail(c,
           {400, "invalid_field", "the correlation id must be a UUID", "correlation_id", {}, {}});
      return;
    }
    audit_answer(c, false,
                 [corr = *correlation](const audit::Sources& s) { return audit::trace(s, corr); });
  }

  std::optional<int64_t> query_time(const CallPtr& c, std::string_view name, int64_t dflt) {
    auto v = query(*c, name);
    if (!v) return dflt;
    auto ns = parse_time_ns(*v);
    if (!ns) {
      bad_query(c, name,
                fmt::format("'{}' must be an RFC 3339 UTC time (2026-01-02T03:04:05Z, optionally "
                            "with a fraction) or integer Unix nanoseconds",
                            name));
    }
    return ns;
  }

  void audit_actor(const CallPtr& c, std::string actor) {
    if (!check_query(c, {"since", "until", "limit", "cursor"})) return;
    auto since = query_time(c, "since", INT64_MIN);
    if (!since) return;
    auto until = query_time(c, "until", INT64_MAX);
    if (!until) return;
    if (*since > *until) return bad_query(c, "since", "'since' is after 'until'");
    auto limit = query_u64(c, "limit", 100, 1, audit::kMaxActorEvents);
    if (!limit) return;
    auto cursor = query_u64(c, "cursor", 0, 0, UINT64_MAX);
    if (!cursor) return;
    audit_answer(c, false,
                 [actor = std::move(actor), since = *since, until = *until, limit = *limit,
                  cursor = *cursor](const audit::Sources& s) {
                   return audit::actor(s, actor, since, until, core::Position(cursor), limit);
                 });
  }

  void audit_state(const CallPtr& c, std::string stream) {
    if (!check_query(c, {"at"})) return;
    auto version = log.stream_version(stream);
    if (!version) return fail(c, problem_from_log(version.error()));
    if (version->value() == 0) {
      fail(c, {404, "not_found", fmt::format("no stream '{}'", stream), {}, {}, {}});
      return;
    }
    const uint64_t head = log.head().position.value();
    auto at = query_u64(c, "at", head, 1, head);
    if (!at) return;
    audit_answer(c, false, [stream = std::move(stream), at = *at](const audit::Sources& s) {
      return audit::state(s, stream, core::Position(at));
    });
  }

  void audit_proof(const CallPtr& c, const std::string& arg) {
    if (!check_query(c, {"tree_size"})) return;
    auto position = parse_u64(arg);
    if (!position || *position == 0) {
      fail(c, {400, "invalid_field", "the position must be an integer >= 1", "position", {}, {}});
      return;
    }
    std::optional<core::Position> tree_size;
    if (query(*c, "tree_size")) {
      auto t = query_u64(c, "tree_size", 0, 1, UINT64_MAX);
      if (!t) return;
      tree_size = core::Position(*t);
    }
    audit_answer(c, true, [position = *position, tree_size](const audit::Sources& s) {
      return audit::inclusion_proof(s, core::Position(position), tree_size);
    });
  }

  void audit_consistency(const CallPtr& c) {
    if (!check_query(c, {"old", "new"})) return;
    for (const char* name : {"old", "new"}) {
      if (!query(*c, name)) return bad_query(c, name, fmt::format("'{}' is required", name));
    }
    auto old_size = query_u64(c, "old", 0, 1, UINT64_MAX);
    if (!old_size) return;
    auto new_size = query_u64(c, "new", 0, 1, UINT64_MAX);
    if (!new_size) return;
    if (*old_size > *new_size) {
      return bad_query(c, "old",
                       fmt::format("'old' ({}) is after 'new' ({})", *old_size, *new_size));
    }
    audit_answer(c, true, [o = *old_size, n = *new_size](const audit::Sources& s) {
      return audit::consistency_proof(s, core::Position(o), core::Position(n));
    });
  }

  void audit_query(const CallPtr& c, std::string arg) {
    const std::string_view name = std::string_view(c->route).substr(
        kAuditPrefix.size(), c->route.find('/', kAuditPrefix.size()) - kAuditPrefix.size());
    if (name == "verify") return audit_verify(c);
    if (name == "checkpoints") return audit_checkpoints(c);
    if (name == "consistency") return audit_consistency(c);
    if (name == "history") return audit_history(c, std::move(arg));
    if (name == "trace") return audit_trace(c, arg);
    if (name == "actor") return audit_actor(c, std::move(arg));
    if (name == "state") return audit_state(c, std::move(arg));
    return audit_proof(c, arg);
  }

  // --- dispatch ------------------------------------------------------------

  bool authenticate(const CallPtr& c) {
    if (!options.authenticate) {
      c->principal.subject = "anonymous-admin";
      c->principal.roles = {Role::admin};
      return true;
    }
    const std::string_view h = c->req.header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (h.size() <= kBearer.size() || h.substr(0, kBearer.size()) != kBearer) {
      fail(c, {401, "unauthorized", "a bearer token is required", {}, {}, {}});
      return false;
    }
    auto p = options.authenticate(h.substr(kBearer.size()));
    if (!p) {
      fail(c, {401,
               "unauthorized",
               fmt::format("token rejected ({}): {}", p.error().code, p.error().detail),
               {},
               {},
               {}});
      return false;
    }
    c->principal = std::move(*p);
    return true;
  }

  bool rate_limit(const CallPtr& c, RateLimiter& limiter, std::string_view key,
                  core::metrics::Counter& counter) {
    auto wait_s = limiter.take(key, steady_ns());
    if (!wait_s) return true;
    counter.add();
    fail(c, {429,
             "rate_limited",
             "too many requests; retry later",
             {},
             {},
             static_cast<uint64_t>(std::max(1.0, std::ceil(*wait_s)))});
    return false;
  }

  void dispatch(const CallPtr& c) {
    const std::string& path = c->target.path;
    const std::string& method = c->req.method;
    auto method_not_allowed = [&](std::string allow) {
      Problem p{405, "method_not_allowed", fmt::format("use {}", allow), {}, {}, {}};
      Response r = problem_response(p, path, c->request_id);
      r.headers.emplace_back("Allow", std::move(allow));
      finish(c, std::move(r));
    };
    if (!c->target.ok) {
      c->route = "other";
      fail(c, {400, "bad_query", "malformed query string", {}, {}, {}});
      return;
    }
    if (!rate_limit(c, per_ip, c->req.remote_ip, rate_limited_ip)) return;

    if (path == "/healthz" || path == "/readyz") {
      c->route = path;
      if (method != "GET") return method_not_allowed("GET");
      return path == "/healthz" ? healthz(c) : readyz(c);
    }

    constexpr std::string_view kCommands = "/v1/commands/";
    constexpr std::string_view kStreams = "/v1/streams/";
    std::string arg;
    if (path == "/metrics") {
      c->route = "/metrics";
    } else if (path == "/v1/openapi.yaml") {
      c->route = path;
    } else if (path == "/v1/log" || path == "/v1/subscribe") {
      c->route = path;
    } else if (path == "/v1/knowledge/search" || path == "/v1/patterns/recommend" ||
               path == "/v1/memories/search") {
      c->route = path;
    } else if (auto sid = id_route(path, "/v1/patterns/", "/similar")) {
      c->route = "/v1/patterns/{id}/similar";
      arg = std::move(*sid);
    } else if (auto pid = id_route(path, "/v1/patterns/", "")) {
      c->route = "/v1/patterns/{id}";
      arg = std::move(*pid);
    } else if (auto kid = id_route(path, "/v1/knowledge/", "")) {
      c->route = "/v1/knowledge/{id}";
      arg = std::move(*kid);
    } else if (auto kind = catalog_route(path, arg)) {
      c->route = arg.empty() ? fmt::format("/v1/{}s", *kind) : fmt::format("/v1/{}s/{{id}}", *kind);
    } else if (path.rfind(kCommands, 0) == 0 && path.size() > kCommands.size()) {
      c->route = "/v1/commands/{type}";
      arg = path.substr(kCommands.size());
    } else if (const AuditRoute* audit = audit_route(path)) {
      c->route = fmt::format("{}{}", kAuditPrefix, audit->name);
      if (!audit->param.empty()) {
        c->route += fmt::format("/{{{}}}", audit->param);
        auto decoded = percent_decode(
            std::string_view(path).substr(kAuditPrefix.size() + audit->name.size() + 1));
        if (!decoded) {
          fail(c, {400,
                   "invalid_field",
                   fmt::format("malformed {} in the path", audit->param),
                   std::string(audit->param),
                   {},
                   {}});
          return;
        }
        arg = std::move(*decoded);
      }
    } else if (path.rfind(kStreams, 0) == 0 && path.size() > kStreams.size()) {
      c->route = "/v1/streams/{stream}";
      auto decoded = percent_decode(std::string_view(path).substr(kStreams.size()));
      if (!decoded) {
        fail(c, {400, "invalid_field", "malformed stream name in the path", "stream", {}, {}});
        return;
      }
      arg = std::move(*decoded);
    } else {
      c->route = "other";
      fail(c, {404, "not_found", fmt::format("no route for {}", path), {}, {}, {}});
      return;
    }

    if (c->route == "/v1/openapi.yaml") {
      if (method != "GET") return method_not_allowed("GET");
      return openapi(c);
    }
    if (!authenticate(c)) return;
    if (!rate_limit(c, per_token, c->principal.subject, rate_limited_token)) return;

    if (c->route == "/metrics") {
      if (method != "GET") return method_not_allowed("GET");
      if (!require_role(c, {Role::admin, Role::reader, Role::replicator})) return;
      return metrics_route(c);
    }
    if (c->route == "/v1/log") {
      if (method != "GET") return method_not_allowed("GET");
      return read_log(c);
    }
    if (c->route == "/v1/subscribe") {
      if (method != "GET") return method_not_allowed("GET");
      return subscribe(c);
    }
    if (c->route == "/v1/memories/search") {
      if (method != "POST") return method_not_allowed("POST");
      return memory_search(c);
    }
    if (c->route == "/v1/knowledge/search" || c->route == "/v1/knowledge/{id}" ||
        c->route == "/v1/patterns/recommend" || c->route == "/v1/patterns/{id}" ||
        c->route == "/v1/patterns/{id}/similar") {
      if (method != "GET") return method_not_allowed("GET");
      if (c->route == "/v1/knowledge/search") return knowledge_search(c);
      if (c->route == "/v1/knowledge/{id}") return knowledge_item(c, arg);
      if (c->route == "/v1/patterns/recommend") return pattern_recommend(c);
      if (c->route == "/v1/patterns/{id}") return pattern_item(c, arg);
      return pattern_similar(c, arg);
    }
    for (const auto& [name, kind] : kCatalogRoutes) {
      if (c->route == fmt::format("/v1/{}s", name) ||
          c->route == fmt::format("/v1/{}s/{{id}}", name)) {
        if (method != "GET") return method_not_allowed("GET");
        return catalog(c, kind, arg);
      }
    }
    if (c->route.rfind(kAuditPrefix, 0) == 0) {
      if (method != "GET") return method_not_allowed("GET");
      if (!require_role(c, {Role::admin})) return;
      return audit_query(c, std::move(arg));
    }
    if (c->route == "/v1/commands/{type}") {
      if (method != "POST") return method_not_allowed("POST");
      return command(c, std::move(arg));
    }
    if (method == "POST") return append_generic(c, std::move(arg));
    if (method == "GET") return read_stream(c, arg);
    return method_not_allowed("GET, POST");
  }
};

Api::Api(core::Log& log, commands::CommandBus& bus, core::metrics::Registry& metrics,
         ApiOptions options)
    : impl_(std::make_unique<Impl>(log, bus, metrics, std::move(options))) {
  Impl* s = impl_.get();
  auto& m = metrics;
  m.gauge_fn("engram_http_connections", "Open HTTP connections.",
             [s] { return static_cast<double>(s->connections.load()); });
  core::Log* l = &log;
  m.counter_fn("engram_log_append_requests_total", "Append requests the log accepted.",
               [l] { return static_cast<double>(l->stats().append_requests); });
  m.counter_fn("engram_log_events_appended_total", "Events written to the log.",
               [l] { return static_cast<double>(l->stats().events_appended); });
  m.counter_fn("engram_log_deduplicated_total", "Appends answered from the dedupe index.",
               [l] { return static_cast<double>(l->stats().deduplicated_requests); });
  m.counter_fn("engram_log_groups_committed_total", "Write groups committed.",
               [l] { return static_cast<double>(l->stats().groups_committed); });
  m.histogram_fn("engram_log_group_size", "Append requests per committed group.",
                 [l] { return l->stats().group_requests; });
  m.histogram_fn("engram_log_fsync_duration_seconds", "WAL sync latency.",
                 [l] { return l->stats().sync_seconds; });
  m.gauge_fn("engram_log_queue_depth", "Appends waiting for the writer.",
             [l] { return static_cast<double>(l->stats().queue_depth); });
  m.gauge_fn("engram_log_head_position", "Position of the last acknowledged event.",
             [l] { return static_cast<double>(l->head().position.value()); });
  m.gauge_fn("engram_log_writable", "1 when the log accepts writes, 0 when read-only.",
             [l] { return l->health().writable ? 1.0 : 0.0; });
  m.gauge_fn("engram_subscribers", "Open live-feed (GET /v1/subscribe) subscriptions.",
             [s] { return static_cast<double>(s->feed.subscribers()); });
  m.counter_fn("engram_subscriber_cutoffs_total",
               "Live-feed subscribers cut off for falling more than max_lag_events behind.",
               [s] { return static_cast<double>(s->feed.cutoffs()); });
  commands::CommandBus* b = &bus;
  m.counter_fn("engram_commands_succeeded_total", "Commands that wrote (or replayed) events.",
               [b] { return static_cast<double>(b->stats().commands_ok); });
  m.counter_fn("engram_commands_failed_total", "Commands refused or failed.",
               [b] { return static_cast<double>(b->stats().commands_failed); });
  m.counter_fn("engram_commands_conflict_retries_total", "Commands re-decided after losing a race.",
               [b] { return static_cast<double>(b->stats().conflict_retries); });
}

Api::~Api() = default;

void Api::connections_changed(int delta) {
  impl_->connections.fetch_add(delta);
}

void Api::stop_feed() {
  impl_->feed.stop();
}

void Api::handle(Request request, Respond respond) {
  auto c = std::make_shared<Impl::Call>();
  c->started_ns = steady_ns();
  c->request_id = core::Uuid::v7_now().to_string();
  c->target = split_target(request.target);
  c->req = std::move(request);
  c->respond = std::move(respond);
  impl_->dispatch(c);
}

Response Api::protocol_error(int status, std::string_view detail, std::string_view remote_ip) {
  auto c = std::make_shared<Impl::Call>();
  c->started_ns = steady_ns();
  c->request_id = core::Uuid::v7_now().to_string();
  c->route = "protocol";
  c->req.method = kNoMethod;
  c->req.remote_ip = std::string(remote_ip);
  const char* code = status == 413   ? "body_too_large"
                     : status == 431 ? "header_too_large"
                     : status == 503 ? "too_many_connections"
                                     : "malformed_http";
  Response out;
  c->respond = [&out](std::function<Response()> make) { out = make(); };
  Problem p{status, code, std::string(detail), {}, {}, {}};
  if (status == 503) p.retry_after_s = 1;
  impl_->fail(c, std::move(p));
  return out;
}

}  // namespace engram::http
