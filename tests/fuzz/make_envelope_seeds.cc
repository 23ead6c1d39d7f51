// Writes the envelope target's seed corpus: a few sealed envelopes of the
// current format (docs/log-format.md). Run it when the format changes:
//   engram_fuzz_envelope_seeds tests/fuzz/corpus/envelope

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/envelope.h"
#include "core/flexjson.h"

int main(int argc, char** argv) {
  using namespace engram::core;
  if (argc != 2) {
    fmt::print(stderr, "usage: {} DIR\n", argv[0]);
    return 2;
  }
  auto bytes = [](const std::string& s) {
    return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  const std::string data =
      *json_to_flex(nlohmann::json{{"text", "hello"}, {"n", 1}, {"tags", {"a", "b"}}});
  const std::string meta = *json_to_flex(nlohmann::json{{"source", "seed"}});
  const std::string raw = "\x01\x02\x03";
  const Uuid id = *Uuid::parse("0190a6f0-0000-7000-8000-0000000000a1");
  const Uuid other = *Uuid::parse("0190a6f0-0000-7000-8000-0000000000b2");

  std::vector<envelope::Content> contents;
  contents.push_back({"notes-1",
                      "NoteTaken",
                      1,
                      id,
                      {},
                      {},
                      {},
                      "alice",
                      PayloadFormat::flexbuffer,
                      bytes(data),
                      bytes(meta)});
  contents.push_back({"s", "Empty", 1, other, {}, {}, {}, "", PayloadFormat::flexbuffer, {}, {}});
  contents.push_back({"agent-a1",
                      "AgentRegistered",
                      2,
                      id,
                      other,
                      other,
                      id,
                      "lead@lab",
                      PayloadFormat::flatbuffer,
                      bytes(raw),
                      {}});
  Hash256 prev{};
  for (size_t i = 0; i < contents.size(); ++i) {
    std::string env = envelope::build(contents[i]);
    prev = envelope::seal(env, Position(i + 1), StreamVersion(1), 1'700'000'000'000'000'000 + i,
                          prev, envelope::content_digest(contents[i]));
    std::ofstream(fmt::format("{}/seed-{}", argv[1], i), std::ios::binary) << env;
  }
  return 0;
}
