#include "core/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "core/assert.h"
#include "core/crypto.h"
#include "core/files.h"
#include "core/json.h"
#include "core/time.h"

namespace engram::core {
namespace {

constexpr std::string_view kSignedPrefix("engram/checkpoint/v1\0", 21);
constexpr size_t kSignedBytes = kSignedPrefix.size() + 16 + 8 + 32 + 32 + 8;
constexpr size_t kReadChunkBytes = 64 * 1024;
constexpr size_t kWriteChunkBytes = 64 * 1024;
// A checkpoint line is one flat object.
constexpr size_t kCheckpointJsonDepth = 1;
// The JSON form's fields, in to_json() order.
constexpr std::array<std::string_view, 10> kFields = {
    "format",    "log_id",       "position", "head_hash",  "tree_root",
    "signed_at", "signed_at_ns", "key_id",   "public_key", "signature"};

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// Wipes key material from a string before it is freed.
struct Cleansed {
  std::string text;
  ~Cleansed() {
    if (!text.empty()) OPENSSL_cleanse(text.data(), text.size());
  }
};

void put_be64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

PublicKey raw_public_key(EVP_PKEY* key) {
  PublicKey out;
  size_t len = out.bytes.size();
  ENGRAM_ASSERT(EVP_PKEY_get_raw_public_key(key, out.bytes.data(), &len) == 1 &&
                len == out.bytes.size());
  return out;
}

// An Ed25519 key from PEM text that the caller owns, or null (`why` says what is wrong).
EVP_PKEY* parse_pem(std::string_view pem, bool private_half, std::string& why) {
  auto key = read_ed25519_pem(pem, private_half, why);
  if (key == nullptr) return nullptr;
  ENGRAM_ASSERT(EVP_PKEY_up_ref(key.get()) == 1);
  return key.get();
}

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// --- JSON fields ---------------------------------------------------------

Error field_error(std::string_view field, std::string_view what) {
  return make_error(errc::invalid_argument, fmt::format("checkpoint: \"{}\" {}", field, what));
}

result<const std::string*> string_field(const nlohmann::json& j, std::string_view name) {
  auto it = j.find(name);
  if (it == j.end()) return field_error(name, "is missing");
  if (!it->is_string()) return field_error(name, "must be a string");
  return &it->get_ref<const std::string&>();
}

template <size_t N>
result<std::array<uint8_t, N>> hex_field(const nlohmann::json& j, std::string_view name) {
  auto s = string_field(j, name);
  if (!s) return s.error();
  std::array<uint8_t, N> out{};
  if (!from_hex(**s, out)) {
    return field_error(name, fmt::format("must be {} hex digits", 2 * N));
  }
  return out;
}

}  // namespace

// --- keys ------------------------------------------------------------------

std::string PublicKey::to_hex() const {
  return core::to_hex(bytes);
}

std::string PublicKey::id() const {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  const Hash256 d = h.finish();
  return core::to_hex(std::span(d).first(8));
}

result<PublicKey> PublicKey::from_hex(std::string_view hex) {
  PublicKey k;
  if (!core::from_hex(hex, k.bytes)) {
    return make_error(errc::invalid_argument,
                      fmt::format("an Ed25519 public key is {} hex digits", 2 * k.bytes.size()));
  }
  return k;
}

result<PublicKey> load_public_key(std::string_view arg) {
  if (auto k = PublicKey::from_hex(arg)) return k;
  const std::filesystem::path path{std::string(arg)};
  auto text = read_file(path, kMaxCheckpointKeyFileBytes, errc::invalid_argument);
  if (!text) {
    if (text.error().code == errc::not_found) {
      return make_error(errc::not_found,
                        fmt::format("public key '{}' is neither 64 hex digits nor an existing file",
                                    std::string(arg).substr(0, 256)));
    }
    return text.error();
  }
  const std::string_view body = trim(*text);
  if (auto k = PublicKey::from_hex(body)) return k;
  std::string why;
  EVP_PKEY* key = parse_pem(body, /*private_half=*/false, why);
  if (key == nullptr) {
    return make_error(errc::invalid_argument,
                      fmt::format("public key file {}: neither 64 hex digits nor usable PEM ({})",
                                  path.string(), why));
  }
  const PublicKey out = raw_public_key(key);
  EVP_PKEY_free(key);
  return out;
}

void SigningKey::PkeyFree::operator()(evp_pkey_st* key) const {
  EVP_PKEY_free(key);
}

SigningKey::SigningKey(std::unique_ptr<evp_pkey_st, PkeyFree> key)
    : key_(std::move(key)), public_key_(raw_public_key(key_.get())) {}

SigningKey SigningKey::generate() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ENGRAM_ASSERT_MSG(key != nullptr, "Ed25519 key generation failed");
  return SigningKey(std::unique_ptr<evp_pkey_st, PkeyFree>(key));
}

result<SigningKey> SigningKey::load(const std::filesystem::path& file) {
  auto read = read_file(file, kMaxCheckpointKeyFileBytes, errc::corruption);
  if (!read) {
    // A directory or device where the key should be is as unusable as garbage.
    if (read.error().code == errc::invalid_argument) {
      return make_error(errc::corruption, read.error().message);
    }
    return read.error();
  }
  const Cleansed pem{std::move(*read)};
  std::string why;
  EVP_PKEY* key = parse_pem(pem.text, /*private_half=*/true, why);
  if (key == nullptr) {
    return make_error(errc::corruption, fmt::format("signing key {}: {}", file.string(), why));
  }
  return SigningKey(std::unique_ptr<evp_pkey_st, PkeyFree>(key));
}

result<SigningKey> SigningKey::load_or_create(const std::filesystem::path& file) {
  auto loaded = load(file);
  if (!loaded && loaded.error().code == errc::not_found) {
    if (auto d = create_dirs_synced(file.parent_path(), 0700); !d) return d.error();
    SigningKey fresh = generate();
    const Cleansed pem{write_pem(fresh.key_.get(), /*private_half=*/true)};
    auto placed = write_new_file(file, pem.text, 0600);
    if (!placed) return placed.error();
    // Another process created the key first: use its key, not ours.
    loaded = *placed ? result<SigningKey>(std::move(fresh)) : load(file);
  }
  if (!loaded) return loaded;

  // The .pub is derived from the key, so whatever it holds is replaced when
  // it does not match (also after a crash between the two writes).
  std::filesystem::path pub_path = file;
  pub_path += ".pub";
  const std::string pub_pem = loaded->public_key_pem();
  auto existing = read_file(pub_path, kMaxCheckpointKeyFileBytes, errc::invalid_argument);
  if (!existing && existing.error().code == errc::io_error) return existing.error();
  if (!existing || *existing != pub_pem) {
    if (auto s = replace_file(pub_path, pub_pem, 0644); !s) return s.error();
  }
  return loaded;
}

Ed25519Signature SigningKey::sign(std::span<const uint8_t> message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  ENGRAM_ASSERT(ctx != nullptr);
  Ed25519Signature sig{};
  size_t sig_len = sig.size();
  // Ed25519 hashes internally: no digest is named.
  const bool ok =
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) == 1 &&
      EVP_DigestSign(ctx.get(), sig.data(), &sig_len, message.data(), message.size()) == 1;
  ENGRAM_ASSERT_MSG(ok && sig_len == sig.size(), "Ed25519 signing failed");
  return sig;
}

Ed25519Signature SigningKey::sign(std::string_view message) const {
  return sign(std::span(reinterpret_cast<const uint8_t*>(message.data()), message.size()));
}

std::string SigningKey::public_key_pem() const {
  return write_pem(key_.get(), /*private_half=*/false);
}

bool ed25519_verify(const PublicKey& key, std::span<const uint8_t> message,
                    std::span<const uint8_t, kEd25519SignatureBytes> signature) {
  EVP_PKEY* pkey =
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.bytes.data(), key.bytes.size());
  if (pkey == nullptr) {
    ERR_clear_error();
    return false;
  }
  MdCtx ctx(EVP_MD_CTX_new());
  ENGRAM_ASSERT(ctx != nullptr);
  const bool ok = EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey) == 1 &&
                  EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                                   message.size()) == 1;
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  return ok;
}

bool ed25519_verify(const PublicKey& key, std::string_view message,
                    std::span<const uint8_t, kEd25519SignatureBytes> signature) {
  return ed25519_verify(
      key, std::span(reinterpret_cast<const uint8_t*>(message.data()), message.size()), signature);
}

// --- checkpoints -----------------------------------------------------------

std::string Checkpoint::signed_bytes() const {
  std::string out;
  out.reserve(kSignedBytes);
  out.append(kSignedPrefix);
  put_be64(out, log_id.hi);
  put_be64(out, log_id.lo);
  put_be64(out, position.value());
  out.append(reinterpret_cast<const char*>(head_hash.data()), head_hash.size());
  out.append(reinterpret_cast<const char*>(tree_root.data()), tree_root.size());
  put_be64(out, static_cast<uint64_t>(signed_at_ns));
  ENGRAM_ASSERT(out.size() == kSignedBytes);
  return out;
}

Checkpoint Checkpoint::sign(const SigningKey& k, Uuid id, Position at, const Hash256& head,
                            const Hash256& root, int64_t at_ns) {
  ENGRAM_ASSERT_MSG(at.value() != 0 || head == Hash256{}, "an empty log has no head hash");
  Checkpoint c;
  c.log_id = id;
  c.position = at;
  c.head_hash = head;
  c.tree_root = root;
  c.signed_at_ns = at_ns;
  c.key = k.public_key();
  c.signature = k.sign(c.signed_bytes());
  return c;
}

bool Checkpoint::signature_valid() const {
  return ed25519_verify(key, signed_bytes(), signature);
}

nlohmann::ordered_json Checkpoint::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = kCheckpointFormat;
  j["log_id"] = log_id.to_string();
  j["position"] = position.value();
  j["head_hash"] = to_hex(head_hash);
  j["tree_root"] = to_hex(tree_root);
  j["signed_at"] = format_rfc3339_ns(signed_at_ns);
  j["signed_at_ns"] = signed_at_ns;
  j["key_id"] = key.id();
  j["public_key"] = key.to_hex();
  j["signature"] = to_hex(signature);
  return j;
}

std::string Checkpoint::to_line() const {
  return to_json().dump();
}

result<Checkpoint> Checkpoint::from_json(const nlohmann::json& j) {
  if (!j.is_object()) return make_error(errc::invalid_argument, "checkpoint: not a JSON object");
  for (const auto& [name, value] : j.items()) {
    if (std::find(kFields.begin(), kFields.end(), name) == kFields.end()) {
      return field_error(name.substr(0, 64), "is not a checkpoint field");
    }
  }
  Checkpoint c;

  auto format = string_field(j, "format");
  if (!format) return format.error();
  if (**format != kCheckpointFormat) {
    return field_error("format", fmt::format("must be \"{}\"", kCheckpointFormat));
  }

  auto id_text = string_field(j, "log_id");
  if (!id_text) return id_text.error();
  const auto id = Uuid::parse(**id_text);
  if (!id) return field_error("log_id", "must be a UUID");
  c.log_id = *id;

  auto pos = j.find("position");
  if (pos == j.end()) return field_error("position", "is missing");
  // Parsed text holds non-negative integers as unsigned; JSON built in code
  // may hold them as signed.
  const bool non_negative =
      pos->is_number_unsigned() || (pos->is_number_integer() && pos->get<int64_t>() >= 0);
  if (!non_negative) return field_error("position", "must be a non-negative integer");
  c.position = Position(pos->get<uint64_t>());

  auto head = hex_field<32>(j, "head_hash");
  if (!head) return head.error();
  c.head_hash = *head;
  if (c.position.value() == 0 && c.head_hash != Hash256{}) {
    return field_error("head_hash", "must be zero at position 0");
  }
  auto root = hex_field<32>(j, "tree_root");
  if (!root) return root.error();
  c.tree_root = *root;

  auto at_ns = j.find("signed_at_ns");
  if (at_ns == j.end()) return field_error("signed_at_ns", "is missing");
  // nlohmann stores integers above INT64_MAX as unsigned: out of range here.
  const bool fits =
      at_ns->is_number_integer() &&
      (!at_ns->is_number_unsigned() || at_ns->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX));
  if (!fits) return field_error("signed_at_ns", "must be a 64-bit signed integer");
  c.signed_at_ns = at_ns->get<int64_t>();
  auto at = string_field(j, "signed_at");
  if (!at) return at.error();
  if (**at != format_rfc3339_ns(c.signed_at_ns)) {
    return field_error("signed_at", "does not match signed_at_ns");
  }

  auto pub = hex_field<kEd25519PublicKeyBytes>(j, "public_key");
  if (!pub) return pub.error();
  c.key.bytes = *pub;
  auto key_id = string_field(j, "key_id");
  if (!key_id) return key_id.error();
  if (**key_id != c.key.id()) return field_error("key_id", "does not match public_key");

  auto sig = hex_field<kEd25519SignatureBytes>(j, "signature");
  if (!sig) return sig.error();
  c.signature = *sig;
  return c;
}

// --- the file ----------------------------------------------------------------

CheckpointFile::CheckpointFile(std::filesystem::path path) : path_(std::move(path)) {}

result<void> CheckpointFile::append(const Checkpoint& c) const {
  const std::string line = c.to_line() + "\n";
  // Every field has a bounded width, so this holds for any checkpoint.
  ENGRAM_ASSERT(line.size() <= kMaxCheckpointLineBytes);

  int raw = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (raw < 0 && errno == ENOENT) {
    if (auto d = create_dirs_synced(path_.parent_path(), 0755); !d) return d;
    raw = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (raw >= 0) {
      if (auto s = fsync_dir(path_.parent_path()); !s) {
        ::close(raw);
        return s;
      }
    }
  }
  if (raw < 0) return os_error(path_, errno);
  UniqueFd fd(raw);

  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return os_error(path_, errno);
  off_t size = st.st_size;
  if (size > 0) {
    // A crash mid-write leaves a last line without its newline, which
    // readers ignore; appending after it would turn it into a malformed
    // middle line, so it is cut off first.
    const size_t tail_max =
        std::min<uint64_t>(static_cast<uint64_t>(size), kMaxCheckpointLineBytes + 1);
    std::string tail(tail_max, '\0');
    const off_t from = size - static_cast<off_t>(tail_max);
    size_t got = 0;
    while (got < tail.size()) {
      const ssize_t n =
          ::pread(fd.get(), tail.data() + got, tail.size() - got, from + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return os_error(path_, errno);
      if (n == 0) return make_error(errc::io_error, path_.string() + ": shrank while appending");
      got += static_cast<size_t>(n);
    }
    if (tail.back() != '\n') {
      const size_t nl = tail.rfind('\n');
      if (nl == std::string::npos && tail.size() > kMaxCheckpointLineBytes) {
        return make_error(errc::corruption, fmt::format("{}: the last {} bytes hold no line end",
                                                        path_.string(), tail.size()));
      }
      const off_t keep = nl == std::string::npos ? from : from + static_cast<off_t>(nl) + 1;
      if (::ftruncate(fd.get(), keep) != 0 || ::fdatasync(fd.get()) != 0) {
        return os_error(path_, errno);
      }
      size = keep;
    }
  }

  const ssize_t n = ::write(fd.get(), line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    const int err = n < 0 ? errno : ENOSPC;
    // Leaves no partial line behind for the next append to build on.
    if (n > 0 && ::ftruncate(fd.get(), size) != 0) {
      return os_error(path_, errno);
    }
    return os_error(path_, err);
  }
  if (::fdatasync(fd.get()) != 0) return os_error(path_, errno);
  return {};
}

result<std::vector<Checkpoint>> read_checkpoints(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    return os_error(path, err, err == ENOENT ? errc::not_found : errc::io_error);
  }
  std::vector<Checkpoint> out;
  std::string line;
  size_t line_no = 1;
  std::string chunk(kReadChunkBytes, '\0');
  auto too_long = [&] {
    return make_error(errc::corruption,
                      fmt::format("{}: line {} is longer than {} bytes", path.string(), line_no,
                                  kMaxCheckpointLineBytes));
  };
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(path, errno);
    if (n == 0) break;
    std::string_view data(chunk.data(), static_cast<size_t>(n));
    while (!data.empty()) {
      const size_t nl = data.find('\n');
      const std::string_view piece = data.substr(0, nl);
      // The newline counts towards the line's bound.
      if (line.size() + piece.size() + (nl == std::string_view::npos ? 0 : 1) >
          kMaxCheckpointLineBytes) {
        return too_long();
      }
      line.append(piece);
      if (nl == std::string_view::npos) break;
      data.remove_prefix(nl + 1);

      if (out.size() >= kMaxCheckpointsRead) {
        return make_error(errc::invalid_argument, fmt::format("{}: more than {} checkpoints",
                                                              path.string(), kMaxCheckpointsRead));
      }
      const auto j = parse_json_object(line, kCheckpointJsonDepth);
      if (!j) {
        return make_error(errc::corruption, fmt::format("{}: line {}: {}", path.string(), line_no,
                                                        j.error().message));
      }
      auto c = Checkpoint::from_json(*j);
      if (!c) {
        return make_error(errc::corruption, fmt::format("{}: line {}: {}", path.string(), line_no,
                                                        c.error().message));
      }
      out.push_back(std::move(*c));
      line.clear();
      ++line_no;
    }
  }
  // Whatever is left in `line` is a write torn by a crash.
  return out;
}

result<std::optional<Checkpoint>> read_newest_checkpoint(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return std::optional<Checkpoint>();
    return os_error(path, err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return os_error(path, errno);
  const auto size = static_cast<uint64_t>(st.st_size);
  // The last complete line and the newline before it fit in two lines' bound.
  const uint64_t window = std::min<uint64_t>(size, 2 * kMaxCheckpointLineBytes);
  std::string tail(window, '\0');
  size_t got = 0;
  while (got < window) {
    const ssize_t n =
        ::pread(fd.get(), tail.data() + got, window - got, static_cast<off_t>(size - window + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  tail.resize(got);
  const size_t end = tail.rfind('\n');  // past it: a write torn by a crash
  if (end == std::string::npos) return std::optional<Checkpoint>();
  const size_t before = end == 0 ? std::string::npos : tail.rfind('\n', end - 1);
  if (before == std::string::npos && window < size) {
    return make_error(errc::corruption, fmt::format("{}: the last line is longer than {} bytes",
                                                    path.string(), kMaxCheckpointLineBytes));
  }
  const size_t start = before == std::string::npos ? 0 : before + 1;
  const auto j = parse_json_object(std::string_view(tail).substr(start, end - start),
                                   kCheckpointJsonDepth);
  if (!j) {
    return make_error(errc::corruption,
                      fmt::format("{}: the last line: {}", path.string(), j.error().message));
  }
  auto c = Checkpoint::from_json(*j);
  if (!c) {
    return make_error(errc::corruption,
                      fmt::format("{}: the last line: {}", path.string(), c.error().message));
  }
  return std::optional<Checkpoint>(std::move(*c));
}

result<void> write_checkpoints(const std::filesystem::path& path, std::span<const Checkpoint> cs) {
  if (cs.size() > kMaxCheckpointsRead) {
    return make_error(errc::invalid_argument,
                      fmt::format("at most {} checkpoints per file", kMaxCheckpointsRead));
  }
  if (auto d = create_dirs_synced(path.parent_path(), 0755); !d) return d;
  return replace_file(path, 0644, [&](FileWriter& out) -> result<void> {
    std::string buffer;
    buffer.reserve(kWriteChunkBytes + kMaxCheckpointLineBytes);
    for (const Checkpoint& c : cs) {
      buffer += c.to_line();
      buffer += '\n';
      if (buffer.size() >= kWriteChunkBytes) {
        if (auto s = out.write(buffer); !s) return s;
        buffer.clear();
      }
    }
    return out.write(buffer);
  });
}

}  // namespace engram::core
