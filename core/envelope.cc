#include "core/envelope.h"

#include <flatbuffers/flatbuffers.h>

#include <cstring>

#include "schemas/envelope_generated.h"

namespace engram::core::envelope {
namespace {

namespace fbs = engram::schema;

constexpr std::string_view kContentDomain{"engram/event/v1\0", 16};
constexpr std::string_view kChainDomain{"engram/chain/v1\0", 16};

// Feeds a hash through a small buffer: the canonical bytes are many short
// fields, and one EVP update per field costs more than hashing them.
class Feed {
 public:
  explicit Feed(Sha256& h) : h_(h) {}
  void bytes(const void* data, size_t len) {
    if (len == 0) return;  // an empty field's data() may be null, which memcpy must not get
    if (len > sizeof buf_ - used_) {
      flush();
      if (len >= sizeof buf_) {
        h_.update(data, len);
        return;
      }
    }
    std::memcpy(buf_ + used_, data, len);
    used_ += len;
  }
  void bytes(std::string_view s) { bytes(s.data(), s.size()); }
  void u64(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
    bytes(b, sizeof b);
  }
  void u32(uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
    bytes(b, sizeof b);
  }
  // A length-prefixed byte string.
  void field(const void* data, size_t len) {
    ENGRAM_ASSERT(len <= UINT32_MAX);
    u32(static_cast<uint32_t>(len));
    bytes(data, len);
  }
  void uuid(const Uuid& u) {
    u64(u.hi);
    u64(u.lo);
  }
  Hash256 finish() {
    flush();
    return h_.finish();
  }

 private:
  void flush() {
    if (used_ > 0) h_.update(buf_, used_);
    used_ = 0;
  }
  Sha256& h_;
  uint8_t buf_[512];
  size_t used_ = 0;
};

Sha256& thread_hasher() {
  thread_local Sha256 h;
  return h;
}

fbs::Id128 to_fbs(const Uuid& u) {
  return fbs::Id128(u.hi, u.lo);
}

}  // namespace

Hash256 content_digest(const Content& c) {
  Feed f(thread_hasher());
  f.bytes(kContentDomain);
  f.field(c.stream.data(), c.stream.size());
  f.field(c.type.data(), c.type.size());
  f.u32(c.schema_version);
  f.uuid(c.id);
  f.uuid(c.command_id);
  f.uuid(c.causation_id);
  f.uuid(c.correlation_id);
  f.field(c.actor.data(), c.actor.size());
  f.u32(static_cast<uint32_t>(c.payload_format));
  f.field(c.payload.data(), c.payload.size());
  f.field(c.metadata.data(), c.metadata.size());
  return f.finish();
}

Hash256 chain_hash(const Hash256& prev_hash, Position position, StreamVersion version,
                   int64_t recorded_at_ns, const Hash256& digest) {
  Feed f(thread_hasher());
  f.bytes(kChainDomain);
  f.bytes(prev_hash.data(), prev_hash.size());
  f.u64(position.value());
  f.u64(version.value());
  f.u64(static_cast<uint64_t>(recorded_at_ns));
  f.bytes(digest.data(), digest.size());
  return f.finish();
}

std::string build(const Content& c) {
  flatbuffers::FlatBufferBuilder fbb(256 + c.payload.size() + c.metadata.size());
  // Every scalar is stored, even at its default, so seal() can overwrite it in place.
  fbb.ForceDefaults(true);
  auto stream = fbb.CreateString(c.stream.data(), c.stream.size());
  auto type = fbb.CreateString(c.type.data(), c.type.size());
  auto actor = fbb.CreateString(c.actor.data(), c.actor.size());
  auto payload = fbb.CreateVector(c.payload.data(), c.payload.size());
  auto metadata = fbb.CreateVector(c.metadata.data(), c.metadata.size());
  const fbs::Id128 id = to_fbs(c.id), command = to_fbs(c.command_id),
                   causation = to_fbs(c.causation_id), correlation = to_fbs(c.correlation_id);
  const fbs::Hash256 zero_hash;
  fbs::EnvelopeBuilder b(fbb);
  b.add_position(0);
  b.add_stream_version(0);
  b.add_stream(stream);
  b.add_event_type(type);
  b.add_schema_version(c.schema_version);
  b.add_event_id(&id);
  b.add_command_id(&command);
  b.add_causation_id(&causation);
  b.add_correlation_id(&correlation);
  b.add_actor(actor);
  b.add_recorded_at_ns(0);
  b.add_payload_format(static_cast<fbs::PayloadFormat>(c.payload_format));
  b.add_payload(payload);
  b.add_metadata(metadata);
  b.add_prev_hash(&zero_hash);
  b.add_hash(&zero_hash);
  fbs::FinishEnvelopeBuffer(fbb, b.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

Hash256 seal(std::string& bytes, Position position, StreamVersion version, int64_t recorded_at_ns,
             const Hash256& prev_hash, const Hash256& digest) {
  auto* env = fbs::GetMutableEnvelope(bytes.data());
  ENGRAM_ASSERT(env->mutate_position(position.value()));
  ENGRAM_ASSERT(env->mutate_stream_version(version.value()));
  ENGRAM_ASSERT(env->mutate_recorded_at_ns(recorded_at_ns));
  const Hash256 hash = chain_hash(prev_hash, position, version, recorded_at_ns, digest);
  auto* prev = env->mutable_prev_hash()->mutable_bytes();
  auto* self = env->mutable_hash()->mutable_bytes();
  for (size_t i = 0; i < hash.size(); ++i) {
    prev->Mutate(static_cast<flatbuffers::uoffset_t>(i), prev_hash[i]);
    self->Mutate(static_cast<flatbuffers::uoffset_t>(i), hash[i]);
  }
  return hash;
}

}  // namespace engram::core::envelope
