#include "commands/ids.h"

#include "core/sha256.h"

namespace engram::commands {
namespace {

bool alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Length-prefixed parts, so that ("a", "b\0c") and ("a\0b", "c") differ.
void append_part(std::string& out, std::string_view part) {
  const auto n = static_cast<uint32_t>(part.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xFF));
  out.append(part);
}

}  // namespace

bool valid_id(std::string_view id, size_t max_bytes) {
  if (id.empty() || id.size() > max_bytes || !alnum(id.front())) return false;
  for (char c : id) {
    if (!alnum(c) && c != '_' && c != '.' && c != ':' && c != '-') return false;
  }
  return true;
}

std::string stream_name(std::string_view prefix, std::string_view id) {
  std::string s;
  s.reserve(prefix.size() + id.size());
  s.append(prefix).append(id);
  return s;
}

std::string pattern_id(std::string_view domain, std::string_view signature) {
  core::Sha256 h;
  h.update(domain);
  h.update("\0", 1);
  h.update(signature);
  const core::Hash256 digest = h.finish();
  return core::to_hex(std::span<const uint8_t>(digest.data(), kPatternIdHexDigits / 2));
}

bool valid_pattern_id(std::string_view id) {
  if (id.size() != kPatternIdHexDigits) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

core::Uuid keyed_command_id(std::string_view subject, std::string_view key) {
  std::string name = "engram/command-id/v1";
  append_part(name, subject);
  append_part(name, key);
  return core::Uuid::from_name(name);
}

core::Uuid keyed_event_id(std::string_view subject, std::string_view key, uint64_t index) {
  std::string name = "engram/event-id/v1";
  append_part(name, subject);
  append_part(name, key);
  append_part(name, std::to_string(index));
  return core::Uuid::from_name(name);
}

EventIds EventIds::keyed(std::string subject, std::string key) {
  EventIds ids;
  ids.subject_ = std::move(subject);
  ids.key_ = std::move(key);
  return ids;
}

EventIds EventIds::fresh() {
  return EventIds();
}

core::Uuid EventIds::at(size_t index) const {
  if (key_) return keyed_event_id(*subject_, *key_, index);
  while (fresh_.size() <= index) fresh_.push_back(core::Uuid::v7_now());
  return fresh_[index];
}

}  // namespace engram::commands
