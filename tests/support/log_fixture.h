#pragma once

#include <string>
#include <vector>

#include "core/keystore_rocks.h"
#include "core/log.h"
#include "core/model_db.h"
#include "tests/support/temp_dir.h"

namespace engram::test {

inline core::EventData event(std::string type, std::string payload = "{}",
                             core::Uuid id = core::Uuid::v7_now()) {
  core::EventData e;
  e.id = id;
  e.type = std::move(type);
  e.payload = std::move(payload);
  return e;
}

inline std::unique_ptr<core::RocksKeyStore> open_keys_or_die(const std::filesystem::path& dir) {
  auto keys = core::RocksKeyStore::open(core::DataDir(dir));
  ENGRAM_ASSERT_MSG(keys.has_value(), keys ? "" : keys.error().message.c_str());
  return std::move(*keys);
}

inline std::unique_ptr<core::ModelDb> open_models_or_die(const std::filesystem::path& dir) {
  auto models = core::ModelDb::open(core::DataDir(dir));
  ENGRAM_ASSERT_MSG(models.has_value(), models ? "" : models.error().message.c_str());
  return std::move(*models);
}

inline std::unique_ptr<core::Log> open_or_die(const std::filesystem::path& dir,
                                              const core::LogOptions& options = {}) {
  auto log = core::Log::open(dir, options);
  ENGRAM_ASSERT_MSG(log.has_value(), log ? "" : log.error().message.c_str());
  return std::move(*log);
}

}  // namespace engram::test
