#include "core/flexjson.h"

#include <flatbuffers/flexbuffers.h>
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace engram::core {
namespace {

bool encode(flexbuffers::Builder& b, const char* key, const nlohmann::json& v, size_t depth,
            size_t max_depth) {
  if (depth > max_depth) return false;
  using t = nlohmann::json::value_t;
  switch (v.type()) {
    case t::null:
      if (key) b.Key(key);
      b.Null();
      return true;
    case t::boolean:
      if (key) b.Key(key);
      b.Bool(v.get<bool>());
      return true;
    case t::number_integer:
      if (key) b.Key(key);
      b.Int(v.get<int64_t>());
      return true;
    case t::number_unsigned:
      if (key) b.Key(key);
      b.UInt(v.get<uint64_t>());
      return true;
    case t::number_float:
      if (key) b.Key(key);
      b.Double(v.get<double>());
      return true;
    case t::string:
      if (key) b.Key(key);
      b.String(v.get_ref<const std::string&>());
      return true;
    case t::array: {
      if (key) b.Key(key);
      const size_t start = b.StartVector();
      for (const auto& e : v) {
        if (!encode(b, nullptr, e, depth + 1, max_depth)) return false;
      }
      b.EndVector(start, false, false);
      return true;
    }
    case t::object: {
      if (key) b.Key(key);
      const size_t start = b.StartMap();
      for (const auto& [k, e] : v.items()) {
        if (!encode(b, k.c_str(), e, depth + 1, max_depth)) return false;
      }
      b.EndMap(start);
      return true;
    }
    case t::binary:
    case t::discarded:
      return false;
  }
  return false;
}

bool decode(const flexbuffers::Reference& r, nlohmann::json& out, size_t depth, size_t max_depth) {
  if (depth > max_depth) return false;
  if (r.IsNull()) {
    out = nullptr;
  } else if (r.IsBool()) {
    out = r.AsBool();
  } else if (r.IsUInt()) {
    out = r.AsUInt64();
  } else if (r.IsInt()) {
    out = r.AsInt64();
  } else if (r.IsFloat()) {
    out = r.AsDouble();
  } else if (r.IsString()) {
    out = r.AsString().str();
  } else if (r.IsKey()) {
    out = std::string(r.AsKey());
  } else if (r.IsMap()) {
    const auto map = r.AsMap();
    const auto keys = map.Keys();
    const auto values = map.Values();
    out = nlohmann::json::object();
    for (size_t i = 0; i < map.size(); ++i) {
      nlohmann::json v;
      if (!decode(values[i], v, depth + 1, max_depth)) return false;
      out[std::string(keys[i].AsKey())] = std::move(v);
    }
  } else if (r.IsAnyVector()) {
    const auto vec = r.AsVector();
    out = nlohmann::json::array();
    for (size_t i = 0; i < vec.size(); ++i) {
      nlohmann::json v;
      if (!decode(vec[i], v, depth + 1, max_depth)) return false;
      out.push_back(std::move(v));
    }
  } else if (r.IsBlob()) {
    const auto blob = r.AsBlob();
    out = nlohmann::json::binary_t(std::vector<uint8_t>(blob.data(), blob.data() + blob.size()));
  } else {
    return false;
  }
  return true;
}

}  // namespace

result<std::string> json_to_flex(const nlohmann::json& value, size_t max_depth) {
  flexbuffers::Builder b(256, flexbuffers::BUILDER_FLAG_SHARE_KEYS);
  if (!encode(b, nullptr, value, 0, max_depth)) {
    return make_error(errc::invalid_argument,
                      fmt::format("JSON nests deeper than {} levels", max_depth));
  }
  b.Finish();
  const auto& buf = b.GetBuffer();
  return std::string(reinterpret_cast<const char*>(buf.data()), buf.size());
}

result<nlohmann::json> flex_to_json(std::span<const uint8_t> bytes, size_t max_depth) {
  if (bytes.empty()) return nlohmann::json(nullptr);
  if (!flexbuffers::VerifyBuffer(bytes.data(), bytes.size())) {
    return make_error(errc::corruption, "FlexBuffer fails verification");
  }
  nlohmann::json out;
  if (!decode(flexbuffers::GetRoot(bytes.data(), bytes.size()), out, 0, max_depth)) {
    return make_error(errc::corruption, "FlexBuffer nests too deep or holds an unsupported type");
  }
  return out;
}

size_t json_nesting_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace engram::core
