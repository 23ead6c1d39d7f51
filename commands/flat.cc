#include "commands/flat.h"

#include <charconv>
#include <cstring>
#include <system_error>

#include "core/assert.h"
#include "core/flexjson.h"

namespace engram::commands::flat {

String str(Builder& b, const std::optional<std::string>& s) {
  return s ? str(b, *s) : 0;
}

Strings strings(Builder& b, const std::vector<std::string>& v) {
  std::vector<String> offsets;
  offsets.reserve(v.size());
  for (const auto& s : v) offsets.push_back(str(b, s));
  return b.CreateVector(offsets);
}

Strings strings(Builder& b, const std::optional<std::vector<std::string>>& v) {
  return v ? strings(b, *v) : 0;
}

Bytes bytes(Builder& b, std::string_view s) {
  return b.CreateVector(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

Floats floats(Builder& b, const std::optional<std::vector<float>>& v) {
  return v ? b.CreateVector(*v) : 0;
}

std::string text(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

std::vector<std::string> texts(const StringVector* v) {
  std::vector<std::string> out;
  if (v == nullptr) return out;
  out.reserve(v->size());
  for (const auto* s : *v) out.push_back(s->str());
  return out;
}

std::string_view view(const flatbuffers::Vector<uint8_t>* v) {
  if (v == nullptr) return {};
  return std::string_view(reinterpret_cast<const char*>(v->data()), v->size());
}

void put(nlohmann::json& out, const char* key, const flatbuffers::String* s) {
  if (s != nullptr) out[key] = s->str();
}

void put(nlohmann::json& out, const char* key, const StringVector* v) {
  if (v != nullptr) out[key] = texts(v);
}

nlohmann::json floats_json(std::span<const float> v) {
  nlohmann::json out = nlohmann::json::array();
  out.get_ref<nlohmann::json::array_t&>().reserve(v.size());
  char buf[32];
  for (const float f : v) {
    // The shortest text that reads back as this float, read as a double, so
    // the JSON shows what the client sent.
    const auto printed = std::to_chars(buf, buf + sizeof(buf), f);
    ENGRAM_ASSERT(printed.ec == std::errc());
    double d = 0;
    std::from_chars(buf, printed.ptr, d);
    out.push_back(d);
  }
  return out;
}

void put(nlohmann::json& out, const char* key, const flatbuffers::Vector<float>* v) {
  if (v != nullptr) out[key] = floats_json(std::span<const float>(v->data(), v->size()));
}

nlohmann::json flex_json(const flatbuffers::Vector<uint8_t>* v) {
  if (v == nullptr || v->size() == 0) return nlohmann::json::object();
  auto j = core::flex_to_json(std::span<const uint8_t>(v->data(), v->size()));
  return j ? std::move(*j) : nlohmann::json(nullptr);
}

}  // namespace engram::commands::flat
