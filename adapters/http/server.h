#pragma once

// The HTTP/1.1 server: connections, parsing, limits and shutdown. It knows
// nothing of engram's routes; it hands each complete request to a Handler
// and writes back what the handler answers. Only server.cc includes Beast.
//
// Contract
// - One coroutine per connection; requests on a connection are answered in
//   order, one at a time (no pipelining), so each connection holds at most
//   one response.
// - Every request must arrive whole within read_timeout_ms of the first
//   read (slow senders are cut off), with headers of at most
//   max_header_bytes (431) and a body of at most max_body_bytes (413). A new
//   parser is used per message. Malformed HTTP gets 400; all three close
//   the connection after the answer.
// - At most max_connections are open; further ones get 503 and are closed.
//   A streamed response (Response::stream) holds its connection, so it
//   counts against max_connections for as long as it runs.
// - A streamed response is written with chunked transfer encoding (plain
//   bytes delimited by the close for HTTP/1.0) and `Connection: close`: the
//   server pulls one piece, writes it, and only then pulls the next, so a
//   stream buffers at most one piece per connection (the producer bounds the
//   piece). A piece must be written within write_timeout_ms or the
//   connection is closed and the stream cancelled: a consumer that does not
//   read is cut off. A client that closes its end cancels the stream at
//   once, without waiting for the next piece.
// - stop(): stops accepting, closes idle connections, cancels streams (they
//   end with their terminating chunk; a stream still writing after
//   kStreamEndGraceMs is closed), lets requests in flight finish and answer
//   (with Connection: close) for up to shutdown_grace_ms, then closes what
//   is left and waits at most kHandlerDrainMs more for the answers the
//   handler still owes (logging how many it leaves behind). It returns
//   when the I/O threads have exited.
// - A handler that throws is logged and its request answered with
//   protocol_error(500); a response builder that throws likewise. A handler
//   that drops Respond without calling it is logged, and its connection is
//   closed without an answer. Neither keeps stop() waiting.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace engram::http {

// How long a stream cancelled by stop() may take to write its terminating
// chunk before its connection is closed, in milliseconds (at most
// shutdown_grace_ms): subscribers must not hold up a shutdown.
inline constexpr uint64_t kStreamEndGraceMs = 200;

// How long stop(), after shutdown_grace_ms, still waits for answers the
// handler owes before it stops the I/O threads without them.
inline constexpr uint64_t kHandlerDrainMs = 5'000;

struct ServerOptions {
  std::string listen_address = "127.0.0.1";
  uint16_t port = 8080;  // 0: an ephemeral port (see Server::port())
  size_t io_threads = 2;
  size_t max_connections = 1024;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  uint64_t read_timeout_ms = 10'000;
  // Writing a response, or one piece of a streamed one.
  uint64_t write_timeout_ms = 10'000;
  uint64_t shutdown_grace_ms = 10'000;
};

struct Request {
  std::string method;                                        // "GET"
  std::string target;                                        // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string remote_ip;
  // The header's value, or empty when absent.
  std::string_view header(std::string_view lower_name) const {
    for (const auto& [k, v] : headers) {
      if (k == lower_name) return v;
    }
    return {};
  }
};

// A response body made piece by piece while it is being sent (the live
// feed). Beast-free, so producers need not know the server.
//
// Contract
// - The server calls pull() again only after the previous `deliver` was
//   called and its piece written: one pull at a time, and the producer holds
//   at most one piece per stream.
// - `deliver` is called exactly once per pull, from any thread (inside
//   pull() too): with the next piece (an empty piece is skipped), or with
//   nullopt to end the body. It must not block.
// - cancel(): the client is gone or the server is stopping. A pending pull
//   is answered with nullopt promptly, and later pulls at once. Idempotent,
//   from any thread; the server calls it when the stream ends for any
//   reason, so the producer can release what the stream holds.
class BodyStream {
 public:
  using Deliver = std::function<void(std::optional<std::string> piece)>;
  virtual ~BodyStream() = default;
  virtual void pull(Deliver deliver) = 0;
  virtual void cancel() = 0;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set: a streamed response. `body` (when not empty) is sent as its first
  // piece, then the stream's pieces until it ends; the connection closes
  // after it.
  std::shared_ptr<BodyStream> stream;
};

// What the server reports about connections, for metrics.
struct ServerObserver {
  std::function<void(int delta)> connections;
};

// How a handler answers: exactly once, from any thread, with a function that
// makes the response (only the first call counts). The server runs that function on the connection's
// strand, so a handler answering from a thread that must stay quick (the
// log's) leaves building the response to an I/O thread.
using Respond = std::function<void(std::function<Response()>)>;

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void handle(Request request, Respond respond) = 0;
  // The answer to a request the server rejected before routing it (413,
  // 431, 400, 503 for too many connections), or whose handler threw (500).
  virtual Response protocol_error(int status, std::string_view detail,
                                  std::string_view remote_ip) = 0;
};

// A request the server refuses before it reaches the handler: the status
// it answers (413, 431, 400), or 0 when it answers nothing (the peer went
// away, or stopped in the middle of a message).
struct ProtocolError {
  int status = 0;
  std::string detail;
};

// One request read from `bytes` as a connection reads it: the same parser,
// limits and conversion (header names lower-cased), the remote address
// 127.0.0.1. For tests and fuzzing; bytes after the message are ignored.
core::result<Request, ProtocolError> parse_request(std::string_view bytes,
                                                   const ServerOptions& options);

// What an exception says, for a log line ("an exception that is not a
// std::exception" for others).
std::string describe_exception(std::exception_ptr e);

class Server {
 public:
  // Binds and starts the I/O threads. errc::io_error when the address
  // cannot be bound (in use, not local), errc::invalid_argument for a bad
  // address.
  static core::result<std::unique_ptr<Server>> start(const ServerOptions& options, Handler& handler,
                                                     ServerObserver observer = {});
  ~Server();  // stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  void stop();

  struct Impl;

 private:
  explicit Server(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace engram::http
