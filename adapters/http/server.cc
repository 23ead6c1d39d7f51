#include "adapters/http/server.h"

#include <fmt/format.h>
#include <pthread.h>

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
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "core/assert.h"
#include "core/logging.h"
#include "core/thread_role.h"

namespace engram::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using std::chrono::milliseconds;

// A connection. `busy` (a request is with the handler) and `body` (a
// streamed response is running) are read and written only on the
// connection's strand.
struct Session {
  explicit Session(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  bool busy = false;
  std::shared_ptr<BodyStream> body;
};

using BeastRequest = bhttp::request<bhttp::string_body>;

Request to_request(BeastRequest&& msg, std::string remote) {
  Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.remote_ip = std::move(remote);
  req.headers.reserve(8);
  for (const auto& f : msg) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    req.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  req.body = std::move(msg.body());
  return req;
}

// How the server answers a failed read: 413, 431, 400 for malformed HTTP;
// status 0 (no answer) when the peer went away or timed out.
ProtocolError protocol_error_of(const beast::error_code& ec, const ServerOptions& options) {
  if (ec == bhttp::error::body_limit) {
    return {413, fmt::format("the body exceeds max_body_bytes ({})", options.max_body_bytes)};
  }
  if (ec == bhttp::error::header_limit) {
    return {431, fmt::format("the header exceeds max_header_bytes ({})", options.max_header_bytes)};
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
    return {400, "malformed HTTP request: " + ec.message()};
  }
  return {0, ec.message()};
}

// A parser with the server's limits, new for every message.
void limit(bhttp::request_parser<bhttp::string_body>& parser, const ServerOptions& options) {
  parser.body_limit(options.max_body_bytes);
  parser.header_limit(static_cast<uint32_t>(options.max_header_bytes));
}

void log_exception(std::string_view what, std::exception_ptr e) {
  core::logging::write(core::logging::Level::error, what, {{"exception", describe_exception(e)}});
}

}  // namespace

core::result<Request, ProtocolError> parse_request(std::string_view bytes,
                                                   const ServerOptions& options) {
  bhttp::request_parser<bhttp::string_body> parser;
  limit(parser, options);
  parser.eager(true);
  beast::error_code ec;
  while (!bytes.empty() && !parser.is_done()) {
    const size_t used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
    bytes.remove_prefix(used);
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (used == 0) break;
    } else if (ec) {
      break;
    }
  }
  // No bytes at all is a connection closed before a request, not one.
  if (!parser.got_some()) return ProtocolError{0, "no request"};
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec) return protocol_error_of(ec, options);
  return to_request(parser.release(), "127.0.0.1");
}

std::string describe_exception(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  ServerOptions options;
  Handler* handler = nullptr;
  ServerObserver observer;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  uint16_t port = 0;
  std::vector<std::thread> threads;

  std::atomic<size_t> connections{0};
  // Requests handed to the handler and pulls handed to a stream, not yet
  // answered: their answers post to the I/O threads, which must outlive them.
  std::atomic<size_t> in_handler{0};
  std::atomic<bool> draining{false};
  bool stopped = false;
  std::mutex mu;
  std::set<std::shared_ptr<Session>> sessions;

  void connection_delta(int d) {
    if (observer.connections) observer.connections(d);
  }

  // Hands the request to the handler and resumes the coroutine on its
  // strand with the answer (nullopt: none will come; close the
  // connection), whichever thread the handler answers on.
  template <typename Token>
  auto async_handle(Request req, Token&& token) {
    return asio::async_initiate<Token, void(std::optional<Response>)>(
        [this](auto completion, Request r) {
          const std::string remote = r.remote_ip;
          auto pending = make_pending<std::function<Response()>>(
              std::move(completion), [this, remote](auto& holder, auto make) {
                std::optional<Response> answer;
                if (make) {
                  answer = build_response(*make, remote);
                } else {
                  core::logging::write(core::logging::Level::warn,
                                       "a request was dropped unanswered; closing its connection",
                                       {{"remote", remote}});
                }
                holder(std::move(answer));
              });
          try {
            handler->handle(std::move(r), [pending](std::function<Response()> make) {
              pending->finish(std::move(make));
            });
          } catch (...) {
            log_exception("the handler threw", std::current_exception());
            Response failed = handler->protocol_error(500, "the request failed inside the server",
                                                      remote);
            pending->finish([failed] { return failed; });
          }
        },
        token, std::move(req));
  }

  // Asks the stream for its next piece and resumes the coroutine on its
  // strand with it, whichever thread the stream answers on.
  template <typename Token>
  auto async_pull(std::shared_ptr<BodyStream> body, Token&& token) {
    return asio::async_initiate<Token, void(std::optional<std::string>)>(
        [this](auto completion, std::shared_ptr<BodyStream> b) {
          // this->: clang 14 does not see an implicit this in a generic lambda
          // as a use of the capture (-Wunused-lambda-capture; tests/fuzz).
          auto pending = this->make_pending<std::string>(
              std::move(completion),
              [](auto& holder, std::optional<std::string> piece) { holder(std::move(piece)); });
          b->pull([pending](std::optional<std::string> piece) { pending->finish(std::move(piece)); });
        },
        token, std::move(body));
  }

  // The response `make` builds, or the handler's 500 when it throws (it
  // runs on an I/O thread, whose run() must not see an exception).
  Response build_response(const std::function<Response()>& make, const std::string& remote) {
    try {
      return make();
    } catch (...) {
      log_exception("building a response threw", std::current_exception());
      return handler->protocol_error(500, "the request failed inside the server", remote);
    }
  }

  // One answer the server waits for (a response from the handler, a piece
  // from a stream), counted in `in_handler` until it arrives: the first
  // finish() resumes the coroutine on its executor. Copies of the callback
  // share it; when the last is dropped unanswered, it finishes with nullopt,
  // so neither the count nor the coroutine leaks. It keeps the Impl (and so
  // the I/O context) alive: an answer that comes after stop() gave up on it
  // is queued on the stopped context and destroyed with it.
  template <typename Value, typename Completion, typename Deliver>
  auto make_pending(Completion completion, Deliver deliver) {
    struct Pending {
      std::shared_ptr<Impl> impl;  // first: released last
      std::function<void(std::optional<Value>)> resume;
      std::atomic<bool> done{false};
      void finish(std::optional<Value> v) {
        if (done.exchange(true)) return;
        resume(std::move(v));
        impl->in_handler.fetch_sub(1);
      }
      ~Pending() { finish(std::nullopt); }
    };
    auto ex = asio::get_associated_executor(completion);
    auto holder = std::make_shared<Completion>(std::move(completion));
    auto work = std::make_shared<asio::executor_work_guard<decltype(ex)>>(ex);
    auto pending = std::make_shared<Pending>();
    pending->impl = shared_from_this();
    pending->resume = [holder, work, deliver](std::optional<Value> v) {
      asio::post(work->get_executor(), [holder, deliver, v = std::move(v)]() mutable {
        deliver(*holder, std::move(v));
      });
    };
    in_handler.fetch_add(1);
    return pending;
  }

  // Cancels the stream as soon as the client closes its end (or the
  // connection fails), so a gone subscriber frees its slot without waiting
  // for the next piece to fail. Ends when the socket is closed.
  static void watch_peer(const std::shared_ptr<Session>& s, std::shared_ptr<BodyStream> body) {
    auto on_readable = [s, body = std::move(body)](beast::error_code ec) {
      if (ec == asio::error::operation_aborted) return;  // we closed it
      beast::error_code ec2;
      // Readable with nothing to read: the peer closed (or reset). A client
      // that sends bytes instead is left alone: they are never read (the
      // connection closes after the stream).
      if (ec || s->stream.socket().available(ec2) == 0 || ec2) body->cancel();
    };
    s->stream.socket().async_wait(tcp::socket::wait_read, std::move(on_readable));
  }

  // Writes a streamed response: the header, `r.body` when not empty, then
  // each piece the stream delivers, one at a time, each within
  // write_timeout_ms; then closes the connection.
  awaitable<void> run_stream(std::shared_ptr<Session> s, Response r, unsigned version) {
    std::shared_ptr<BodyStream> body = std::move(r.stream);
    s->body = body;
    // stop() began while the handler worked: end at once.
    if (draining.load()) body->cancel();
    const bool chunked = version >= 11;  // HTTP/1.0 has no chunks: the close ends the body
    bhttp::response<bhttp::empty_body> head{static_cast<bhttp::status>(r.status), version};
    head.set(bhttp::field::server, "engram");
    head.set(bhttp::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) head.set(k, v);
    head.keep_alive(false);
    if (chunked) head.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> serializer{head};
    beast::error_code ec;
    s->stream.expires_after(milliseconds(options.write_timeout_ms));
    co_await bhttp::async_write_header(s->stream, serializer,
                                       asio::redirect_error(use_awaitable, ec));
    if (!ec) watch_peer(s, body);
    std::optional<std::string> piece;
    if (!r.body.empty()) piece = std::move(r.body);
    while (!ec) {
      if (!piece) piece = co_await async_pull(body, use_awaitable);
      if (!piece) break;  // the stream ended
      if (!piece->empty()) {
        s->stream.expires_after(milliseconds(options.write_timeout_ms));
        if (chunked) {
          co_await asio::async_write(s->stream, bhttp::make_chunk(asio::buffer(*piece)),
                                     asio::redirect_error(use_awaitable, ec));
        } else {
          co_await asio::async_write(s->stream, asio::buffer(*piece),
                                     asio::redirect_error(use_awaitable, ec));
        }
      }
      piece.reset();
    }
    if (!ec && chunked) {
      s->stream.expires_after(milliseconds(options.write_timeout_ms));
      co_await asio::async_write(s->stream, bhttp::make_chunk_last(),
                                 asio::redirect_error(use_awaitable, ec));
    }
    s->stream.expires_never();
    // A write that failed or timed out leaves the producer with no consumer.
    body->cancel();
    s->body.reset();
    s->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    s->stream.socket().close(ec);  // also ends watch_peer
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
      limit(parser, options);
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
        ProtocolError refused = protocol_error_of(ec, options);
        if (refused.status != 0) {
          co_await write_and_close(s, handler->protocol_error(refused.status, refused.detail,
                                                              remote));
        }
        break;  // end of stream, timeout, reset, or answered and closing
      }

      auto msg = parser.release();
      bool keep_alive = msg.keep_alive();
      const unsigned version = msg.version();
      Request req = to_request(std::move(msg), remote);

      s->busy = true;
      s->stream.expires_never();  // the handler bounds its own work
      std::optional<Response> answer = co_await async_handle(std::move(req), use_awaitable);
      s->busy = false;
      if (!answer) break;  // the handler dropped the request: nothing to send
      Response resp = std::move(*answer);
      if (resp.stream) {
        co_await run_stream(s, std::move(resp), version);
        break;
      }
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
      asio::co_spawn(s->stream.get_executor(), run_session(s), [this, s](std::exception_ptr e) {
        if (e) log_exception("a connection failed", e);
        finish_session(s);
      });
    }
  }
};

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  stop();
}

core::result<std::unique_ptr<Server>> Server::start(const ServerOptions& options, Handler& handler,
                                                    ServerObserver observer) {
  if (options.io_threads == 0 || options.io_threads > 256) {
    return core::make_error(core::errc::invalid_argument, "io_threads must be 1..256");
  }
  auto impl = std::make_shared<Impl>();
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
    impl->threads.emplace_back([raw] {
      // Named for profiles and stack dumps (Linux keeps 15 bytes).
      pthread_setname_np(pthread_self(), "engram-io");
      core::set_thread_role(core::ThreadRole::io);
      raw->ioc.run();
    });
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
  enum class Close { idle, streams, all };
  auto close_where = [&s](Close which) {
    std::lock_guard lock(s.mu);
    for (const auto& session : s.sessions) {
      asio::post(session->stream.get_executor(), [session, which] {
        beast::error_code ec;
        if (session->body) {
          // Cancelled first, so the stream can end with its terminating
          // chunk; closed once it had kStreamEndGraceMs to do so.
          session->body->cancel();
          if (which != Close::idle) session->stream.socket().close(ec);
          return;
        }
        if (which != Close::all && session->busy) return;  // finishes its request, then closes
        session->stream.socket().close(ec);
      });
    }
  };
  close_where(Close::idle);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + milliseconds(s.options.shutdown_grace_ms);
  const auto streams_deadline =
      start + milliseconds(std::min(kStreamEndGraceMs, s.options.shutdown_grace_ms));
  bool streams_closed = false;
  while (s.connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    if (!streams_closed && std::chrono::steady_clock::now() >= streams_deadline) {
      close_where(Close::streams);
      streams_closed = true;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  close_where(Close::all);
  // Whatever the handler still holds will be answered (the log completes
  // every append, a cancelled stream answers its pull); the answer should
  // find the I/O threads alive. An answer later than kHandlerDrainMs is left
  // behind: the Impl it holds keeps the I/O context until it comes.
  const auto drain_deadline = std::chrono::steady_clock::now() + milliseconds(kHandlerDrainMs);
  while ((s.in_handler.load() > 0 || s.connections.load() > 0) &&
         std::chrono::steady_clock::now() < drain_deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  if (s.in_handler.load() > 0) {
    core::logging::write(core::logging::Level::error,
                         "stopping with answers still outstanding; their connections are closed",
                         {{"outstanding", s.in_handler.load()}, {"waited_ms", kHandlerDrainMs}});
  }
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
}

}  // namespace engram::http
