#include "projections/audit.h"

#include <fmt/format.h>

#include "core/keys.h"

namespace engram::projections {
namespace {

using core::keys::be64;
using core::keys::get_be64;

constexpr uint64_t kTimeBias = uint64_t{1} << 63;  // orders negative times first
constexpr size_t kTailPageEvents = 1000;

std::string id_bytes(const core::Uuid& id) {
  return be64(id.hi) + be64(id.lo);
}
std::string id_key(char kind, const core::Uuid& id) {
  std::string k(1, kind);
  k += id_bytes(id);
  return k;
}
std::string actor_prefix(std::string_view actor) {
  std::string k = "a";
  k.append(actor);
  k.push_back('\0');
  return k;
}
uint64_t biased(int64_t ns) {
  return static_cast<uint64_t>(ns) ^ kTimeBias;
}

// Index entries under `prefix` from `from`, then the log's tail past the
// index's checkpoint filtered by `matches`.
template <typename Matches>
core::result<AuditHits> query(const core::ModelStore* store, const core::Log& log,
                              core::Position head, std::string_view prefix, std::string from,
                              size_t limit, Matches&& matches,
                              const std::function<bool(std::string_view)>& key_in_range = {}) {
  limit = std::min(limit, kMaxAuditIndexResults);
  AuditHits hits;
  core::Position indexed(0);
  if (store != nullptr) {
    indexed = std::min(store->checkpoint(), head);
    for (;;) {
      const size_t want =
          std::min(limit - hits.positions.size() + 1, core::ModelStore::kMaxScanEntries);
      auto page = store->scan(prefix, from, want);
      if (!page) return page.error();
      for (const auto& [key, value] : *page) {
        if (key_in_range && !key_in_range(key)) return hits;
        const core::Position p(get_be64(key.data() + key.size() - 8));
        if (p > indexed) continue;  // the tail scan below covers it
        if (hits.positions.size() == limit) {
          hits.truncated = true;
          return hits;
        }
        hits.positions.push_back(p);
      }
      if (page->size() < want) break;
      from = page->back().first;
      from.push_back('\0');
    }
  }
  if (head > indexed && head.value() - indexed.value() > kMaxTailScanEvents) {
    return core::make_error(
        core::errc::overloaded,
        fmt::format("the audit index is {} events behind the log (over the bound of {}); let the "
                    "server's audit projection catch up, or run `engram replay rebuild "
                    "--projection audit`",
                    head.value() - indexed.value(), kMaxTailScanEvents));
  }
  core::Position next = indexed.next();
  while (next <= head) {
    auto page =
        log.read_all(next, std::min<uint64_t>(kTailPageEvents, head.value() - next.value() + 1));
    if (!page) return page.error();
    if (page->empty()) break;
    for (const auto& e : *page) {
      if (e.position() > head) break;
      ++hits.tail_scanned;
      if (!matches(e)) continue;
      if (hits.positions.size() == limit) {
        hits.truncated = true;
        return hits;
      }
      hits.positions.push_back(e.position());
    }
    next = page->back().position().next();
  }
  return hits;
}

}  // namespace

core::result<void> AuditProjection::apply(std::span<const core::RecordedEvent> events,
                                          core::ModelStore::Batch& batch) {
  for (const auto& e : events) {
    const std::string pos = be64(e.position().value());
    if (!e.correlation_id().is_nil()) {
      if (auto r = batch.put(id_key('c', e.correlation_id()) + pos, ""); !r) return r;
    }
    if (!e.causation_id().is_nil()) {
      if (auto r = batch.put(id_key('k', e.causation_id()) + pos, ""); !r) return r;
    }
    if (!e.actor().empty()) {
      if (auto r = batch.put(actor_prefix(e.actor()) + be64(biased(e.recorded_at_ns())) + pos, "");
          !r) {
        return r;
      }
    }
  }
  return {};
}

core::result<AuditHits> events_of_correlation(const core::ModelStore* store, const core::Log& log,
                                              core::Position head, const core::Uuid& correlation,
                                              size_t limit) {
  const std::string prefix = id_key('c', correlation);
  return query(store, log, head, prefix, prefix, limit,
               [&](const core::RecordedEvent& e) { return e.correlation_id() == correlation; });
}

core::result<AuditHits> events_caused_by(const core::ModelStore* store, const core::Log& log,
                                         core::Position head, const core::Uuid& cause,
                                         size_t limit) {
  const std::string prefix = id_key('k', cause);
  return query(store, log, head, prefix, prefix, limit,
               [&](const core::RecordedEvent& e) { return e.causation_id() == cause; });
}

core::result<AuditHits> events_of_actor(const core::ModelStore* store, const core::Log& log,
                                        core::Position head, std::string_view actor,
                                        int64_t since_ns, int64_t until_ns, core::Position after,
                                        size_t limit) {
  const std::string prefix = actor_prefix(actor);
  std::string from = prefix + be64(biased(since_ns));
  if (after.value() > 0) {
    // Resume after the cursor's event: its key is (its time, its position).
    auto ev = log.read_all(after, 1);
    if (!ev) return ev.error();
    if (ev->empty() || ev->front().position() != after) {
      return core::make_error(core::errc::invalid_argument,
                              fmt::format("cursor position {} is not in the log", after.value()));
    }
    const int64_t t = std::max(since_ns, ev->front().recorded_at_ns());
    from = prefix + be64(biased(t)) + be64(after.value() + 1);
  }
  const std::string until_key = prefix + be64(biased(until_ns)) + be64(UINT64_MAX);
  return query(
      store, log, head, prefix, from, limit,
      [&](const core::RecordedEvent& e) {
        return e.actor() == actor && e.recorded_at_ns() >= since_ns &&
               e.recorded_at_ns() <= until_ns && e.position() > after;
      },
      [&](std::string_view key) { return key <= until_key; });
}

}  // namespace engram::projections
