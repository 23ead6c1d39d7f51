// The live feed in-process (no sockets): catch-up then live, type filters,
// piece bounds, heartbeats, the slow-consumer cut-off, cancel and stop, and
// the /v1/subscribe route's validation through the Api.

#include "adapters/http/feed.h"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "adapters/http/api.h"
#include "tests/adapters/http/sse_client.h"
#include "tests/support/log_fixture.h"
#include "tests/support/temp_dir.h"

using namespace engram;
using nlohmann::json;
using test::SseMessage;

namespace {

// Pulls a BodyStream like the server does: one pull at a time. A pull that
// timed out stays pending and is waited for again by the next call.
class Consumer {
 public:
  explicit Consumer(std::shared_ptr<http::BodyStream> s) : stream_(std::move(s)) {}

  enum class Got { piece, end, timeout };
  // The next piece within timeout_ms.
  Got next(int timeout_ms, std::string& piece) {
    if (!outstanding_) {
      auto p = std::make_shared<std::promise<std::optional<std::string>>>();
      outstanding_ = p->get_future();
      stream_->pull([p](std::optional<std::string> got) { p->set_value(std::move(got)); });
    }
    if (outstanding_->wait_for(std::chrono::milliseconds(timeout_ms)) !=
        std::future_status::ready) {
      return Got::timeout;
    }
    auto got = outstanding_->get();
    outstanding_.reset();
    if (!got) return Got::end;
    piece = std::move(*got);
    return Got::piece;
  }

  // Blocks parsed from the pieces until `want` events arrived (or
  // timeout_ms passed); comments are skipped.
  std::vector<SseMessage> events(size_t want, int timeout_ms = 5000) {
    std::vector<SseMessage> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
      std::string piece;
      if (next(50, piece) != Got::piece) continue;
      pieces.push_back(piece);
      for (auto& m : test::parse_sse(piece)) {
        if (!m.is_comment()) out.push_back(std::move(m));
      }
    }
    return out;
  }

  http::BodyStream& stream() { return *stream_; }
  std::vector<std::string> pieces;

 private:
  std::shared_ptr<http::BodyStream> stream_;
  std::optional<std::future<std::optional<std::string>>> outstanding_;
};

std::string render_plain(const core::RecordedEvent& e) {
  return json{{"position", e.position().value()}, {"type", std::string(e.type())}}.dump();
}

struct LogHarness {
  test::TempDir dir;
  std::unique_ptr<core::Log> log = test::open_or_die(dir.path());
  std::unique_ptr<core::RocksKeyStore> keys = test::open_keys_or_die(dir.path());

  // Appends one event per type, in order, each alone.
  void append(std::initializer_list<const char*> types) {
    for (const char* t : types) {
      const std::vector<core::EventData> one = {test::event(t)};
      REQUIRE(log->append("s", core::ExpectedVersion::any(), one));
    }
  }
  void append_n(size_t n, const char* type = "E") {
    std::vector<core::EventData> many;
    for (size_t i = 0; i < n; ++i) many.push_back(test::event(type));
    REQUIRE(log->append("s", core::ExpectedVersion::any(), many));
  }
};

std::vector<uint64_t> ids(const std::vector<SseMessage>& ms) {
  std::vector<uint64_t> out;
  for (const auto& m : ms) out.push_back(std::stoull(m.id));
  return out;
}

std::vector<uint64_t> range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t i = first; i <= last; ++i) out.push_back(i);
  return out;
}

}  // namespace

TEST_CASE("feed: parse_feed_types accepts 1..32 names and refuses the rest") {
  auto two = http::parse_feed_types("A,B,A");
  REQUIRE(two);
  CHECK(*two == std::vector<std::string>{"A", "B"});
  CHECK(!http::parse_feed_types(""));
  CHECK(!http::parse_feed_types("A,,B"));
  CHECK(!http::parse_feed_types("A,"));
  CHECK(!http::parse_feed_types(std::string(http::kMaxFeedTypeBytes + 1, 'x')));
  CHECK(http::parse_feed_types(std::string(http::kMaxFeedTypeBytes, 'x')));
  std::string many;
  for (size_t i = 0; i <= http::kMaxFeedTypes; ++i) many += (i ? "," : "") + std::to_string(i);
  CHECK(!http::parse_feed_types(many));
  CHECK(http::parse_feed_types(many.substr(0, many.rfind(','))));
}

TEST_CASE("feed: catch-up from the log then live, in order, bounded pieces") {
  LogHarness h;
  h.append_n(10);
  http::FeedOptions o;
  o.max_chunk_events = 4;
  http::Feed feed(*h.log, o);
  auto s = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(s);
  Consumer c(*s);
  auto first = c.events(10);
  CHECK(ids(first) == range(1, 10));
  for (const auto& m : first) {
    CHECK(m.event == "E");
    CHECK(json::parse(m.data)["position"] == std::stoull(m.id));
  }
  for (const auto& p : c.pieces) {
    std::string copy = p;
    CHECK(test::parse_sse(copy).size() <= 4);
  }
  // Live: events appended now arrive too.
  h.append({"L1", "L2"});
  auto live = c.events(2);
  CHECK(ids(live) == range(11, 12));
  CHECK(live.at(0).event == "L1");
  CHECK(feed.subscribers() == 1);

  // A subscription from a later position starts after it.
  auto later = feed.subscribe(core::Position(7), {}, render_plain);
  REQUIRE(later);
  Consumer c2(*later);
  CHECK(ids(c2.events(5)) == range(8, 12));
}

TEST_CASE("feed: a type filter passes only the listed types, ids stay log positions") {
  LogHarness h;
  h.append({"A", "B", "A", "C", "B", "C"});
  http::Feed feed(*h.log, {});
  auto s = feed.subscribe(core::Position(0), {"A", "C"}, render_plain);
  REQUIRE(s);
  Consumer c(*s);
  auto got = c.events(4);
  CHECK(ids(got) == std::vector<uint64_t>{1, 3, 4, 6});
  h.append({"B", "B", "C"});
  auto more = c.events(1);
  CHECK(ids(more) == std::vector<uint64_t>{9});
  CHECK(more.at(0).event == "C");
}

TEST_CASE("feed: a piece stops at max_chunk_bytes, an event over it goes alone") {
  LogHarness h;
  h.append_n(6);
  http::FeedOptions o;
  o.max_chunk_bytes = 1000;
  http::Feed feed(*h.log, o);
  // Position 4 renders larger than the bound; the others about 300 bytes.
  auto render = [](const core::RecordedEvent& e) {
    const size_t n = e.position().value() == 4 ? 3000 : 300;
    return json(std::string(n, 'x')).dump();
  };
  auto s = feed.subscribe(core::Position(0), {}, render);
  REQUIRE(s);
  Consumer c(*s);
  CHECK(ids(c.events(6)) == range(1, 6));
  bool alone = false;
  for (const auto& p : c.pieces) {
    std::string copy = p;
    const auto blocks = test::parse_sse(copy);
    if (p.size() > o.max_chunk_bytes) {
      REQUIRE(blocks.size() == 1);
      CHECK(blocks[0].id == "4");
      alone = true;
    }
  }
  CHECK(alone);
  CHECK(c.pieces.size() >= 3);
}

TEST_CASE("feed: an idle subscriber gets heartbeats") {
  LogHarness h;
  http::FeedOptions o;
  o.heartbeat_ms = 50;
  http::Feed feed(*h.log, o);
  auto s = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(s);
  Consumer c(*s);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    std::string piece;
    REQUIRE(c.next(2000, piece) == Consumer::Got::piece);
    CHECK(piece == ": heartbeat\n\n");
  }
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(140));
}

TEST_CASE("feed: a live subscriber that falls behind is cut off with its last position") {
  LogHarness h;
  h.append_n(3);
  http::FeedOptions o;
  o.max_lag_events = 5;
  o.max_chunk_events = 4;
  http::Feed feed(*h.log, o);
  auto s = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(s);
  Consumer c(*s);
  CHECK(ids(c.events(3)) == range(1, 3));
  std::string piece;
  // Waits at the head: it is live now.
  CHECK(c.next(100, piece) == Consumer::Got::timeout);
  h.append_n(2);
  CHECK(ids(c.events(2)) == range(4, 5));

  // A catching-up subscriber far behind is not cut off.
  h.append_n(20);
  auto catching = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(catching);
  Consumer slow_start(*catching);
  CHECK(ids(slow_start.events(25)) == range(1, 25));

  // The first one has 20 to read, more than max_lag_events: cut off.
  std::string last;
  REQUIRE(c.next(2000, last) == Consumer::Got::piece);
  auto blocks = test::parse_sse(last);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0].event == "cutoff");
  const json data = json::parse(blocks[0].data);
  CHECK(data["position"] == 5);
  CHECK(data["reason"] == "slow consumer");
  CHECK(c.next(1000, piece) == Consumer::Got::end);
  CHECK(feed.cutoffs() == 1);
  CHECK(feed.subscribers() == 1);  // the catching-up one

  // Resuming from the cut-off position misses nothing.
  auto resumed = feed.subscribe(core::Position(5), {}, render_plain);
  REQUIRE(resumed);
  Consumer again(*resumed);
  CHECK(ids(again.events(20)) == range(6, 25));
}

TEST_CASE("feed: cancel answers a pending pull at once and frees the slot") {
  LogHarness h;
  http::FeedOptions o;
  o.max_subscribers = 2;
  http::Feed feed(*h.log, o);
  auto a = feed.subscribe(core::Position(0), {}, render_plain);
  auto b = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(a);
  REQUIRE(b);
  auto refused = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(!refused);
  CHECK(refused.error().code == core::errc::overloaded);

  Consumer ca(*a);
  std::string piece;
  CHECK(ca.next(50, piece) == Consumer::Got::timeout);  // pending at the head
  const auto start = std::chrono::steady_clock::now();
  ca.stream().cancel();
  CHECK(ca.next(1000, piece) == Consumer::Got::end);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(500));
  CHECK(ca.next(1000, piece) == Consumer::Got::end);  // later pulls end at once
  CHECK(feed.subscribers() == 1);
  auto third = feed.subscribe(core::Position(0), {}, render_plain);
  CHECK(third);

  // Dropping a stream cancels it too.
  b->reset();
  CHECK(feed.subscribers() == 1);
}

TEST_CASE("feed: stop ends every stream and refuses new ones") {
  LogHarness h;
  h.append_n(2);
  http::Feed feed(*h.log, {});
  auto a = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(a);
  Consumer ca(*a);
  CHECK(ids(ca.events(2)) == range(1, 2));
  std::string piece;
  CHECK(ca.next(50, piece) == Consumer::Got::timeout);
  auto idle = feed.subscribe(core::Position(0), {}, render_plain);  // never pulled
  REQUIRE(idle);
  feed.stop();
  CHECK(ca.next(1000, piece) == Consumer::Got::end);
  Consumer ci(*idle);
  CHECK(ci.next(1000, piece) == Consumer::Got::end);
  CHECK(feed.subscribers() == 0);
  auto late = feed.subscribe(core::Position(0), {}, render_plain);
  REQUIRE(!late);
  CHECK(late.error().code == core::errc::shutting_down);
  feed.stop();  // idempotent
}

namespace {

struct ApiHarness {
  LogHarness h;
  std::unique_ptr<commands::CommandBus> bus =
      std::make_unique<commands::CommandBus>(*h.log, *h.keys);
  core::metrics::Registry metrics;
  std::unique_ptr<http::Api> api;

  explicit ApiHarness(http::ApiOptions options = {}) {
    options.access_log = false;
    api = std::make_unique<http::Api>(*h.log, *bus, metrics, options);  // auth off: admin
  }

  http::Response get(std::string target,
                     std::vector<std::pair<std::string, std::string>> headers = {},
                     std::string method = "GET") {
    http::Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.remote_ip = "127.0.0.1";
    r.headers = std::move(headers);
    std::promise<http::Response> p;
    auto f = p.get_future();
    api->handle(std::move(r), [&p](std::function<http::Response()> make) { p.set_value(make()); });
    return f.get();
  }
};

std::string code_of(const http::Response& r) {
  return json::parse(r.body, nullptr, false).value("code", "");
}

}  // namespace

TEST_CASE("feed: /v1/subscribe validates its input as problem+json") {
  ApiHarness a;
  a.h.append_n(3);
  for (const char* bad :
       {"/v1/subscribe?from=abc", "/v1/subscribe?from=-1", "/v1/subscribe?colour=red",
        "/v1/subscribe?types=", "/v1/subscribe?types=A,,B", "/v1/subscribe?from=4"}) {
    INFO(bad);
    auto r = a.get(bad);
    CHECK(r.status == 400);
    CHECK(r.content_type == "application/problem+json");
    CHECK(code_of(r) == "bad_query");
    CHECK(r.stream == nullptr);
  }
  auto header = a.get("/v1/subscribe", {{"last-event-id", "x1"}});
  CHECK(header.status == 400);
  CHECK(code_of(header) == "bad_header");
  CHECK(a.get("/v1/subscribe", {{"last-event-id", "9"}}).status == 400);
  CHECK(a.get("/v1/subscribe", {}, "POST").status == 405);
  CHECK(a.api->protocol_error(400, "x", "").stream == nullptr);
}

TEST_CASE("feed: /v1/subscribe streams SSE, Last-Event-ID wins over from") {
  http::ApiOptions o;
  o.feed.max_subscribers = 1;
  ApiHarness a(o);
  a.h.append({"A", "B", "C", "D"});
  auto r = a.get("/v1/subscribe?from=0", {{"last-event-id", "2"}});
  REQUIRE(r.status == 200);
  CHECK(r.content_type == "text/event-stream");
  REQUIRE(r.stream);
  Consumer c(r.stream);
  auto got = c.events(2);
  CHECK(ids(got) == range(3, 4));
  // The data is GET /v1/log's event JSON.
  const json e = json::parse(got.at(0).data);
  CHECK(e["position"] == 3);
  CHECK(e["type"] == "C");
  CHECK(e["stream"] == "s");
  CHECK(e.contains("hash"));

  auto busy = a.get("/v1/subscribe");
  CHECK(busy.status == 503);
  CHECK(code_of(busy) == "too_many_subscribers");
  const auto& hs = busy.headers;
  CHECK(std::find(hs.begin(), hs.end(), std::pair<std::string, std::string>("Retry-After", "1")) !=
        hs.end());
  CHECK(a.metrics.render().find("engram_subscribers 1") != std::string::npos);

  a.api->stop();
  std::string piece;
  CHECK(c.next(1000, piece) == Consumer::Got::end);
  CHECK(a.get("/v1/subscribe").status == 503);
}

TEST_CASE("feed: subscribers reading while appends go on each get every event once, in order") {
  LogHarness h;
  http::FeedOptions o;
  o.max_chunk_events = 16;
  http::Feed feed(*h.log, o);
  constexpr size_t kSubscribers = 6;
  constexpr size_t kAppends = 100;
  constexpr size_t kPerAppend = 3;
  std::vector<std::unique_ptr<Consumer>> consumers;
  for (size_t i = 0; i < kSubscribers; ++i) {
    auto s = feed.subscribe(core::Position(0), {}, render_plain);
    REQUIRE(s);
    consumers.push_back(std::make_unique<Consumer>(*s));
  }
  std::thread writer([&] {
    for (size_t i = 0; i < kAppends; ++i) {
      std::vector<core::EventData> batch;
      for (size_t j = 0; j < kPerAppend; ++j) batch.push_back(test::event("E"));
      ENGRAM_ASSERT(h.log->append("s", core::ExpectedVersion::any(), batch).has_value());
    }
  });
  std::vector<std::future<std::vector<uint64_t>>> readers;
  for (auto& c : consumers) {
    readers.push_back(std::async(std::launch::async, [&c] {
      return ids(c->events(kAppends * kPerAppend, 20'000));
    }));
  }
  writer.join();
  for (auto& r : readers) CHECK(r.get() == range(1, kAppends * kPerAppend));
}
