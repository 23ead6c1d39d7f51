#pragma once

// A Merkle tree over the log's event hashes, in the style of RFC 6962
// (Certificate Transparency) §2.1: leaf i is event i+1, hashed as
// SHA-256(0x00 || event hash); an interior node is SHA-256(0x01 || left ||
// right); a tree of n leaves splits at the largest power of two below n. A
// tree of `size` leaves is the log's first `size` events, so a tree size is
// a position.
//
// The writer keeps the right edge of the tree (a Frontier) and stores the
// root of every perfect subtree of at least 2^kStoredMinLevel leaves in the
// log's `merkle` family as it completes. Smaller subtrees are recomputed
// from the events when a proof needs them (at most 2^kStoredMinLevel leaf
// reads), so the tree costs the writer one extra key per 128 events on
// average. Proofs are logarithmic in the tree size and are checked with the
// verify_* functions alone: no database, no trust in the server. Format in
// docs/log-format.md.

#include <cstdint>
#include <span>
#include <vector>

#include "core/assert.h"
#include "core/result.h"
#include "core/sha256.h"

namespace engram::core::merkle {

inline constexpr int kStoredMinLevel = 8;
inline constexpr uint64_t kChunkLeaves = uint64_t{1} << kStoredMinLevel;
// A proof has at most one hash per level (consistency: two), so 64 levels bound both.
inline constexpr size_t kMaxProofHashes = 128;

// SHA-256 of nothing: the root of the empty tree.
Hash256 empty_root();
Hash256 leaf_hash(const Hash256& event_hash);
Hash256 node_hash(const Hash256& left, const Hash256& right);

// A stored node: the root of the perfect subtree of 2^level leaves that
// starts at leaf index * 2^level.
struct NodeId {
  int level = 0;
  uint64_t index = 0;
};

// The right edge of a growing tree: the roots of the perfect subtrees that
// make up its leaves, largest first.
class Frontier {
 public:
  struct Part {
    int level;
    Hash256 hash;
  };

  Frontier() = default;
  // The frontier of a tree of `size` leaves from its parts, largest first;
  // they must be the binary decomposition of size (asserted).
  Frontier(uint64_t size, std::vector<Part> parts);

  // Adds the next leaf. Calls on_stored(NodeId, hash) for each perfect
  // subtree of at least kStoredMinLevel levels that this leaf completes.
  template <typename OnStored>
  void append(const Hash256& leaf, OnStored&& on_stored) {
    append_subtree(0, leaf, on_stored);
  }
  // Adds the root of a whole subtree of 2^level leaves; the size must be a
  // multiple of 2^level (asserted). Nodes it completes above `level` go to
  // on_stored as in append().
  template <typename OnStored>
  void append_subtree(int level, const Hash256& root, OnStored&& on_stored) {
    ENGRAM_ASSERT(level >= 0 && level < 64 && size_ % (uint64_t{1} << level) == 0);
    Hash256 h = root;
    uint64_t index = size_ >> level;
    const int first_level = level;
    while (!parts_.empty() && parts_.back().level == level) {
      h = node_hash(parts_.back().hash, h);
      parts_.pop_back();
      ++level;
      index >>= 1;
      if (level >= kStoredMinLevel) on_stored(NodeId{level, index}, h);
    }
    parts_.push_back(Part{level, h});
    size_ += uint64_t{1} << first_level;
  }

  uint64_t size() const { return size_; }
  Hash256 root() const;
  const std::vector<Part>& parts() const { return parts_; }

 private:
  uint64_t size_ = 0;
  std::vector<Part> parts_;
};

// Where the hashes of a stored tree come from (the log, or a test's memory).
class Source {
 public:
  virtual ~Source() = default;
  // A stored node (level >= kStoredMinLevel); errc::corruption when missing.
  virtual result<Hash256> node(NodeId id) = 0;
  // Leaf hashes of leaves [first, first + count), count <= kChunkLeaves.
  virtual result<std::vector<Hash256>> leaves(uint64_t first, uint64_t count) = 0;
};

// The root of leaves [start, start + size) (the RFC's MTH of that range).
result<Hash256> subtree_root(Source& src, uint64_t start, uint64_t size);
// The root of a tree of `size` leaves.
result<Hash256> root(Source& src, uint64_t size);
// RFC 6962 §2.1.1 PATH(index, D[size]): index < size.
result<std::vector<Hash256>> inclusion_proof(Source& src, uint64_t index, uint64_t size);
// RFC 6962 §2.1.2 PROOF(old_size, D[new_size]): 0 < old_size <= new_size.
result<std::vector<Hash256>> consistency_proof(Source& src, uint64_t old_size, uint64_t new_size);

// RFC 9162 §2.1.3.2: does `proof` place `leaf` at `index` in the tree of
// `size` leaves whose root is `root`?
bool verify_inclusion(uint64_t index, uint64_t size, const Hash256& leaf,
                      std::span<const Hash256> proof, const Hash256& root);
// RFC 9162 §2.1.4.2: is the tree of new_size leaves with new_root an
// extension of the one of old_size leaves with old_root?
bool verify_consistency(uint64_t old_size, uint64_t new_size, const Hash256& old_root,
                        const Hash256& new_root, std::span<const Hash256> proof);

}  // namespace engram::core::merkle
