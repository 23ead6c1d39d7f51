#pragma once

// The thread contract (docs/architecture.md, "Threads"): every long-lived
// thread engram starts says what it is, and code that must not run on some
// kinds of thread checks it, in release builds too.
//
// Contract
// - A thread takes its role once, when it starts (set_thread_role); threads
//   engram did not start (a test's, a CLI's main thread) are `unassigned`
//   and may do anything.
// - `io` threads run the HTTP server's event loop: they never block, so
//   they never wait on an fsync, a compaction, a search or a verify.
// - `log_writer` and `log_syncer` do the log's own bookkeeping only: no
//   caller code runs there beyond handing a completion to another thread.
// - expect_may_block(what) aborts when called on an io or log thread; code
//   that fsyncs, compacts, searches or otherwise waits calls it first.
// - expect_not_log_thread(what) aborts on log threads only (work that may
//   block briefly, such as a RocksDB read, but must not delay group commit).

#include <cstdint>
#include <string_view>

namespace engram::core {

enum class ThreadRole : uint8_t {
  unassigned,
  io,           // HTTP event loop
  log_writer,   // the log's write stage
  log_syncer,   // the log's sync stage
  bus,          // command bus: decide, re-decide, completions
  projection,   // one projection worker
  query,        // read-model and audit queries for HTTP
  maintenance,  // background work: key shredding, checkpoints, rebuild swaps
};

std::string_view thread_role_name(ThreadRole role) noexcept;

// Sets the calling thread's role; a thread's role is set at most once.
void set_thread_role(ThreadRole role);
ThreadRole thread_role() noexcept;

// Aborts (with `what` and the role in the message) on an io, log_writer or
// log_syncer thread.
void expect_may_block(const char* what);
// Aborts on a log_writer or log_syncer thread.
void expect_not_log_thread(const char* what);

}  // namespace engram::core
