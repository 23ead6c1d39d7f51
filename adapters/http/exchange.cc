#include "adapters/http/exchange.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>

#include "core/assert.h"
#include "core/uuid.h"

namespace engram::http {

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

Exchange::Exchange(Request request, Respond respond, const Finisher& finisher)
    : request_(std::move(request)),
      respond_(std::move(respond)),
      finisher_(finisher),
      path_(request_.target.substr(0, request_.target.find('?'))),
      request_id_(core::Uuid::v7_now().to_string()),
      started_ns_(steady_now_ns()) {}

void Exchange::set_route_labels(std::string route, std::string method) {
  route_label_ = std::move(route);
  method_label_ = std::move(method);
}

std::optional<std::string> Exchange::query(std::string_view name) const {
  for (const auto& [k, v] : query_) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::optional<uint64_t> Exchange::query_u64(std::string_view name, uint64_t dflt, uint64_t min,
                                            uint64_t max) {
  auto v = query(name);
  if (!v) return dflt;
  const auto n = parse_u64(*v);
  if (!n || *n < min || *n > max) {
    fail({400,
          "bad_query",
          fmt::format("'{}' must be an integer in {}..{}", name, min, max),
          std::string(name),
          {},
          {}});
    return std::nullopt;
  }
  return n;
}

const std::string& Exchange::param(std::string_view name) const {
  for (const auto& [k, v] : params_) {
    if (k == name) return v;
  }
  ENGRAM_ASSERT_MSG(false, "a handler asks only for its template's parameters");
  return path_;  // unreachable
}

void Exchange::claim_answer() {
  ENGRAM_ASSERT_MSG(!answered_.exchange(true), "an exchange is answered once");
}

// The Respond is released once called: what it holds (the server's state
// for this request) must not live on inside the response it carries.
void Exchange::answer(Response response) {
  claim_answer();
  Respond respond = std::move(respond_);
  respond([self = shared_from_this(), r = std::move(response)]() mutable {
    return self->finisher_.finish(*self, std::move(r));
  });
}

void Exchange::answer_later(std::function<Response()> make) {
  claim_answer();
  Respond respond = std::move(respond_);
  respond([self = shared_from_this(), make = std::move(make)] {
    return self->finisher_.finish(*self, make());
  });
}

void Exchange::fail(const Problem& p) {
  answer(problem(p));
}

Response Exchange::problem(const Problem& p) const {
  return problem_response(p, path_, request_id_);
}

}  // namespace engram::http
