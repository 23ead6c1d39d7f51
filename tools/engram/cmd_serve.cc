// engram serve: the command endpoint and the log, on one node.

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>

#include "adapters/auth/jwt.h"
#include "adapters/auth/token_cache.h"
#include "adapters/http/api.h"
#include "adapters/http/server.h"
#include "commands/bus.h"
#include "core/logging.h"
#include "core/metrics.h"
#include "projections/audit.h"
#include "projections/registry.h"
#include "projections/runtime.h"
#include "tools/engram/cli.h"
#include "tools/engram/commands.h"
#include "tools/engram/read_models.h"
#include "tools/engram/serve_config.h"
#include "tools/engram/storage.h"

extern const char* const kEngramOpenApiYaml;

namespace engram::cli {
namespace {

// Accepted tokens remembered so repeat requests skip the signature check.
constexpr size_t kVerifiedTokenCacheEntries = 10'000;

struct ServeFlags {
  std::string config_file;
  std::string data_dir;
  std::string listen;
  bool no_auth = false;
  std::string log_level;
};

// The thread that waits for SIGINT and SIGTERM (run_serve's, in sigwait).
pthread_t g_signal_thread;

// Threads that libraries start before run_serve blocks the signals
// (OpenBLAS starts its pool when it is loaded) do not block them, so the
// kernel may hand SIGTERM to one of them; left at its default action it
// would end the process there and then, skipping the graceful shutdown.
// This handler, which runs only on such a thread, passes the signal on to
// the waiting thread, where it stays pending, blocked, until sigwait takes
// it. pthread_kill is async-signal-safe.
extern "C" void pass_signal_on(int sig) {
  pthread_kill(g_signal_thread, sig);
}

core::logging::Level parse_level(const std::string& s) {
  using L = core::logging::Level;
  if (s == "debug") return L::debug;
  if (s == "warn") return L::warn;
  if (s == "error") return L::error;
  if (s == "off") return L::off;
  return L::info;
}

http::Authenticator make_authenticator(std::shared_ptr<auth::CachingVerifier> verifier) {
  return [verifier](
             std::string_view token) -> core::result<commands::Principal, http::AuthFailure> {
    const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    auto claims = verifier->verify(token, now_s);
    if (!claims) {
      return http::AuthFailure{auth::auth_errc_name(claims.error().code), claims.error().detail};
    }
    commands::Principal p;
    p.subject = std::move(claims->subject);
    for (const auto& r : claims->roles) {
      if (auto role = commands::parse_role(r)) p.roles.push_back(*role);
    }
    p.agent_id = std::move(claims->agent);
    return p;
  };
}

int run_serve(const ServeFlags& flags) {
  ServeConfig config;
  if (!flags.config_file.empty()) {
    if (auto r = apply_config_file(flags.config_file, config); !r) {
      return fail(kUsage, r.error().message);
    }
  }
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  if (!flags.listen.empty()) config.listen = flags.listen;
  if (flags.no_auth) config.auth_enabled = false;
  if (!flags.log_level.empty()) config.log_level = flags.log_level;
  if (auto r = apply_listen(config); !r) return fail(kUsage, r.error().message);
  if (auto r = check_config(config); !r) return fail(kUsage, r.error().message);
  const core::DataDir layout = config.layout();

  // Signals are handled by this thread alone (sigwait below); every thread
  // started from here on inherits the mask, and threads started before
  // pass them on (pass_signal_on).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  g_signal_thread = pthread_self();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  struct sigaction pass {};
  pass.sa_handler = pass_signal_on;
  pass.sa_flags = SA_RESTART;
  sigfillset(&pass.sa_mask);
  sigaction(SIGINT, &pass, nullptr);
  sigaction(SIGTERM, &pass, nullptr);

  core::logging::init(parse_level(config.log_level));
  using L = core::logging::Level;

  std::shared_ptr<auth::CachingVerifier> verifier;
  if (config.auth_enabled) {
    auto ring = auth::KeyRing::load_or_create(layout.token_keys_file());
    if (!ring) return fail(kDataDir, ring.error().message);
    verifier = std::make_shared<auth::CachingVerifier>(auth::Verifier(std::move(*ring)),
                                                       kVerifiedTokenCacheEntries);
  }

  int code = kOk;
  core::LogOptions log_options;
  // Many concurrent appenders: polling for the next append would take CPU
  // from the I/O threads that produce them.
  log_options.writer_spin_ns = 0;
  auto storage = open_storage(layout, Access::write, code, log_options);
  if (!storage) return code;
  core::Log& log = *storage->log;

  // Signed checkpoints of the head: every N events or T ms, and at shutdown.
  auto signing_key = core::SigningKey::load_or_create(layout.signing_key_file());
  if (!signing_key) return fail(kDataDir, signing_key.error().message);
  auto checkpointer = std::make_unique<core::Checkpointer>(
      log, std::move(*signing_key), core::CheckpointFile(layout.checkpoints_file()),
      config.checkpoints);

  // The bus decides on threads of its own (ThreadRole::bus), never on the
  // log's or the I/O threads; building it may rebuild the log's entity index.
  auto bus = std::make_unique<commands::CommandBus>(log, *storage->keys, config.bus);
  if (auto r = bus->status(); !r) return fail(kStorage, r.error().to_string());

  core::metrics::Registry metrics;
  register_storage_metrics(metrics, *storage);
  auto read_side =
      projections::Runtime::start(log, *storage->models, read_models(*storage->keys));
  if (!read_side) return fail(kStorage, read_side.error().to_string());
  (*read_side)->register_metrics(metrics);
  config.api.read_side = read_side->get();
  config.api.openapi_yaml = kEngramOpenApiYaml;
  if (verifier) config.api.authenticate = make_authenticator(verifier);
  // The audit routes: the audit projection's index (while one serves), the
  // signed checkpoints and the public key they are held to.
  config.api.audit_index = [runtime = read_side->get()]() -> const core::ModelStore* {
    auto w = runtime->serving(projections::AuditProjection::kName);
    return w ? &w->store() : nullptr;
  };
  config.api.audit_checkpoints = layout.checkpoints_file();
  config.api.audit_public_key = layout.signing_public_key_file();
  http::Api api(log, *bus, metrics, config.api);
  http::ServerObserver observer;
  observer.connections = [&api](int delta) { api.connections_changed(delta); };
  auto server = http::Server::start(config.server, api, observer);
  if (!server) return fail(kUsage, server.error().message);

  const std::string host = config.server.listen_address.find(':') != std::string::npos
                               ? "[" + config.server.listen_address + "]"
                               : config.server.listen_address;
  fmt::print("engram: listening on http://{}:{}\n", host, (*server)->port());
  std::fflush(stdout);
  core::logging::write(L::info, "serving",
                       {{"listen", fmt::format("{}:{}", host, (*server)->port())},
                        {"data", config.data_dir.string()},
                        {"auth", config.auth_enabled},
                        {"head", log.head().position.value()}});

  int sig = 0;
  sigwait(&signals, &sig);
  core::logging::write(L::info, "shutting down",
                       {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  // Stop accepting, let requests in flight finish (their appends complete
  // and are answered), then close the log, which drains its queue.
  (*server)->stop();
  server->reset();
  // The live feed's thread reads the log, the query pool the read models:
  // both stop before those close.
  api.stop();
  // Nothing is in flight once the server stopped; the bus's threads go.
  bus.reset();
  read_side->reset();
  // Nothing appends any more: the last checkpoint covers the final head.
  checkpointer.reset();
  const core::Head head = log.head();
  storage.reset();
  core::logging::write(L::info, "stopped", {{"head", head.position.value()}});
  core::logging::flush();
  return kOk;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<ServeFlags>();
  auto* serve = app.add_subcommand(
      "serve", "Serve the command HTTP endpoint on the embedded log (one node, no NATS)");
  serve->add_option("--config", f->config_file, "JSON config file (docs/http-api.md)");
  serve->add_option("--data", f->data_dir, "Data directory of the log (default ./data)");
  serve->add_option("--listen", f->listen, "ADDR:PORT to listen on (default 127.0.0.1:8080)");
  serve->add_flag("--no-auth", f->no_auth,
                  "Turn authentication off (refused unless listening on loopback)");
  serve->add_option("--log-level", f->log_level, "debug, info, warn, error or off");
  serve->callback([f, &exit_code] { exit_code = run_serve(*f); });
}

}  // namespace engram::cli
