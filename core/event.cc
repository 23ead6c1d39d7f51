#include "core/event.h"

#include <flatbuffers/flatbuffers.h>

#include "core/envelope.h"
#include "schemas/envelope_generated.h"

namespace engram::core {
namespace {

namespace fbs = engram::schema;

const fbs::Envelope* root(const std::string& bytes) {
  return fbs::GetEnvelope(bytes.data());
}

Uuid from_fbs(const fbs::Id128* id) {
  return id ? Uuid{id->hi(), id->lo()} : Uuid{};
}

Hash256 from_fbs(const fbs::Hash256* h) {
  Hash256 out{};
  const auto* bytes = h->bytes();
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = bytes->Get(static_cast<flatbuffers::uoffset_t>(i));
  return out;
}

std::span<const uint8_t> span_of(const flatbuffers::Vector<uint8_t>* v) {
  if (v == nullptr) return {};
  return {v->data(), v->size()};
}

std::string_view view_of(const flatbuffers::String* s) {
  if (s == nullptr) return {};
  return {s->data(), s->size()};
}

}  // namespace

result<RecordedEvent> RecordedEvent::decode(std::string bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  flatbuffers::Verifier verifier(data, bytes.size(), envelope::kMaxVerifierDepth,
                                 envelope::kMaxVerifierTables);
  if (!fbs::VerifyEnvelopeBuffer(verifier)) {
    return make_error(errc::corruption, "envelope failed FlatBuffers verification");
  }
  const auto* env = fbs::GetEnvelope(data);
  if (env->position() == 0) return make_error(errc::corruption, "envelope has position 0");
  if (env->stream_version() == 0)
    return make_error(errc::corruption, "envelope has stream version 0");
  if (env->stream()->size() == 0)
    return make_error(errc::corruption, "envelope has an empty stream");
  if (env->event_type()->size() == 0)
    return make_error(errc::corruption, "envelope has an empty type");
  const auto format = static_cast<uint8_t>(env->payload_format());
  if (format > static_cast<uint8_t>(PayloadFormat::flexbuffer)) {
    return make_error(errc::corruption, "envelope has an unknown payload format");
  }
  return RecordedEvent(std::move(bytes));
}

Position RecordedEvent::position() const {
  return Position(root(bytes_)->position());
}
StreamVersion RecordedEvent::version() const {
  return StreamVersion(root(bytes_)->stream_version());
}
std::string_view RecordedEvent::stream() const {
  return view_of(root(bytes_)->stream());
}
std::string_view RecordedEvent::type() const {
  return view_of(root(bytes_)->event_type());
}
uint16_t RecordedEvent::schema_version() const {
  return root(bytes_)->schema_version();
}
Uuid RecordedEvent::id() const {
  return from_fbs(root(bytes_)->event_id());
}
Uuid RecordedEvent::command_id() const {
  return from_fbs(root(bytes_)->command_id());
}
Uuid RecordedEvent::causation_id() const {
  return from_fbs(root(bytes_)->causation_id());
}
Uuid RecordedEvent::correlation_id() const {
  return from_fbs(root(bytes_)->correlation_id());
}
std::string_view RecordedEvent::actor() const {
  return view_of(root(bytes_)->actor());
}
int64_t RecordedEvent::recorded_at_ns() const {
  return root(bytes_)->recorded_at_ns();
}
PayloadFormat RecordedEvent::payload_format() const {
  return static_cast<PayloadFormat>(root(bytes_)->payload_format());
}
std::span<const uint8_t> RecordedEvent::payload() const {
  return span_of(root(bytes_)->payload());
}
std::span<const uint8_t> RecordedEvent::metadata() const {
  return span_of(root(bytes_)->metadata());
}
Hash256 RecordedEvent::prev_hash() const {
  return from_fbs(root(bytes_)->prev_hash());
}
Hash256 RecordedEvent::hash() const {
  return from_fbs(root(bytes_)->hash());
}

Hash256 RecordedEvent::content_digest() const {
  envelope::Content c;
  c.stream = stream();
  c.type = type();
  c.schema_version = schema_version();
  c.id = id();
  c.command_id = command_id();
  c.causation_id = causation_id();
  c.correlation_id = correlation_id();
  c.actor = actor();
  c.payload_format = payload_format();
  c.payload = payload();
  c.metadata = metadata();
  return envelope::content_digest(c);
}

Hash256 RecordedEvent::compute_hash() const {
  return envelope::chain_hash(prev_hash(), position(), version(), recorded_at_ns(),
                              content_digest());
}

}  // namespace engram::core
