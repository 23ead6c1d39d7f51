#pragma once

// FlatBuffers helpers for the domain payloads: building them from command
// fields and reading stored ones back.

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "commands/aggregate.h"
#include "schemas/payload.h"

namespace engram::commands::flat {

using Builder = flatbuffers::FlatBufferBuilder;
using String = flatbuffers::Offset<flatbuffers::String>;
using Strings = flatbuffers::Offset<flatbuffers::Vector<String>>;
using Bytes = flatbuffers::Offset<flatbuffers::Vector<uint8_t>>;
using Floats = flatbuffers::Offset<flatbuffers::Vector<float>>;
using StringVector = flatbuffers::Vector<String>;

// Offsets for the builder; absent optionals give 0 (the field is left out).
inline String str(Builder& b, std::string_view s) {
  return b.CreateString(s.data(), s.size());
}
inline String str(Builder& b, const std::string& s) {
  return str(b, std::string_view(s));
}
String str(Builder& b, const std::optional<std::string>& s);
Strings strings(Builder& b, const std::vector<std::string>& v);
Strings strings(Builder& b, const std::optional<std::vector<std::string>>& v);
Bytes bytes(Builder& b, std::string_view s);
Floats floats(Builder& b, const std::optional<std::vector<float>>& v);

template <typename T>
NewEvent finish(Builder& b, flatbuffers::Offset<T> root, std::string_view type) {
  b.Finish(root);
  return NewEvent{std::string(type),
                  std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize())};
}

using schema::Aligned;
using schema::verified;

std::string text(const flatbuffers::String* s);  // "" when absent
std::vector<std::string> texts(const StringVector* v);
std::string_view view(const flatbuffers::Vector<uint8_t>* v);  // empty when absent

// JSON for rendering. Absent optional fields are left out of the object.
void put(nlohmann::json& out, const char* key, const flatbuffers::String* s);
void put(nlohmann::json& out, const char* key, const StringVector* v);
// A float vector with each value printed as its shortest float form (0.1,
// not 0.10000000149011612).
nlohmann::json floats_json(std::span<const float> v);
void put(nlohmann::json& out, const char* key, const flatbuffers::Vector<float>* v);
// A FlexBuffer field as JSON; the bytes come from the log and are verified.
nlohmann::json flex_json(const flatbuffers::Vector<uint8_t>* v);

}  // namespace engram::commands::flat
