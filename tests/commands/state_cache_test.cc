#include "commands/state_cache.h"

#include <doctest/doctest.h>

namespace engram::test {
namespace {

using commands::Snapshot;
using commands::StateCache;

std::shared_ptr<const Snapshot> agent_at(uint64_t version, size_t name_bytes = 0) {
  commands::agent::State s;
  s.registered = version > 0;
  s.name = std::string(name_bytes, 'n');
  return std::make_shared<const Snapshot>(Snapshot{version, s});
}

TEST_CASE("state cache: least recently used goes first") {
  StateCache cache(2, 1 << 20);
  cache.refresh("agent-a", agent_at(1));
  cache.refresh("agent-b", agent_at(1));
  CHECK(cache.get("agent-a") != nullptr);  // a is now the most recent
  cache.refresh("agent-c", agent_at(1));
  CHECK(cache.get("agent-b") == nullptr);
  CHECK(cache.get("agent-a") != nullptr);
  CHECK(cache.get("agent-c") != nullptr);
  const auto s = cache.stats();
  CHECK(s.entries == 2);
  CHECK(s.hits == 3);
  CHECK(s.misses == 1);
}

TEST_CASE("state cache: bounded in bytes") {
  StateCache cache(100, 4096);
  cache.refresh("agent-a", agent_at(1, 1500));
  cache.refresh("agent-b", agent_at(1, 1500));
  CHECK(cache.stats().entries == 2);
  cache.refresh("agent-c", agent_at(1, 1500));
  CHECK(cache.stats().entries == 2);
  CHECK(cache.stats().bytes <= 4096);
  CHECK(cache.get("agent-a") == nullptr);
  cache.refresh("agent-huge", agent_at(1, 10'000));  // larger than the whole cache
  CHECK(cache.get("agent-huge") == nullptr);
  CHECK(cache.stats().entries == 2);
}

TEST_CASE("state cache: only moves forward") {
  StateCache cache(10, 1 << 20);
  cache.refresh("agent-a", agent_at(3));
  cache.refresh("agent-a", agent_at(2));  // older read: ignored
  CHECK(cache.get("agent-a")->version == 3);
  cache.advance("agent-a", 2, agent_at(4));  // decided against 2: stale, ignored
  CHECK(cache.get("agent-a")->version == 3);
  cache.advance("agent-a", 3, agent_at(4));
  CHECK(cache.get("agent-a")->version == 4);
  cache.advance("agent-new", 0, agent_at(1));  // absent: stored
  CHECK(cache.get("agent-new")->version == 1);
}

}  // namespace
}  // namespace engram::test
