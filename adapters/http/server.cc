#include "adapters/http/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "core/assert.h"

namespace engram::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using std::chrono::milliseconds;

// A connection. `busy` (a request is with the handler) is read and written
// only on the connection's strand.
struct Session {
  explicit Session(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  bool busy = false;
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  Handler* handler = nullptr;
  ServerObserver observer;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  uint16_t port = 0;
  std::vector<std::thread> threads;

  std::atomic<size_t> connections{0};
  std::atomic<size_t> in_handler{0};  // requests handed to the handler, not yet answered
  std::atomic<bool> draining{false};
  bool stopped = false;
  std::mutex mu;
  std::set<std::shared_ptr<Session>> sessions;

  void connection_delta(int d) {
    if (observer.connections) observer.connections(d);
  }

  // Hands the request to the handler and resumes the coroutine on `ex` with
  // the answer, whichever thread the handler answers on.
  template <typename Token>
  auto async_handle(Request req, Token&& token) {
    return asio::async_initiate<Token, void(Response)>(
        [this](auto completion, Request r) {
          auto ex = asio::get_associated_executor(completion);
          auto holder = std::make_shared<decltype(completion)>(std::move(completion));
          // Keeps the I/O threads running while the handler works.
          auto work = std::make_shared<asio::executor_work_guard<decltype(ex)>>(ex);
          in_handler.fetch_add(1);
          handler->handle(std::move(r), [this, holder, work](std::function<Response()> make) {
            asio::post(work->get_executor(),
                       [holder, make = std::move(make)]() mutable { (*holder)(make()); });
            in_handler.fetch_sub(1);
          });
        },
        token, std::move(req));
  }

  static bhttp::response<bhttp::string_body> to_beast(Response r, unsigned version,
                                                      bool keep_alive) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
    res.set(bhttp::field::server, "engram");
    res.set(bhttp::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res.set(k, v);
    res.body() = std::move(r.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
  }

  awaitable<void> write_and_close(std::shared_ptr<Session> s, Response r) {
    beast::error_code ec;
    auto res = to_beast(std::move(r), 11, false);
    s->stream.expires_after(milliseconds(options.write_timeout_ms));
    co_await bhttp::async_write(s->stream, res, asio::redirect_error(use_awaitable, ec));
    s->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  awaitable<void> run_session(std::shared_ptr<Session> s) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    const std::string remote = [&] {
      auto ep = s->stream.socket().remote_endpoint(ec);
      return ec ? std::string() : ep.address().to_string();
    }();
    while (!draining.load()) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(options.max_body_bytes);
      parser.header_limit(static_cast<uint32_t>(options.max_header_bytes));
      // One deadline for the whole message: a sender that trickles bytes
      // cannot hold the connection longer than read_timeout_ms.
      s->stream.expires_after(milliseconds(options.read_timeout_ms));
      co_await bhttp::async_read_header(s->stream, buffer, parser,
                                        asio::redirect_error(use_awaitable, ec));
      if (!ec && parser.get()[bhttp::field::expect] == "100-continue") {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
        co_await bhttp::async_write(s->stream, cont, asio::redirect_error(use_awaitable, ec));
      }
      if (!ec && !parser.is_done()) {
        co_await bhttp::async_read(s->stream, buffer, parser,
                                   asio::redirect_error(use_awaitable, ec));
      }
      if (ec) {
        int status = 0;
        std::string detail;
        if (ec == bhttp::error::body_limit) {
          status = 413;
          detail = fmt::format("the body exceeds max_body_bytes ({})", options.max_body_bytes);
        } else if (ec == bhttp::error::header_limit) {
          status = 431;
          detail =
              fmt::format("the header exceeds max_header_bytes ({})", options.max_header_bytes);
        } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
                   ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
          status = 400;
          detail = "malformed HTTP request: " + ec.message();
        }
        if (status != 0) {
          co_await write_and_close(s, handler->protocol_error(status, detail, remote));
        }
        break;  // end of stream, timeout, reset, or answered and closing
      }

      auto msg = parser.release();
      bool keep_alive = msg.keep_alive();
      const unsigned version = msg.version();
      Request req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.remote_ip = remote;
      req.headers.reserve(8);
      for (const auto& f : msg) {
        std::string name(f.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        req.headers.emplace_back(std::move(name), std::string(f.value()));
      }
      req.body = std::move(msg.body());

      s->busy = true;
      s->stream.expires_never();  // the handler bounds its own work
      Response resp = co_await async_handle(std::move(req), use_awaitable);
      s->busy = false;
      if (draining.load()) keep_alive = false;

      auto res = to_beast(std::move(resp), version, keep_alive);
      s->stream.expires_after(milliseconds(options.write_timeout_ms));
      co_await bhttp::async_write(s->stream, res, asio::redirect_error(use_awaitable, ec));
      if (ec || !keep_alive) break;
    }
    s->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  void finish_session(const std::shared_ptr<Session>& s) {
    {
      std::lock_guard lock(mu);
      sessions.erase(s);
    }
    connections.fetch_sub(1);
    connection_delta(-1);
  }

  awaitable<void> accept_loop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket sock = co_await acceptor.async_accept(asio::make_strand(ioc),
                                                        asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (draining.load() || !acceptor.is_open()) co_return;
        // Out of descriptors and the like: back off instead of spinning.
        asio::steady_timer t(ioc, milliseconds(10));
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      auto s = std::make_shared<Session>(std::move(sock));
      if (connections.load() >= options.max_connections) {
        asio::co_spawn(s->stream.get_executor(),
                       write_and_close(s, handler->protocol_error(
                                              503, "too many connections (max_connections)", "")),
                       asio::detached);
        continue;
      }
      {
        std::lock_guard lock(mu);
        sessions.insert(s);
      }
      connections.fetch_add(1);
      connection_delta(+1);
      asio::co_spawn(s->stream.get_executor(), run_session(s),
                     [this, s](std::exception_ptr) { finish_session(s); });
    }
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
}

core::result<std::unique_ptr<Server>> Server::start(const ServerOptions& options, Handler& handler,
                                                    ServerObserver observer) {
  if (options.io_threads == 0 || options.io_threads > 256) {
    return core::make_error(core::errc::invalid_argument, "io_threads must be 1..256");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handler = &handler;
  impl->observer = std::move(observer);
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.listen_address, ec);
  if (ec) {
    return core::make_error(core::errc::invalid_argument,
                            fmt::format("bad listen address '{}'", options.listen_address));
  }
  const tcp::endpoint endpoint(address, options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return core::make_error(core::errc::io_error,
                            fmt::format("cannot listen on {}:{}: {}", options.listen_address,
                                        options.port, ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  Impl* raw = impl.get();
  asio::co_spawn(impl->ioc, raw->accept_loop(), asio::detached);
  for (size_t i = 0; i < options.io_threads; ++i) {
    impl->threads.emplace_back([raw] { raw->ioc.run(); });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const {
  return impl_->port;
}

void Server::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  s.draining.store(true);
  asio::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
  });
  auto close_where = [&s](bool idle_only) {
    std::lock_guard lock(s.mu);
    for (const auto& session : s.sessions) {
      asio::post(session->stream.get_executor(), [session, idle_only] {
        if (idle_only && session->busy) return;  // finishes its request, then closes
        beast::error_code ec;
        session->stream.socket().close(ec);
      });
    }
  };
  close_where(true);
  const auto deadline =
      std::chrono::steady_clock::now() + milliseconds(s.options.shutdown_grace_ms);
  while (s.connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  close_where(false);
  // Whatever the handler still holds will be answered (the log completes
  // every append); the answer must find the I/O threads alive.
  while (s.in_handler.load() > 0 || s.connections.load() > 0) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
}

}  // namespace engram::http
