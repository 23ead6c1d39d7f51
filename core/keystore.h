#pragma once

// Per-owner data keys, kept outside the event log so that destroying one
// makes that owner's encrypted content unreadable everywhere (crypto-
// shredding) without touching the hash chain, which covers ciphertext.
//
// Contract
// - Keys live in a store of their own (core/keystore_rocks.h: a RocksDB
//   instance beside the log's), never in events nor in read models. Each
//   owner has at most one live key, with a generation number that starts
//   at 1 and grows by one per destroy.
// - get_or_create() and destroy() are durable when they return (fsynced),
//   so they must not run on an I/O or log thread.
// - After destroy() no reader gets the key; only its generation number
//   remains (a tombstone record), so a later get_or_create() makes a new
//   key with a higher generation and content sealed under the old one stays
//   unreadable. The key's bytes leave the disk shortly after (the store
//   shreds in the background and says when it is done).
// - Thread-safe.

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/crypto.h"
#include "core/result.h"

namespace engram::core {

struct OwnerKey {
  uint64_t generation = 0;
  AeadKey key{};
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;
  // The owner's live key, made (random, 256-bit) when there is none.
  virtual result<OwnerKey> get_or_create(std::string_view owner) = 0;
  // The owner's live key; nullopt when it has none (never made, or destroyed).
  virtual result<std::optional<OwnerKey>> get(std::string_view owner) const = 0;
  // Destroys the owner's live key (no-op when there is none); returns the
  // generation destroyed, 0 when there was none.
  virtual result<uint64_t> destroy(std::string_view owner) = 0;
};

}  // namespace engram::core
