#include "core/merkle.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>

#include "core/assert.h"

namespace engram::core::merkle {
namespace {

// The split point of RFC 6962: the largest power of two below n (n >= 2).
uint64_t split(uint64_t n) {
  return uint64_t{1} << (63 - std::countl_zero(n - 1));
}

Hash256 root_of(std::span<const Hash256> leaves) {
  if (leaves.size() == 1) return leaves[0];
  const uint64_t k = split(leaves.size());
  return node_hash(root_of(leaves.first(k)), root_of(leaves.subspan(k)));
}

result<void> path(Source& src, uint64_t start, uint64_t m, uint64_t n, std::vector<Hash256>& out) {
  if (n == 1) return {};
  const uint64_t k = split(n);
  const bool left = m < k;
  auto below = left ? path(src, start, m, k, out) : path(src, start + k, m - k, n - k, out);
  if (!below) return below.error();
  auto sibling = left ? subtree_root(src, start + k, n - k) : subtree_root(src, start, k);
  if (!sibling) return sibling.error();
  out.push_back(*sibling);
  return {};
}

result<void> subproof(Source& src, uint64_t start, uint64_t m, uint64_t n, bool whole,
                      std::vector<Hash256>& out) {
  if (m == n) {
    if (whole) return {};
    auto r = subtree_root(src, start, n);
    if (!r) return r.error();
    out.push_back(*r);
    return {};
  }
  const uint64_t k = split(n);
  const bool left = m <= k;
  auto below = left ? subproof(src, start, m, k, whole, out)
                    : subproof(src, start + k, m - k, n - k, false, out);
  if (!below) return below.error();
  auto sibling = left ? subtree_root(src, start + k, n - k) : subtree_root(src, start, k);
  if (!sibling) return sibling.error();
  out.push_back(*sibling);
  return {};
}

// One context per thread: making an EVP context per hash costs more than
// hashing 65 bytes.
Sha256& thread_hasher() {
  thread_local Sha256 h;
  return h;
}

bool lsb(uint64_t x) {
  return (x & 1) != 0;
}

// The walk both RFC 9162 verifications share: the bits of fn (the node's
// index) and sn (the last index) say whether each proof hash is a left
// sibling (`left`) or a right one (`right`). Returns whether the proof ends
// at the root (sn reaches 0 with the last hash).
template <typename Left, typename Right>
bool walk(uint64_t fn, uint64_t sn, std::span<const Hash256> path, Left&& left, Right&& right) {
  for (const Hash256& c : path) {
    if (sn == 0) return false;
    if (lsb(fn) || fn == sn) {
      left(c);
      if (!lsb(fn)) {
        do {
          fn >>= 1;
          sn >>= 1;
        } while (!lsb(fn) && fn != 0);
      }
    } else {
      right(c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0;
}

}  // namespace

Hash256 empty_root() {
  Sha256 h;
  return h.finish();
}

Hash256 leaf_hash(const Hash256& event_hash) {
  uint8_t buf[1 + 32];
  buf[0] = 0x00;
  std::memcpy(buf + 1, event_hash.data(), event_hash.size());
  Sha256& h = thread_hasher();
  h.update(buf, sizeof buf);
  return h.finish();
}

Hash256 node_hash(const Hash256& left, const Hash256& right) {
  uint8_t buf[1 + 32 + 32];
  buf[0] = 0x01;
  std::memcpy(buf + 1, left.data(), left.size());
  std::memcpy(buf + 33, right.data(), right.size());
  Sha256& h = thread_hasher();
  h.update(buf, sizeof buf);
  return h.finish();
}

Frontier::Frontier(uint64_t size, std::vector<Part> parts) : size_(size), parts_(std::move(parts)) {
  uint64_t covered = 0;
  for (size_t i = 0; i < parts_.size(); ++i) {
    ENGRAM_ASSERT(parts_[i].level >= 0 && parts_[i].level < 64);
    ENGRAM_ASSERT(i == 0 || parts_[i].level < parts_[i - 1].level);
    covered += uint64_t{1} << parts_[i].level;
  }
  ENGRAM_ASSERT(covered == size_);
}

Hash256 Frontier::root() const {
  if (parts_.empty()) return empty_root();
  Hash256 h = parts_.back().hash;
  for (size_t i = parts_.size() - 1; i-- > 0;) h = node_hash(parts_[i].hash, h);
  return h;
}

result<Hash256> subtree_root(Source& src, uint64_t start, uint64_t size) {
  if (size == 0) return empty_root();
  const bool perfect = std::has_single_bit(size) && start % size == 0;
  if (perfect && size >= kChunkLeaves) {
    return src.node(NodeId{std::countr_zero(size), start / size});
  }
  if (size <= kChunkLeaves) {
    auto leaves = src.leaves(start, size);
    if (!leaves) return leaves.error();
    if (leaves->size() != size) {
      return make_error(
          errc::corruption,
          fmt::format("the tree source gave {} leaves of {} from {}", leaves->size(), size, start));
    }
    return root_of(*leaves);
  }
  const uint64_t k = split(size);
  auto left = subtree_root(src, start, k);
  if (!left) return left.error();
  auto right = subtree_root(src, start + k, size - k);
  if (!right) return right.error();
  return node_hash(*left, *right);
}

result<Hash256> root(Source& src, uint64_t size) {
  return subtree_root(src, 0, size);
}

result<std::vector<Hash256>> inclusion_proof(Source& src, uint64_t index, uint64_t size) {
  if (index >= size) {
    return make_error(errc::invalid_argument,
                      fmt::format("leaf {} is not in a tree of {} leaves", index, size));
  }
  std::vector<Hash256> out;
  if (auto p = path(src, 0, index, size, out); !p) return p.error();
  return out;
}

result<std::vector<Hash256>> consistency_proof(Source& src, uint64_t old_size, uint64_t new_size) {
  if (old_size == 0 || old_size > new_size) {
    return make_error(errc::invalid_argument,
                      fmt::format("no consistency proof from a tree of {} to one of {} leaves",
                                  old_size, new_size));
  }
  std::vector<Hash256> out;
  if (auto p = subproof(src, 0, old_size, new_size, true, out); !p) return p.error();
  return out;
}

bool verify_inclusion(uint64_t index, uint64_t size, const Hash256& leaf,
                      std::span<const Hash256> proof, const Hash256& root) {
  if (index >= size || proof.size() > kMaxProofHashes) return false;
  Hash256 r = leaf;
  const bool reached_root = walk(
      index, size - 1, proof, [&](const Hash256& c) { r = node_hash(c, r); },
      [&](const Hash256& c) { r = node_hash(r, c); });
  return reached_root && r == root;
}

bool verify_consistency(uint64_t old_size, uint64_t new_size, const Hash256& old_root,
                        const Hash256& new_root, std::span<const Hash256> proof) {
  if (old_size == 0 || old_size > new_size || proof.size() > kMaxProofHashes) return false;
  if (old_size == new_size) return proof.empty() && old_root == new_root;
  std::vector<Hash256> path;
  // A power-of-two old tree is a node of the new one, so its root starts the path.
  if (std::has_single_bit(old_size)) path.push_back(old_root);
  path.insert(path.end(), proof.begin(), proof.end());
  if (path.empty()) return false;
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while (lsb(fn)) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash256 fr = path[0];
  Hash256 sr = path[0];
  const bool reached_root = walk(
      fn, sn, std::span<const Hash256>(path).subspan(1),
      [&](const Hash256& c) {
        fr = node_hash(c, fr);
        sr = node_hash(c, sr);
      },
      [&](const Hash256& c) { sr = node_hash(sr, c); });
  return reached_root && fr == old_root && sr == new_root;
}

}  // namespace engram::core::merkle
