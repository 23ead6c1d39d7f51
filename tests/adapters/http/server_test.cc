// The server with handlers that misbehave: one that throws, one whose
// response builder throws, one that drops its Respond, one that never
// answers. Each request gets an answer or a closed connection, the server
// keeps serving, and stop() returns.

#include "adapters/http/server.h"

#include <doctest/doctest.h>

#include <mutex>
#include <stdexcept>
#include <thread>

#include "tests/support/http_client.h"

using namespace engram;
using engram::test::HttpClient;

namespace {

enum class Misbehave { none, throw_in_handle, throw_in_make, drop_respond, hold_respond };

// Misbehaves on /bad, answers 200 "ok" otherwise.
class TestHandler final : public http::Handler {
 public:
  explicit TestHandler(Misbehave how) : how_(how) {}

  void handle(http::Request request, http::Respond respond) override {
    if (request.target != "/bad") return respond([] { return ok(); });
    switch (how_) {
      case Misbehave::none:
        return respond([] { return ok(); });
      case Misbehave::throw_in_handle:
        throw std::runtime_error("a bug in a handler");
      case Misbehave::throw_in_make:
        return respond([]() -> http::Response { throw std::runtime_error("a bug in a builder"); });
      case Misbehave::drop_respond:
        return;
      case Misbehave::hold_respond: {
        std::lock_guard lock(mu_);
        held_.push_back(std::move(respond));
        return;
      }
    }
  }

  http::Response protocol_error(int status, std::string_view detail, std::string_view) override {
    http::Response r;
    r.status = status;
    r.body = std::string(detail);
    return r;
  }

  // Whether `n` requests are held, within 10 s.
  bool wait_held(size_t n) {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(mu_);
        if (held_.size() >= n) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Answers what was held (after the server stopped, the answers go nowhere).
  void release_held() {
    std::vector<http::Respond> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& r : held) r([] { return ok(); });
  }

 private:
  static http::Response ok() {
    http::Response r;
    r.body = "ok";
    return r;
  }
  Misbehave how_;
  std::mutex mu_;
  std::vector<http::Respond> held_;
};

struct Running {
  std::unique_ptr<http::Server> server;
  explicit Running(http::Handler& h, uint64_t grace_ms = 10'000) {
    http::ServerOptions o;
    o.port = 0;
    o.shutdown_grace_ms = grace_ms;
    auto s = http::Server::start(o, h);
    REQUIRE(s);
    server = std::move(*s);
  }
};

}  // namespace

TEST_CASE("server: a handler that throws gets its request a 500, and the server goes on") {
  for (Misbehave how : {Misbehave::throw_in_handle, Misbehave::throw_in_make}) {
    TestHandler h(how);
    Running r(h);
    HttpClient c(r.server->port());
    for (int i = 0; i < 3; ++i) {
      auto bad = c.request("GET", "/bad");
      CHECK(bad.status == 500);
      CHECK(bad.body == "the request failed inside the server");
      CHECK(c.request("GET", "/good").status == 200);
    }
    // Nothing counts as still with the handler: stop() returns.
    r.server->stop();
  }
}

TEST_CASE("server: a handler that drops its Respond closes the connection, not the server") {
  TestHandler h(Misbehave::drop_respond);
  Running r(h);
  HttpClient c(r.server->port());
  CHECK(c.request("GET", "/bad").status == 0);  // closed without an answer
  HttpClient d(r.server->port());
  CHECK(d.request("GET", "/good").status == 200);
  r.server->stop();
}

TEST_CASE("server: stop() does not wait forever for a handler that never answers") {
  TestHandler h(Misbehave::hold_respond);
  Running r(h, /*grace_ms=*/100);
  HttpClient good(r.server->port());
  REQUIRE(good.request("GET", "/good").status == 200);
  // Sent, and held by the handler.
  HttpClient held(r.server->port());
  REQUIRE(held.send_raw("GET /bad HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(h.wait_held(1));
  // Returns after shutdown_grace_ms and kHandlerDrainMs (a hang fails the
  // test by its timeout).
  r.server->stop();
  CHECK(held.closed_by_peer(10'000));
  // The late answer finds a stopped server and goes nowhere.
  h.release_held();
  r.server.reset();
}

TEST_CASE("server: parse_request reads bytes as a connection does") {
  http::ServerOptions o;
  o.max_body_bytes = 16;
  o.max_header_bytes = 1024;
  auto r = http::parse_request(
      "POST /v1/streams/a%2Fb?x=1 HTTP/1.1\r\nHost: h\r\nX-Thing: V\r\nContent-Length: 2\r\n\r\n{}"
      "trailing bytes are not read",
      o);
  REQUIRE(r);
  CHECK(r->method == "POST");
  CHECK(r->target == "/v1/streams/a%2Fb?x=1");
  CHECK(r->header("x-thing") == "V");
  CHECK(r->body == "{}");
  CHECK(r->remote_ip == "127.0.0.1");
  auto chunked = http::parse_request(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", o);
  REQUIRE(chunked);
  CHECK(chunked->body == "ab");

  CHECK(http::parse_request("GARBAGE\r\n\r\n", o).error().status == 400);
  CHECK(http::parse_request("POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n" + std::string(17, 'x'), o)
            .error()
            .status == 413);
  CHECK(http::parse_request("GET / HTTP/1.1\r\nX: " + std::string(2000, 'h') + "\r\n\r\n", o)
            .error()
            .status == 431);
  // Cut off: the server would answer nothing and close.
  CHECK(http::parse_request("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", o).error().status ==
        0);
  CHECK(http::parse_request("", o).error().status == 0);
}
