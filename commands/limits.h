#pragma once

// The bounds on a command's fields and decision (docs/commands.md, "Field
// kinds and limits"), shared by the parsers and the bus.

#include <cstddef>

namespace engram::commands {

struct Limits {
  size_t max_events_per_command = 100;
  size_t max_embedding_dims = 4096;
  size_t max_text_bytes = 256 << 10;  // title, body, content...
  size_t max_tags = 64;
  size_t max_id_bytes = 128;
};

}  // namespace engram::commands
