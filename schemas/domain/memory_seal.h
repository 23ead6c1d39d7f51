#pragma once

// How memory content and embeddings are sealed (AES-256-GCM, core/crypto.h)
// under their owner's key: the additional authenticated data binds the owner
// and memory id, so sealed bytes cannot be replayed under another memory.
// The command side seals with these; the memories read model opens with
// them. Changing either breaks every stored memory.

#include <string>
#include <string_view>

namespace engram::domain {

inline std::string memory_content_aad(std::string_view owner, std::string_view memory_id) {
  std::string aad;
  aad.append(owner).push_back('\0');
  aad.append(memory_id);
  return aad;
}

inline std::string memory_embedding_aad(std::string_view owner, std::string_view memory_id) {
  return memory_content_aad(owner, memory_id) + std::string("\0embedding", 10);
}

}  // namespace engram::domain
