// The ceiling for bench/http: a bare Beast HTTP/1.1 keep-alive server that
// answers every request with 200 and a tiny JSON body, doing nothing else.
//
// It is what `engram serve` would be if a command cost nothing: the same
// library (Beast over Asio), the same I/O model (C++20 coroutines on one
// io_context run by N threads, like Beast's example/http/server/awaitable),
// a read timeout per request as any real server needs, no logging. wrk
// drives both with the same script, so the ratio engram / bare is the share
// of the transport's throughput that engram keeps while doing real work.
//
// Usage: engram_bench_http_bare [--address A] [--port N] [--threads N]
//   --address  default 127.0.0.1
//   --port     default 0 (an ephemeral port)
//   --threads  io threads, default 2
// Prints one line on stdout once listening:
//   engram_bench_http_bare: listening on http://ADDR:PORT
// Stops on SIGTERM or SIGINT.

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including
// <utility>; include it first.
// clang-format off
#include <utility>
// clang-format on

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kReadTimeout = std::chrono::seconds(10);
constexpr std::string_view kBody = R"({"ok":true})";
// Same order of magnitude as the engram server's bounds.
constexpr std::uint64_t kMaxBodyBytes = 1024 * 1024;
constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;

asio::awaitable<void> session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxBodyBytes);
    parser.header_limit(kMaxHeaderBytes);
    stream.expires_after(kReadTimeout);
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;  // end of stream, timeout or a bad request: just close

    const http::request<http::string_body>& req = parser.get();
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "engram-bench-bare");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = kBody;
    res.prepare_payload();

    stream.expires_never();
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive()) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> listen(tcp::acceptor& acceptor) {
  for (;;) {
    error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
  }
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "engram_bench_http_bare: %s\nusage: engram_bench_http_bare [--address A] [--port N] "
               "[--threads N]\n",
               msg);
  std::exit(2);
}

int parse_int(const char* s, int lo, int hi, const char* what) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) usage((std::string("bad ") + what).c_str());
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1";
  int port = 0;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help")
      usage("a bare Beast keep-alive server answering 200 to everything");
    if (i + 1 >= argc) usage("missing value");
    if (a == "--address") {
      address = argv[++i];
    } else if (a == "--port") {
      port = parse_int(argv[++i], 0, 65535, "--port");
    } else if (a == "--threads") {
      threads = parse_int(argv[++i], 1, 256, "--threads");
    } else {
      usage("unknown option");
    }
  }

  try {
    asio::io_context ioc(threads);
    tcp::endpoint endpoint(asio::ip::make_address(address), static_cast<unsigned short>(port));
    tcp::acceptor acceptor(ioc);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    const tcp::endpoint bound = acceptor.local_endpoint();

    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const error_code&, int) { ioc.stop(); });

    asio::co_spawn(ioc, listen(acceptor), asio::detached);

    std::cout << "engram_bench_http_bare: listening on http://" << bound.address().to_string()
              << ':' << bound.port() << std::endl;

    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(threads - 1));
    for (int t = 1; t < threads; ++t) pool.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& th : pool) th.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engram_bench_http_bare: %s\n", e.what());
    return 1;
  }
  return 0;
}
