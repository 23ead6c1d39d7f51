#pragma once

// Signed checkpoints: the server signs the log's head (position, head hash,
// Merkle tree root, time) with an Ed25519 key and appends the result to a
// file outside RocksDB. An auditor who kept a copy of that file can later
// prove that the log still extends every checkpoint in it, so rewriting
// history needs the signing key as well as the database. Formats:
// docs/log-format.md, "Signed checkpoints".
//
// Contract
// - Keys: Ed25519 (OpenSSL). The private key lives in an unencrypted PKCS#8
//   PEM file, mode 0600; <file>.pub holds the public key's PEM for auditors.
// - A Checkpoint's signature covers signed_bytes() only; the JSON form adds
//   redundant fields for people (signed_at, key_id) that from_json() checks
//   against the signed ones, so an edited file cannot say one thing to a
//   reader and another to a verifier.
// - from_json() never checks the signature: which key to trust is the
//   caller's decision (signature_valid() and then compare `key`).
// - CheckpointFile has one appender at a time (the signing thread); readers
//   may read while it appends and see whole lines only.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/named_type.h"
#include "core/result.h"
#include "core/sha256.h"
#include "core/uuid.h"

struct evp_pkey_st;

namespace engram::core {

inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519SignatureBytes = 64;
using Ed25519Signature = std::array<uint8_t, kEd25519SignatureBytes>;

// A key file (private PEM, public PEM or hex) is a few hundred bytes; more
// is not a key file.
inline constexpr size_t kMaxCheckpointKeyFileBytes = 16 * 1024;
// One checkpoint line, its newline included. A real one is about 450 bytes.
inline constexpr size_t kMaxCheckpointLineBytes = 4096;
// The most checkpoints one read_checkpoints() or write_checkpoints() handles
// (about 200 MB in memory): one a minute for nearly two years.
inline constexpr size_t kMaxCheckpointsRead = 1'000'000;

inline constexpr std::string_view kCheckpointFormat = "engram-checkpoint-v1";

struct PublicKey {
  std::array<uint8_t, kEd25519PublicKeyBytes> bytes{};

  std::string to_hex() const;
  // Short id to name a key in messages: the first 8 bytes of
  // SHA-256(bytes), hex (16 chars).
  std::string id() const;
  // Exactly 64 hex digits (either case); invalid_argument otherwise.
  static result<PublicKey> from_hex(std::string_view hex);
  bool operator==(const PublicKey&) const = default;
};

// A trusted key given on a command line: 64 hex digits, or the path of a
// file holding either the hex form or a PEM public key
// (SubjectPublicKeyInfo). not_found when `arg` is not hex and names no file;
// invalid_argument when the file holds neither form or a key that is not
// Ed25519; io_error when it cannot be read.
result<PublicKey> load_public_key(std::string_view arg);

// An Ed25519 private key. Movable, not copyable; sign() may be called from
// several threads at once.
class SigningKey {
 public:
  static SigningKey generate();
  // An unencrypted PEM PKCS#8 file. not_found when missing; corruption when
  // its content is not an Ed25519 private key (or is larger than
  // kMaxCheckpointKeyFileBytes); io_error when the OS fails to read it.
  static result<SigningKey> load(const std::filesystem::path& file);
  // Loads `file`, or, only when it does not exist, creates it (and its
  // missing parent directories, mode 0700) with a fresh key: written to a
  // temporary file with mode 0600, fsynced, renamed without replacing (a
  // concurrent creator's key wins and is loaded), directory fsynced. Then
  // makes sure <file>.pub holds the public key's PEM, rewriting it when it
  // is missing or holds something else (it is derived from the key).
  static result<SigningKey> load_or_create(const std::filesystem::path& file);

  const PublicKey& public_key() const { return public_key_; }
  Ed25519Signature sign(std::span<const uint8_t> message) const;
  Ed25519Signature sign(std::string_view message) const;
  // The public key as SubjectPublicKeyInfo PEM (what <file>.pub holds).
  std::string public_key_pem() const;

  SigningKey(SigningKey&&) noexcept = default;
  SigningKey& operator=(SigningKey&&) noexcept = default;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  ~SigningKey() = default;

 private:
  struct PkeyFree {
    void operator()(evp_pkey_st* key) const;
  };
  explicit SigningKey(std::unique_ptr<evp_pkey_st, PkeyFree> key);

  std::unique_ptr<evp_pkey_st, PkeyFree> key_;
  PublicKey public_key_;
};

// False for a wrong signature, message or key, and for a key that is not a
// valid curve point.
bool ed25519_verify(const PublicKey& key, std::span<const uint8_t> message,
                    std::span<const uint8_t, kEd25519SignatureBytes> signature);
bool ed25519_verify(const PublicKey& key, std::string_view message,
                    std::span<const uint8_t, kEd25519SignatureBytes> signature);

struct Checkpoint {
  Uuid log_id;               // Log::log_id(): the log's, not the node's
  Position position;         // the tree size: events 1..position are covered
  Hash256 head_hash{};       // the hash of the event at `position` (zero when position is 0)
  Hash256 tree_root{};       // RFC 6962 Merkle root over the first `position` event hashes
  int64_t signed_at_ns = 0;  // Unix ns
  PublicKey key;             // the key that signed it
  Ed25519Signature signature{};

  // What the signature covers (117 bytes): "engram/checkpoint/v1\0" ||
  // log_id (hi u64 BE, lo u64 BE) || position u64 BE || head_hash (32) ||
  // tree_root (32) || signed_at_ns u64 BE (two's complement).
  std::string signed_bytes() const;
  // Asserts that head_hash is zero when position is 0.
  static Checkpoint sign(const SigningKey& k, Uuid log_id, Position position,
                         const Hash256& head_hash, const Hash256& tree_root, int64_t signed_at_ns);
  // `signature` over signed_bytes() under `key`. Says nothing about whether
  // `key` is one the caller trusts.
  bool signature_valid() const;

  // One JSON object with a fixed key order:
  // {"format":"engram-checkpoint-v1","log_id":"<uuid>","position":N,
  //  "head_hash":"hex","tree_root":"hex","signed_at":"RFC 3339 UTC with ns",
  //  "signed_at_ns":N,"key_id":"...","public_key":"hex","signature":"hex"}
  nlohmann::ordered_json to_json() const;
  // to_json().dump(): one line, without the newline.
  std::string to_line() const;
  // Parses that form; invalid_argument naming the field on anything
  // malformed: a missing or unknown field, a wrong format marker, bad hex, a
  // negative or non-integer number, a non-zero head_hash at position 0, or
  // signed_at / key_id disagreeing with signed_at_ns / public_key. Does not
  // check the signature.
  static result<Checkpoint> from_json(const nlohmann::json& j);

  bool operator==(const Checkpoint&) const = default;
};

// An append-only file of checkpoints, one JSON line each.
class CheckpointFile {
 public:
  explicit CheckpointFile(std::filesystem::path path);
  // Appends one line with a single write() on an O_APPEND descriptor, then
  // fdatasync; creates the file (and missing directories) when missing. A
  // torn last line left by a crash is cut off first, so it never becomes a
  // malformed middle line. io_error on failure (a short write is undone);
  // corruption when the file's tail is unterminated and longer than a line.
  result<void> append(const Checkpoint& c) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Reads every checkpoint in a file (also an exported copy), in file order. A
// last line without its newline is a write torn by a crash: ignored. Any
// other malformed line (also an empty one, or one longer than
// kMaxCheckpointLineBytes) is errc::corruption naming the line number.
// not_found when the file is missing; invalid_argument when it holds more
// than kMaxCheckpointsRead lines.
result<std::vector<Checkpoint>> read_checkpoints(const std::filesystem::path& path);

// The file's last complete checkpoint, reading only its tail (at most two
// lines' bound): what a restarted signer needs, without reading the whole
// history. nullopt when the file is missing or holds no complete line;
// errc::corruption when that line is malformed.
result<std::optional<Checkpoint>> read_newest_checkpoint(const std::filesystem::path& path);

// Writes `cs` to `path` (an export), replacing it: through a temporary file
// in the same directory, fsynced, renamed, directory fsynced. Creates
// missing directories. invalid_argument for more than kMaxCheckpointsRead.
result<void> write_checkpoints(const std::filesystem::path& path, std::span<const Checkpoint> cs);

}  // namespace engram::core
