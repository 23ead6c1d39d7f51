// Fuzz target: a whole HTTP request through the router. The bytes are read
// as a connection reads them (http::parse_request: the server's parser and
// limits); a request the server would refuse gets the handler's
// protocol_error, any other goes through http::Api — the route table, the
// middleware, the handlers — over a log kept in memory (RocksDB's MemEnv),
// with authentication off, so every route's handler is reachable. The
// answer must come exactly once, within kAnswerTimeoutS, with a status from
// 100 to 599; a failure is a problem document with a code. The fuzzer's
// thread takes the I/O threads' role, so a route that blocks there aborts.

#include <rocksdb/env.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "adapters/http/api.h"
#include "adapters/http/server.h"
#include "commands/bus.h"
#include "core/data_dir.h"
#include "core/keystore_rocks.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/thread_role.h"

namespace {

using namespace engram;

// Far above any request's real cost (a command's append in memory): only a
// request that is never answered reaches it.
constexpr int kAnswerTimeoutS = 30;

struct World {
  std::shared_ptr<rocksdb::Env> env{rocksdb::NewMemEnv(rocksdb::Env::Default())};
  std::unique_ptr<core::Log> log;
  std::unique_ptr<core::RocksKeyStore> keys;
  std::unique_ptr<commands::CommandBus> bus;
  core::metrics::Registry metrics;
  http::ServerOptions server;
  std::unique_ptr<http::Api> api;

  World() {
    core::LogOptions o;
    o.env = env;
    // The log checks and makes its directory on the real file system (then
    // keeps its files in memory): one of its own per process.
    const auto dir = std::filesystem::temp_directory_path() /
                     ("engram-fuzz-http-" + std::to_string(::getpid()));
    auto opened = core::Log::open(dir, o);
    if (!opened) std::abort();
    log = std::move(*opened);
    auto opened_keys = core::RocksKeyStore::open(core::DataDir(dir), core::KeyStoreOptions{false, env});
    if (!opened_keys) std::abort();
    keys = std::move(*opened_keys);
    bus = std::make_unique<commands::CommandBus>(*log, *keys);
    server.max_body_bytes = 64 << 10;
    server.max_header_bytes = 8 << 10;
    http::ApiOptions a;
    a.access_log = false;
    a.openapi_yaml = "openapi: 3.0.3\n";
    api = std::make_unique<http::Api>(*log, *bus, metrics, a);
    // Requests are handled here as on the server's I/O threads, whose
    // contract (core/thread_role.h) is then checked too.
    core::set_thread_role(core::ThreadRole::io);
  }
};

void check(const http::Response& r) {
  if (r.status < 100 || r.status > 599) std::abort();
  if (r.content_type != "application/problem+json") return;
  const auto problem = nlohmann::json::parse(r.body, nullptr, false);
  if (!problem.is_object() || !problem.contains("code") || problem["status"] != r.status) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();  // never destroyed: threads outlive the run
  auto request = http::parse_request(
      std::string_view(reinterpret_cast<const char*>(data), size), world->server);
  if (!request) {
    if (request.error().status != 0) {
      check(world->api->protocol_error(request.error().status, request.error().detail, ""));
    }
    return 0;
  }
  auto answered = std::make_shared<std::promise<http::Response>>();
  auto future = answered->get_future();
  world->api->handle(std::move(*request), [answered](std::function<http::Response()> make) {
    answered->set_value(make());  // a second answer throws: a bug
  });
  if (future.wait_for(std::chrono::seconds(kAnswerTimeoutS)) != std::future_status::ready) {
    std::abort();
  }
  http::Response r = future.get();
  check(r);
  if (r.stream) r.stream->cancel();
  return 0;
}
