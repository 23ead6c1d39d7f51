// engram replay rebuild / verify: the read models, offline.

#include <fmt/format.h>

#include <chrono>

#include "core/sha256.h"
#include "projections/registry.h"
#include "projections/worker.h"
#include "tools/engram/cli.h"
#include "tools/engram/commands.h"
#include "tools/engram/read_models.h"
#include "tools/engram/storage.h"

namespace engram::cli {
namespace {

struct RebuildOptions {
  std::string data_dir;
  std::string projection = "all";
  uint64_t to = 0;  // 0: the head
};

// The projections `name` selects ("all" or one name); empty when unknown.
std::vector<std::shared_ptr<projections::Projection>> select(const Storage& storage,
                                                             const std::string& name) {
  std::vector<std::shared_ptr<projections::Projection>> out;
  for (auto& p : read_models(*storage.keys)) {
    if (name == "all" || p->name() == name) out.push_back(std::move(p));
  }
  return out;
}

// Builds `store` (dropped first when `fresh`) until `target`, with a
// progress bar; returns the worker's failure, if any.
core::result<double> build(const Storage& storage, std::shared_ptr<projections::Projection> p,
                           const std::string& store, bool fresh, core::Position target) {
  if (fresh) {
    auto names = storage.models->stores();
    if (std::find(names.begin(), names.end(), store) != names.end()) {
      if (auto d = storage.models->drop(store); !d) return d.error();
    }
  }
  projections::WorkerOptions o;
  o.store = store;
  o.until = target;
  const auto t0 = std::chrono::steady_clock::now();
  auto w = projections::Worker::start(*storage.log, *storage.models, std::move(p), o);
  if (!w) return w.error();
  const uint64_t start = (*w)->position().value();
  Progress progress(store, target.value() - std::min(start, target.value()),
                    target.value() - std::min(start, target.value()) > 100'000);
  while (!(*w)->wait_for(target, std::chrono::milliseconds(100))) {
    const auto s = (*w)->stats();
    if (s.failed) return core::make_error(core::errc::corruption, s.failure);
    progress.update(s.position.value() - std::min(start, s.position.value()));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return secs;
}

// SHA-256 over every (key, value) of a store, in key order.
core::result<std::string> digest(core::ModelDb& models, const std::string& store) {
  auto s = models.store(store);
  if (!s) return s.error();
  core::Sha256 h;
  std::string from;
  for (;;) {
    auto page = (*s)->scan("", from, core::ModelStore::kMaxScanEntries);
    if (!page) return page.error();
    for (const auto& [k, v] : *page) {
      const uint64_t sizes[2] = {k.size(), v.size()};
      h.update(sizes, sizeof sizes);
      h.update(k);
      h.update(v);
    }
    if (page->size() < core::ModelStore::kMaxScanEntries) break;
    from = page->back().first + std::string(1, '\0');
  }
  return core::to_hex(h.finish());
}

std::optional<Storage> open_for_rebuild(const RebuildOptions& o, int& code) {
  return open_storage(core::DataDir(o.data_dir), Access::write, code);
}

int run_rebuild(const RebuildOptions& o) {
  int code = kOk;
  auto storage = open_for_rebuild(o, code);
  if (!storage) return code;
  auto chosen = select(*storage, o.projection);
  if (chosen.empty()) return fail(kUsage, fmt::format("no projection '{}'", o.projection));
  const uint64_t head = storage->log->head().position.value();
  if (o.to > head) return fail(kUsage, fmt::format("--to {} is past the head ({})", o.to, head));
  const core::Position target(o.to == 0 ? head : o.to);
  for (auto& p : chosen) {
    const std::string store = projections::store_name(*p);
    auto secs = build(*storage, p, store, true, target);
    if (!secs) return fail(kStorage, fmt::format("{}: {}", store, secs.error().to_string()));
    fmt::print("{}  rebuilt to position {}: {} events in {:.3f} s ({:.0f} events/s)\n", store,
               target.value(), target.value(), *secs,
               *secs > 0 ? static_cast<double>(target.value()) / *secs : 0.0);
  }
  return kOk;
}

int run_verify(const RebuildOptions& o) {
  int code = kOk;
  auto storage = open_for_rebuild(o, code);
  if (!storage) return code;
  auto chosen = select(*storage, o.projection);
  if (chosen.empty()) return fail(kUsage, fmt::format("no projection '{}'", o.projection));
  const core::Position head = storage->log->head().position;
  bool all_ok = true;
  for (auto& p : chosen) {
    const std::string live = projections::store_name(*p);
    const std::string scratch = live + ".verify";
    // The live model first catches up to the head, so both reflect the same events.
    if (auto r = build(*storage, p, live, false, head); !r) {
      return fail(kStorage, fmt::format("{}: {}", live, r.error().to_string()));
    }
    if (auto r = build(*storage, p, scratch, true, head); !r) {
      return fail(kStorage, fmt::format("{}: {}", scratch, r.error().to_string()));
    }
    auto a = digest(*storage->models, live);
    auto b = digest(*storage->models, scratch);
    (void)storage->models->drop(scratch);
    if (!a || !b) return fail(kStorage, "reading the read models failed");
    const bool same = *a == *b;
    all_ok = all_ok && same;
    fmt::print("{}  {}  live {}  rebuilt {}\n", live, same ? "ok" : "DIFFERS", a->substr(0, 16),
               b->substr(0, 16));
  }
  return all_ok ? kOk : kVerifyFailed;
}

}  // namespace

void add_rebuild_commands(CLI::App& replay, int& exit_code) {
  auto o = std::make_shared<RebuildOptions>();
  auto* rebuild = replay.add_subcommand(
      "rebuild",
      "Rebuild read models from the log into fresh stores (offline: the server must be stopped)");
  rebuild->add_option("--data", o->data_dir, "Data directory of the log")->required();
  rebuild->add_option("--projection", o->projection, "A projection's name, or all")
      ->capture_default_str();
  rebuild->add_option("--to", o->to, "Build the models as of this position (default: the head)");
  rebuild->callback([o, &exit_code] { exit_code = run_rebuild(*o); });

  auto v = std::make_shared<RebuildOptions>();
  auto* verify = replay.add_subcommand(
      "verify",
      "Rebuild each read model into a scratch store and compare it with the live one; exit 1 "
      "when they differ (offline)");
  verify->add_option("--data", v->data_dir, "Data directory of the log")->required();
  verify->add_option("--projection", v->projection, "A projection's name, or all")
      ->capture_default_str();
  verify->callback([v, &exit_code] { exit_code = run_verify(*v); });
}

}  // namespace engram::cli
