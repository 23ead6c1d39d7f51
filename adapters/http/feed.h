#pragma once

// The live feed behind GET /v1/subscribe: every subscriber gets the log's
// events after a position, as Server-Sent Events, first from the log
// (catch-up), then as they are acknowledged (live). Beast-free: a
// subscription is a BodyStream the Server pulls.
//
// Contract
// - One thread serves every subscriber. It reads the log only for a
//   subscriber whose pull is pending, at most max_chunk_events events per
//   pull, and builds one piece (chunk) of at most max_chunk_bytes (one event
//   whose rendering alone is larger is sent alone). With the server's one
//   piece in flight per connection, that bounds what a subscriber holds.
// - An event is the SSE block
//     id: <position>\nevent: <type>\ndata: <render(event), one line>\n\n
//   Events come in position order with no gaps (besides those the type
//   filter skips) and none twice on one subscription: a client that resumes
//   after the last id it received misses nothing and gets nothing again.
// - A subscriber that has nothing new for heartbeat_ms gets the comment
//   ": heartbeat\n\n", so clients and proxies see a live connection.
// - Slow consumer: a subscriber that has once caught up with the head
//   (live) and then falls more than max_lag_events behind it gets
//     event: cutoff\ndata: {"position":P,"reason":"slow consumer"}\n\n
//   and its stream ends. Every matching event up to P was delivered: resume
//   from P. A subscriber still catching up is never cut off for lag (the
//   server's write timeout bounds one that stops reading). A log read error
//   ends a stream the same way, with the error as the reason.
// - At most max_subscribers at once; subscribe() refuses more.
// - When nobody has anything to read, the thread sleeps: on the log's head
//   when every subscriber waits at the head, else until a pull arrives (and
//   looks at the head at least every kFeedPollMs).
// - Thread-safe. Streams may outlive the Feed (they end); the Log must
//   outlive the Feed, or stop() must have returned before it closes.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/http/server.h"
#include "core/log.h"
#include "core/result.h"

namespace engram::http {

// The type filter's bounds: a comma-separated list of at most kMaxFeedTypes
// names of 1..kMaxFeedTypeBytes bytes each (the log's limit for types).
inline constexpr size_t kMaxFeedTypes = 32;
inline constexpr size_t kMaxFeedTypeBytes = 128;

// How often, in milliseconds, the feed thread looks at the log's head while
// some subscriber is busy writing (its next pull will wake the thread), and
// the longest it sleeps on the head before it looks at new subscribers.
inline constexpr uint64_t kFeedPollMs = 5;
inline constexpr uint64_t kFeedHeadWaitMs = 20;

struct FeedOptions {
  // A subscriber with nothing to receive for this long gets a heartbeat.
  uint64_t heartbeat_ms = 15'000;
  // A live subscriber further than this many events behind the head is cut
  // off; catching up again is cheap (it resumes from the log).
  uint64_t max_lag_events = 10'000;
  // Subscriptions open at once; more are refused (503).
  size_t max_subscribers = 256;
  // One piece: at most this many events (the log reads at most 10000) ...
  size_t max_chunk_events = 256;
  // ... and at most this many bytes, unless one event alone is larger.
  size_t max_chunk_bytes = 256 << 10;
};

// Renders one event as the JSON of its `data:` line. It must be one line
// (compact JSON is). Called on the feed thread.
using FeedRender = std::function<std::string(const core::RecordedEvent&)>;

// Parses the `types` filter ("A,B"): errc::invalid_argument (with a message
// for the client) when it is empty, has an empty name, more than
// kMaxFeedTypes names or one longer than kMaxFeedTypeBytes. Duplicates are
// kept once.
core::result<std::vector<std::string>> parse_feed_types(std::string_view list);

class Feed {
 public:
  Feed(const core::Log& log, FeedOptions options);
  ~Feed();  // stop()s
  Feed(const Feed&) = delete;
  Feed& operator=(const Feed&) = delete;

  // A stream of the events after `after` whose type is in `types` (every
  // type when empty). errc::overloaded at max_subscribers,
  // errc::shutting_down after stop().
  core::result<std::shared_ptr<BodyStream>> subscribe(core::Position after,
                                                      std::vector<std::string> types,
                                                      FeedRender render);

  // Ends every stream (pending pulls get nullopt), refuses new ones and
  // joins the thread. Idempotent.
  void stop();

  // Open subscriptions, and the slow consumers cut off so far.
  size_t subscribers() const;
  uint64_t cutoffs() const;
  const FeedOptions& options() const;

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace engram::http
