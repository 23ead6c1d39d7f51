#include "core/data_dir.h"

#include "core/assert.h"

namespace engram::core {

DataDir::DataDir(std::filesystem::path root, Overrides overrides)
    : root_(std::move(root)),
      signing_key_file_(overrides.signing_key_file.empty() ? audit_dir() / "signing-key.pem"
                                                           : std::move(overrides.signing_key_file)),
      token_keys_file_(overrides.token_keys_file.empty() ? root_ / "auth" / "keys.json"
                                                         : std::move(overrides.token_keys_file)) {
  ENGRAM_ASSERT(!root_.empty());
}

std::filesystem::path DataDir::model_files_dir(std::string_view store) const {
  // Store names are [a-z0-9_.@-] and never "db" (they carry "@v").
  ENGRAM_ASSERT(store != "db" && !store.empty() && store.find('/') == std::string_view::npos);
  return models_dir() / std::string(store);
}

std::filesystem::path DataDir::signing_public_key_file() const {
  return signing_key_file_.string() + ".pub";
}

}  // namespace engram::core
