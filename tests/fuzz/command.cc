// Fuzz target: a command as the bus reads it. The input is the command type,
// a newline, and the JSON body ("RegisterAgent\n{...}"). The body goes
// through the strict JSON parse, the expected version is taken out as the
// bus takes it (commands/bus.cc, prepare), and the command's own parser
// runs; a command that parses must read back from its to_json to the same
// command (the bus's typed entry point relies on it), and is asked for its
// stream, its needs and its authorization.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "commands/aggregates.h"
#include "commands/limits.h"
#include "core/expected_version.h"
#include "core/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace engram;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  if (nl == std::string_view::npos) return 0;
  const commands::CommandSpec* spec = commands::find_command(input.substr(0, nl));
  if (spec == nullptr) return 0;
  auto body = core::parse_json_object(input.substr(nl + 1));
  if (!body) return 0;
  if (auto it = body->find("expected_version"); it != body->end()) {
    if (!core::ExpectedVersion::from_json(*it)) return 0;
    body->erase(it);
  }
  static const commands::Limits limits;  // the bus's defaults (BusOptions is a Limits)
  const commands::ParseContext pc{limits, "0190a6f0-0000-7000-8000-000000000001"};
  static const commands::Principal admin{"fuzz", {commands::Role::admin}, std::nullopt};
  static const commands::Principal agent{"fuzz", {commands::Role::writer}, "a1"};
  try {
    auto command = spec->parse(spec->type, *body, pc);
    if (!command) return 0;
    // A typed command reaches the bus as its to_json, read back by the same
    // parser: that must give the same command.
    const nlohmann::json typed = commands::to_json(*command);
    auto again = spec->parse(spec->type, typed, pc);
    if (!again || commands::to_json(*again) != typed) std::abort();
    (void)commands::stream_of(*command);
    (void)commands::needs_of(*command);
    (void)commands::authorize(*command, admin);
    (void)commands::authorize(*command, agent);
  } catch (const nlohmann::json::exception&) {
    // The bus answers these as malformed_json (bus.cc's prepare).
  }
  return 0;
}
