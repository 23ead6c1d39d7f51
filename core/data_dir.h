#pragma once

// The layout of a data directory: every file and folder engram keeps there,
// named once. Every command (serve, append, replay, audit, token) finds its
// files through a DataDir, so a path set in the configuration (the signing
// key, the token keys) is the same path for all of them.
//
// <root>/                     the log's RocksDB (CURRENT, MANIFEST-*, *.sst, *.log, LOCK)
// <root>/keys/                the per-owner key store's RocksDB (crypto-shredding)
// <root>/models/db/           the read models' RocksDB (one column family per model)
// <root>/models/<name>/       a read model's files outside RocksDB (Xapian, FAISS snapshots)
// <root>/audit/checkpoints.jsonl  signed checkpoints
// <root>/audit/signing-key.pem    the checkpoint signing key (.pub beside it)
// <root>/auth/keys.json       the token verification keys
//
// The log stays at the root so that data directories written before the
// key store and the read models had databases of their own keep their log
// where it was; Log::open moves the rest (docs/log-format.md, "Layout").

#include <filesystem>
#include <string_view>

namespace engram::core {

class DataDir {
 public:
  // Paths the configuration may move elsewhere; empty: the default under root.
  struct Overrides {
    std::filesystem::path signing_key_file;
    std::filesystem::path token_keys_file;
  };

  explicit DataDir(std::filesystem::path root, Overrides overrides = {});

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path log_dir() const { return root_; }
  std::filesystem::path keys_dir() const { return root_ / "keys"; }
  std::filesystem::path models_dir() const { return root_ / "models"; }
  std::filesystem::path models_db_dir() const { return models_dir() / "db"; }
  // A read model's own files; `store` is a model store name ("catalog@v3").
  std::filesystem::path model_files_dir(std::string_view store) const;
  std::filesystem::path audit_dir() const { return root_ / "audit"; }
  std::filesystem::path checkpoints_file() const { return audit_dir() / "checkpoints.jsonl"; }
  const std::filesystem::path& signing_key_file() const { return signing_key_file_; }
  std::filesystem::path signing_public_key_file() const;
  const std::filesystem::path& token_keys_file() const { return token_keys_file_; }

 private:
  std::filesystem::path root_;
  std::filesystem::path signing_key_file_;
  std::filesystem::path token_keys_file_;
};

}  // namespace engram::core
