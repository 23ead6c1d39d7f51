#pragma once

// RocksDB column families and key/value layouts of the log. Documented in
// docs/log-format.md; change both together. Integers are big-endian so that
// RocksDB's bytewise order is numeric order.

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "core/named_type.h"
#include "core/sha256.h"

namespace engram::core::keys {

inline constexpr const char* kEventsCf = "events";             // position → envelope
inline constexpr const char* kStreamIndexCf = "stream_index";  // stream \0 version → position
inline constexpr const char* kStreamHeadsCf = "stream_heads";  // stream → version
inline constexpr const char* kDedupeCf = "dedupe";             // event id → DedupeEntry
inline constexpr const char* kMetaCf = "meta";                 // named values below
inline constexpr const char* kMerkleCf = "merkle";             // level(1) index(8) → node hash
inline constexpr const char* kEntityIndexCf = "entity_index";  // stream \0 entity \0 position → version
// Read model stores, one family each, in the read models' database
// (core/model_db.h); logs of the older layout held them too (migrated).
inline constexpr std::string_view kModelCfPrefix = "model:";
// The older layout kept the key store in the log's database (migrated).
inline constexpr const char* kLegacyKeysCf = "keys";

inline constexpr std::string_view kMetaFormat = "format";   // kFormatV1
inline constexpr std::string_view kMetaHead = "head";       // position(8) hash(32)
inline constexpr std::string_view kMetaLogId = "log_id";    // 16-byte UUIDv7
// The older name of log_id (renamed by a writable open).
inline constexpr std::string_view kLegacyMetaNodeId = "node_id";
inline constexpr std::string_view kFormatV1 = "engram-log-v1";
// The name of the extractor the entity index was built with (Log::rebuild_entity_index).
inline constexpr std::string_view kMetaEntityIndex = "entity_index";

inline void put_be64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (56 - 8 * i));
}
inline uint64_t get_be64(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

inline std::string be64(uint64_t v) {
  std::string s(8, '\0');
  put_be64(s.data(), v);
  return s;
}
inline std::optional<uint64_t> parse_be64(std::string_view s) {
  if (s.size() != 8) return std::nullopt;
  return get_be64(s.data());
}

inline std::string position_key(Position p) {
  return be64(p.value());
}

// Stream names never contain NUL (the log rejects them), so the separator
// keeps every stream's versions contiguous and ordered.
inline std::string stream_index_prefix(std::string_view stream) {
  std::string k;
  k.reserve(stream.size() + 9);
  k.append(stream);
  k.push_back('\0');
  return k;
}
inline std::string stream_index_key(std::string_view stream, StreamVersion v) {
  std::string k = stream_index_prefix(stream);
  k.append(be64(v.value()));
  return k;
}

// Entity names never contain NUL either (checked like stream names), so an
// entity's entries are contiguous and ordered by position.
inline std::string entity_prefix(std::string_view stream, std::string_view entity) {
  std::string k;
  k.reserve(stream.size() + entity.size() + 10);
  k.append(stream);
  k.push_back('\0');
  k.append(entity);
  k.push_back('\0');
  return k;
}
inline std::string entity_key(std::string_view stream, std::string_view entity, Position p) {
  std::string k = entity_prefix(stream, entity);
  k.append(be64(p.value()));
  return k;
}

// A stored Merkle node (core/merkle.h): level, then the subtree's index.
inline std::string merkle_node_key(int level, uint64_t index) {
  std::string k(9, '\0');
  k[0] = static_cast<char>(level);
  put_be64(k.data() + 1, index);
  return k;
}

inline std::string dedupe_key(uint64_t id_hi, uint64_t id_lo) {
  return be64(id_hi) + be64(id_lo);
}

// A stream index entry: (key after the stream's prefix, value) -> (version, position).
struct IndexEntry {
  StreamVersion version;
  Position position;
  static std::optional<IndexEntry> decode(std::string_view key_after_prefix,
                                          std::string_view value) {
    auto v = parse_be64(key_after_prefix);
    auto p = parse_be64(value);
    if (!v || !p) return std::nullopt;
    return IndexEntry{StreamVersion(*v), Position(*p)};
  }
};

// What the dedupe family remembers of each event id: where it went and the
// digest of its content, to tell a retry from a conflicting reuse.
struct DedupeEntry {
  Position position;
  StreamVersion version;
  Hash256 digest{};

  static constexpr size_t kSize = 8 + 8 + 32;
  std::string encode() const {
    std::string s(kSize, '\0');
    put_be64(s.data(), position.value());
    put_be64(s.data() + 8, version.value());
    std::memcpy(s.data() + 16, digest.data(), digest.size());
    return s;
  }
  static std::optional<DedupeEntry> decode(std::string_view s) {
    if (s.size() != kSize) return std::nullopt;
    DedupeEntry e;
    e.position = Position(get_be64(s.data()));
    e.version = StreamVersion(get_be64(s.data() + 8));
    std::memcpy(e.digest.data(), s.data() + 16, e.digest.size());
    return e;
  }
};

struct HeadValue {
  Position position;
  Hash256 hash{};

  static constexpr size_t kSize = 8 + 32;
  std::string encode() const {
    std::string s(kSize, '\0');
    put_be64(s.data(), position.value());
    std::memcpy(s.data() + 8, hash.data(), hash.size());
    return s;
  }
  static std::optional<HeadValue> decode(std::string_view s) {
    if (s.size() != kSize) return std::nullopt;
    HeadValue h;
    h.position = Position(get_be64(s.data()));
    std::memcpy(h.hash.data(), s.data() + 8, h.hash.size());
    return h;
  }
};

}  // namespace engram::core::keys
