#include "commands/idempotency.h"

namespace engram::commands {

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxIdempotencyKeyBytes) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

}  // namespace engram::commands
