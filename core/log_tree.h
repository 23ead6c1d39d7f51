#pragma once

// The log's Merkle tree (core/merkle.h, RFC 6962) as its readers see it:
// roots and proofs over acknowledged events. The writer keeps the tree
// (docs/log-format.md, "The Merkle tree"); this object only reads it.
//
// Contract
// - Each call reads O(log size) stored nodes and at most a few hundred
//   events, through the log's RocksDB (readers never block the writer).
// - errc::invalid_argument for a size past the head or a position outside
//   the tree; errc::corruption when a stored node or event is missing.
// - The Log must outlive the LogTree. Thread-safe.

#include <vector>

#include "core/log.h"
#include "core/named_type.h"
#include "core/result.h"
#include "core/sha256.h"

namespace engram::core {

class LogTree {
 public:
  explicit LogTree(const Log& log) : log_(log) {}

  // The root of the tree of the first `size` events.
  result<Hash256> root(Position size) const;
  // The inclusion proof of the event at `position` in the tree of
  // `tree_size` events.
  result<std::vector<Hash256>> inclusion_proof(Position position, Position tree_size) const;
  // The proof that the tree of new_size events extends the one of old_size.
  result<std::vector<Hash256>> consistency_proof(Position old_size, Position new_size) const;

 private:
  const Log& log_;
};

}  // namespace engram::core
