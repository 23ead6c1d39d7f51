#pragma once

// JSON <-> FlexBuffers, for generic-stream payloads and metadata: clients
// speak JSON, the log stores FlexBuffers. Both directions are bounded in
// nesting depth; FlexBuffers read from the log are verified before use.

#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>

#include "core/result.h"

namespace engram::core {

inline constexpr size_t kMaxJsonDepth = 64;

// The deepest nesting of objects and arrays in a JSON text, counted on the
// raw bytes so a parser never sees input that could exhaust its stack (or a
// destructor's). Text that is not JSON may be miscounted; the parser rejects
// it anyway.
size_t json_nesting_depth(std::string_view text);

// Encodes a JSON value as a FlexBuffer. Fails with errc::invalid_argument
// when nested deeper than max_depth.
result<std::string> json_to_flex(const nlohmann::json& value, size_t max_depth = kMaxJsonDepth);

// Decodes a FlexBuffer to JSON. An empty buffer is JSON null. Fails with
// errc::corruption when the buffer does not verify or nests too deep.
result<nlohmann::json> flex_to_json(std::span<const uint8_t> bytes,
                                    size_t max_depth = kMaxJsonDepth);

}  // namespace engram::core
