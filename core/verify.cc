#include <fmt/format.h>

#include "core/keys.h"
#include "core/log_impl.h"

namespace engram::core {

result<VerifyReport> Log::verify(Position from, Position to,
                                 const std::function<void(uint64_t, uint64_t)>& progress) const {
  constexpr uint64_t kProgressEvery = 1 << 16;
  const Head head = impl_->head->get();
  from = std::max(from, Position(1));
  to = std::min(to, head.position);

  VerifyReport report;
  auto broken = [&](uint64_t position, std::string problem) {
    report.first_bad = Position(position);
    report.problem = std::move(problem);
    return report;
  };
  if (from > to) return report;

  // The link into the range: the hash of the event before `from`.
  Hash256 prev{};
  if (from.value() > 1) {
    std::string value;
    const rocksdb::Status s =
        impl_->db->Get(rocksdb::ReadOptions(), impl_->events,
                       keys::position_key(Position(from.value() - 1)), &value);
    if (s.IsNotFound()) return broken(from.value() - 1, "event missing");
    if (!s.ok()) return make_error(errc::io_error, s.ToString());
    auto ev = RecordedEvent::decode(std::move(value));
    if (!ev) return broken(from.value() - 1, "envelope fails verification");
    prev = ev->hash();
  }

  const uint64_t total = to.value() - from.value() + 1;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a full scan must not evict the working set
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
  uint64_t expected = from.value();
  for (it->Seek(keys::position_key(from)); it->Valid() && expected <= to.value(); it->Next()) {
    auto pos = keys::parse_be64(it->key().ToStringView());
    if (!pos) return broken(expected, "malformed event key in the events family");
    if (*pos != expected) {
      return broken(expected, fmt::format("event missing (the next stored event is at {})", *pos));
    }
    auto ev = RecordedEvent::decode(it->value().ToString());
    if (!ev) return broken(expected, "envelope fails FlatBuffers verification");
    if (ev->position().value() != expected) {
      return broken(expected, fmt::format("envelope says position {}", ev->position().value()));
    }
    if (ev->prev_hash() != prev) {
      return broken(expected, "prev hash does not match the hash of the event before it");
    }
    const Hash256 hash = ev->compute_hash();
    if (hash != ev->hash())
      return broken(expected, "hash mismatch: the event's content was altered");
    prev = hash;
    report.head = Head{Position(expected), hash};
    ++report.events_checked;
    ++expected;
    if (progress && report.events_checked % kProgressEvery == 0)
      progress(report.events_checked, total);
  }
  if (!it->status().ok()) return make_error(errc::io_error, it->status().ToString());
  if (expected <= to.value()) {
    return broken(expected, fmt::format("event missing (the log ends at {})", expected - 1));
  }
  if (to == head.position) {
    if (prev != head.hash)
      return broken(to.value(), "hash differs from the head hash recorded in meta");
    // With a live writer, events past the head are a group being synced;
    // in a read-only view nothing may lie beyond it.
    if (!impl_->writer && it->Valid()) {
      return broken(
          to.value() + 1,
          fmt::format("event stored beyond the head ({}) recorded in meta", head.position.value()));
    }
  }
  if (progress) progress(report.events_checked, total);
  return report;
}

}  // namespace engram::core
