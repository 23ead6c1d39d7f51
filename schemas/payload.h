#pragma once

// Reading a stored domain payload (a FlatBuffer nested in an envelope) safely:
// shared by commands/ (which writes them) and projections/ (which read them).

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace engram::schema {

// A payload copied to 8-byte-aligned memory: inside an envelope it sits at
// any offset, and the tables' 8-byte fields must be read aligned.
class Aligned {
 public:
  explicit Aligned(std::span<const uint8_t> bytes)
      : words_((bytes.size() + sizeof(uint64_t) - 1) / sizeof(uint64_t)), size_(bytes.size()) {
    if (!bytes.empty()) std::memcpy(words_.data(), bytes.data(), bytes.size());
  }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(words_.data()); }
  size_t size() const { return size_; }

 private:
  std::vector<uint64_t> words_;
  size_t size_;
};

// The table, or null when the bytes do not verify as one.
template <typename T>
const T* verified(const Aligned& payload) {
  flatbuffers::Verifier v(payload.data(), payload.size());
  if (!v.VerifyBuffer<T>(nullptr)) return nullptr;
  return flatbuffers::GetRoot<T>(payload.data());
}

}  // namespace engram::schema
