#include "core/checkpoint.h"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/data_dir.h"
#include "core/time.h"
#include "tests/support/temp_dir.h"

using namespace engram::core;
using engram::test::TempDir;

namespace {

void write_file(const std::filesystem::path& p, std::string_view text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  REQUIRE(f);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
}

void append_file(const std::filesystem::path& p, std::string_view text) {
  std::ofstream f(p, std::ios::binary | std::ios::app);
  REQUIRE(f);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE(f);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::vector<uint8_t> bytes(std::string_view s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

Hash256 filled(uint8_t v) {
  Hash256 h;
  h.fill(v);
  return h;
}

const Uuid kLogId = *Uuid::parse("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b");
constexpr int64_t kSignedAtNs = 1'700'000'000'123'456'789;

Checkpoint sample(const SigningKey& k, uint64_t position = 42) {
  return Checkpoint::sign(k, kLogId, Position(position), filled(0xAB), filled(0xCD), kSignedAtNs);
}

// A PEM of a key of another type, which no Ed25519 loader may accept.
std::string x25519_pem(bool private_half) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  REQUIRE(key != nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(bio != nullptr);
  const int ok = private_half
                     ? PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr)
                     : PEM_write_bio_PUBKEY(bio, key);
  REQUIRE(ok == 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("checkpoint: an Ed25519 signature verifies only for its message, bytes and key") {
  const SigningKey k = SigningKey::generate();
  const auto msg = bytes("the log's head");
  const Ed25519Signature sig = k.sign(msg);
  CHECK(ed25519_verify(k.public_key(), msg, sig));

  auto other_msg = msg;
  other_msg[3] ^= 0x01;
  CHECK_FALSE(ed25519_verify(k.public_key(), other_msg, sig));

  Ed25519Signature other_sig = sig;
  other_sig[10] ^= 0x80;
  CHECK_FALSE(ed25519_verify(k.public_key(), msg, other_sig));

  const SigningKey other = SigningKey::generate();
  CHECK(other.public_key() != k.public_key());
  CHECK_FALSE(ed25519_verify(other.public_key(), msg, sig));
}

TEST_CASE("checkpoint: ed25519_verify accepts the RFC 8032 test vector 1") {
  // RFC 8032 §7.1, TEST 1: the empty message.
  const auto pub =
      PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  REQUIRE(pub);
  Ed25519Signature sig{};
  REQUIRE(
      from_hex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33b"
               "acc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
               sig));
  CHECK(ed25519_verify(*pub, std::string_view(), sig));
  CHECK_FALSE(ed25519_verify(*pub, std::string_view("x"), sig));
}

TEST_CASE("checkpoint: public key hex and id") {
  const SigningKey k = SigningKey::generate();
  const PublicKey& pub = k.public_key();
  CHECK(pub.to_hex().size() == 64);
  auto back = PublicKey::from_hex(pub.to_hex());
  REQUIRE(back);
  CHECK(*back == pub);

  // The id is the first 8 bytes of SHA-256 of the key bytes.
  Sha256 h;
  h.update(pub.bytes.data(), pub.bytes.size());
  const Hash256 d = h.finish();
  CHECK(pub.id() == to_hex(std::span(d).first(8)));
  CHECK(pub.id().size() == 16);
  CHECK(SigningKey::generate().public_key().id() != pub.id());

  for (std::string_view bad :
       {"", "abc", "zz5a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a00"}) {
    auto r = PublicKey::from_hex(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::invalid_argument);
  }
}

TEST_CASE(
    "checkpoint: load_or_create makes a 0600 key file and its .pub, then loads the same key") {
  TempDir dir;
  const auto file = dir / "keys/nested/checkpoint.key";
  auto created = SigningKey::load_or_create(file);
  REQUIRE(created);
  CHECK(mode_of(file) == 0600);
  CHECK(contains(read_file(file), "-----BEGIN PRIVATE KEY-----"));
  const auto pub_file = dir / "keys/nested/checkpoint.key.pub";
  REQUIRE(std::filesystem::exists(pub_file));
  CHECK(read_file(pub_file) == created->public_key_pem());
  // No temporary files are left behind.
  CHECK(std::distance(std::filesystem::directory_iterator(file.parent_path()),
                      std::filesystem::directory_iterator()) == 2);

  auto again = SigningKey::load_or_create(file);
  REQUIRE(again);
  CHECK(again->public_key() == created->public_key());
  auto loaded = SigningKey::load(file);
  REQUIRE(loaded);
  CHECK(loaded->public_key() == created->public_key());
  // A loaded key signs what the created key's public half verifies.
  const auto msg = bytes("m");
  CHECK(ed25519_verify(created->public_key(), msg, loaded->sign(msg)));

  SUBCASE("a missing or stale .pub is rewritten from the key") {
    std::filesystem::remove(pub_file);
    REQUIRE(SigningKey::load_or_create(file));
    CHECK(read_file(pub_file) == created->public_key_pem());
    write_file(pub_file, SigningKey::generate().public_key_pem());
    REQUIRE(SigningKey::load_or_create(file));
    CHECK(read_file(pub_file) == created->public_key_pem());
  }
}

TEST_CASE("checkpoint: key files that are missing, garbage or not Ed25519") {
  TempDir dir;
  auto missing = SigningKey::load(dir / "none.key");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == errc::not_found);

  const auto garbage = dir / "garbage.key";
  write_file(garbage, "not a key\n");
  auto g = SigningKey::load_or_create(garbage);
  REQUIRE_FALSE(g);
  CHECK(g.error().code == errc::corruption);
  // The garbage is kept for a person to look at, not replaced by a new key.
  CHECK(read_file(garbage) == "not a key\n");
  CHECK_FALSE(std::filesystem::exists(dir / "garbage.key.pub"));

  const auto x25519 = dir / "x25519.key";
  write_file(x25519, x25519_pem(true));
  auto x = SigningKey::load(x25519);
  REQUIRE_FALSE(x);
  CHECK(x.error().code == errc::corruption);
  CHECK(contains(x.error().message, "not an Ed25519 key"));

  // A public key is not a private key.
  const auto pub_only = dir / "pub.key";
  write_file(pub_only, SigningKey::generate().public_key_pem());
  auto p = SigningKey::load(pub_only);
  REQUIRE_FALSE(p);
  CHECK(p.error().code == errc::corruption);

  const auto huge = dir / "huge.key";
  write_file(huge, std::string(kMaxCheckpointKeyFileBytes + 1, 'A'));
  auto h = SigningKey::load(huge);
  REQUIRE_FALSE(h);
  CHECK(h.error().code == errc::corruption);
}

TEST_CASE("checkpoint: load_public_key takes hex, a hex file or a PEM file") {
  TempDir dir;
  const SigningKey k = SigningKey::generate();

  auto from_arg = load_public_key(k.public_key().to_hex());
  REQUIRE(from_arg);
  CHECK(*from_arg == k.public_key());

  const auto hex_file = dir / "key.hex";
  write_file(hex_file, "  " + k.public_key().to_hex() + "\n");
  auto from_hex_file = load_public_key(hex_file.string());
  REQUIRE(from_hex_file);
  CHECK(*from_hex_file == k.public_key());

  const auto key_file = dir / "signing.key";
  auto created = SigningKey::load_or_create(key_file);
  REQUIRE(created);
  auto from_pub = load_public_key((dir / "signing.key.pub").string());
  REQUIRE(from_pub);
  CHECK(*from_pub == created->public_key());

  auto missing = load_public_key("not-a-key-and-not-a-file");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == errc::not_found);

  const auto garbage = dir / "garbage.pub";
  write_file(garbage, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  auto g = load_public_key(garbage.string());
  REQUIRE_FALSE(g);
  CHECK(g.error().code == errc::invalid_argument);

  const auto x25519 = dir / "x25519.pub";
  write_file(x25519, x25519_pem(false));
  auto x = load_public_key(x25519.string());
  REQUIRE_FALSE(x);
  CHECK(x.error().code == errc::invalid_argument);
  CHECK(contains(x.error().message, "not an Ed25519 key"));

  // A private key file is not what an auditor should be handed.
  auto priv = load_public_key(key_file.string());
  REQUIRE_FALSE(priv);
  CHECK(priv.error().code == errc::invalid_argument);
}

TEST_CASE("checkpoint: signed bytes follow docs/log-format.md") {
  const SigningKey k = SigningKey::generate();
  Checkpoint c = sample(k, 0x0102030405060708);
  c.signed_at_ns = -2;
  const std::string b = c.signed_bytes();
  REQUIRE(b.size() == 117);
  CHECK(b.substr(0, 21) == std::string("engram/checkpoint/v1\0", 21));
  std::string expected_id;
  for (uint64_t word : {kLogId.hi, kLogId.lo}) {
    for (int shift = 56; shift >= 0; shift -= 8)
      expected_id.push_back(static_cast<char>(word >> shift));
  }
  CHECK(b.substr(21, 16) == expected_id);
  CHECK(b.substr(37, 8) == std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  CHECK(b.substr(45, 32) == std::string(32, '\xAB'));
  CHECK(b.substr(77, 32) == std::string(32, '\xCD'));
  CHECK(b.substr(109, 8) == std::string("\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFE", 8));
}

TEST_CASE("checkpoint: sign, verify and the JSON round trip") {
  const SigningKey k = SigningKey::generate();
  const Checkpoint c = sample(k);
  CHECK(c.key == k.public_key());
  CHECK(c.signature_valid());

  const auto j = c.to_json();
  // The fixed key order is part of the format.
  std::vector<std::string> keys;
  for (const auto& [name, value] : j.items()) keys.push_back(name);
  CHECK(keys == std::vector<std::string>{"format", "log_id", "position", "head_hash", "tree_root",
                                         "signed_at", "signed_at_ns", "key_id", "public_key",
                                         "signature"});
  CHECK(j["format"] == "engram-checkpoint-v1");
  CHECK(j["log_id"] == "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b");
  CHECK(j["position"] == 42);
  CHECK(j["signed_at"] == "2023-11-14T22:13:20.123456789Z");
  CHECK(j["key_id"] == k.public_key().id());
  CHECK(c.to_line().find('\n') == std::string::npos);

  auto back = Checkpoint::from_json(nlohmann::json::parse(c.to_line()));
  REQUIRE(back);
  CHECK(*back == c);
  CHECK(back->signature_valid());

  // An empty log: position 0, zero head hash.
  const Checkpoint empty =
      Checkpoint::sign(k, kLogId, Position(0), Hash256{}, filled(0x11), kSignedAtNs);
  CHECK(empty.signature_valid());
  auto empty_back = Checkpoint::from_json(empty.to_json());
  REQUIRE(empty_back);
  CHECK(*empty_back == empty);
}

TEST_CASE("checkpoint: any signed field changed in the JSON breaks the signature") {
  const SigningKey k = SigningKey::generate();
  const Checkpoint c = sample(k);
  auto tampered = [&](auto&& edit) {
    nlohmann::json j = c.to_json();
    edit(j);
    auto r = Checkpoint::from_json(j);
    REQUIRE(r);
    return r->signature_valid();
  };
  CHECK(tampered([](nlohmann::json&) {}));
  CHECK_FALSE(tampered([](nlohmann::json& j) { j["position"] = 43; }));
  CHECK_FALSE(tampered([](nlohmann::json& j) { j["head_hash"] = to_hex(filled(0xAC)); }));
  CHECK_FALSE(tampered([](nlohmann::json& j) { j["tree_root"] = to_hex(filled(0xCE)); }));
  CHECK_FALSE(
      tampered([](nlohmann::json& j) { j["log_id"] = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c"; }));
  CHECK_FALSE(tampered([](nlohmann::json& j) {
    j["signed_at_ns"] = kSignedAtNs + 1;
    j["signed_at"] = format_rfc3339_ns(kSignedAtNs + 1);
  }));
  CHECK_FALSE(tampered([](nlohmann::json& j) {
    std::string sig = j["signature"];
    sig[0] = sig[0] == '0' ? '1' : '0';
    j["signature"] = sig;
  }));
}

TEST_CASE("checkpoint: a checkpoint re-signed by a foreign key is valid only under that key") {
  const SigningKey trusted = SigningKey::generate();
  const SigningKey foreign = SigningKey::generate();
  const Checkpoint honest = sample(trusted);
  const Checkpoint forged = Checkpoint::sign(foreign, honest.log_id, honest.position, filled(0x66),
                                             honest.tree_root, honest.signed_at_ns);
  CHECK(forged.signature_valid());
  CHECK(forged.key != trusted.public_key());
  CHECK(forged.key == foreign.public_key());

  // Claiming the trusted key for the foreign signature does not verify.
  Checkpoint claimed = forged;
  claimed.key = trusted.public_key();
  CHECK_FALSE(claimed.signature_valid());
}

TEST_CASE("checkpoint: from_json names the malformed field") {
  const SigningKey k = SigningKey::generate();
  const nlohmann::json good = sample(k).to_json();
  REQUIRE(Checkpoint::from_json(good));

  auto error_of = [](const nlohmann::json& j) {
    auto r = Checkpoint::from_json(j);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::invalid_argument);
    return r.error().message;
  };

  for (const char* field : {"format", "log_id", "position", "head_hash", "tree_root", "signed_at",
                            "signed_at_ns", "key_id", "public_key", "signature"}) {
    CAPTURE(field);
    nlohmann::json j = good;
    j.erase(field);
    const std::string message = error_of(j);
    CHECK(contains(message, std::string("\"") + field + "\""));
    CHECK(contains(message, "missing"));
  }

  struct Case {
    const char* field;
    nlohmann::json value;
  };
  const std::vector<Case> cases = {
      {"format", "engram-checkpoint-v2"},
      {"format", 1},
      {"log_id", "not-a-uuid"},
      {"position", -1},
      {"position", 1.5},
      {"position", "42"},
      {"head_hash", "zz"},
      {"head_hash", std::string(64, 'g')},
      {"tree_root", std::string(62, 'a')},
      {"signed_at_ns", "1700000000"},
      {"signed_at_ns", 18446744073709551615ULL},
      {"signed_at", "2023-11-14T22:13:20Z"},
      {"public_key", std::string(63, 'a')},
      {"key_id", "0000000000000000"},
      {"signature", std::string(126, 'a')},
      {"signature", nullptr},
  };
  for (const Case& bad : cases) {
    CAPTURE(bad.field);
    CAPTURE(bad.value.dump());
    nlohmann::json j = good;
    j[bad.field] = bad.value;
    CHECK(contains(error_of(j), std::string("\"") + bad.field + "\""));
  }

  nlohmann::json extra = good;
  extra["comment"] = "hi";
  CHECK(contains(error_of(extra), "\"comment\""));

  nlohmann::json nonzero_head = good;
  nonzero_head["position"] = 0;
  CHECK(contains(error_of(nonzero_head), "\"head_hash\""));

  CHECK(contains(error_of(nlohmann::json::array()), "object"));
}

TEST_CASE("checkpoint: a checkpoint file keeps appended checkpoints in order") {
  TempDir dir;
  const SigningKey k = SigningKey::generate();
  const auto path = DataDir(dir.path()).checkpoints_file();
  CHECK(path == dir.path() / "audit" / "checkpoints.jsonl");

  auto missing = read_checkpoints(path);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == errc::not_found);

  const CheckpointFile file(path);
  CHECK(file.path() == path);
  std::vector<Checkpoint> written;
  for (uint64_t p : {10, 20, 30}) {
    written.push_back(sample(k, p));
    REQUIRE(file.append(written.back()));
  }
  const std::string text = read_file(path);
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);
  CHECK(text.rfind("{\"format\":\"engram-checkpoint-v1\",\"log_id\":", 0) == 0);

  auto read = read_checkpoints(path);
  REQUIRE(read);
  CHECK(*read == written);

  SUBCASE("a torn last line is ignored, and the next append cuts it off") {
    const std::string torn = sample(k, 40).to_line().substr(0, 100);
    append_file(path, torn);
    auto r = read_checkpoints(path);
    REQUIRE(r);
    CHECK(*r == written);

    written.push_back(sample(k, 50));
    REQUIRE(file.append(written.back()));
    CHECK(read_file(path) == text + written.back().to_line() + "\n");
    auto after = read_checkpoints(path);
    REQUIRE(after);
    CHECK(*after == written);
  }
  SUBCASE("a malformed middle line is corruption naming its line") {
    const auto first_nl = text.find('\n');
    write_file(
        path, text.substr(0, first_nl + 1) + "{\"format\":\"nope\"}\n" + text.substr(first_nl + 1));
    auto r = read_checkpoints(path);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::corruption);
    CHECK(contains(r.error().message, "line 2"));
    CHECK(contains(r.error().message, "\"format\""));

    write_file(path, text.substr(0, first_nl + 1) + "not json\n" + text.substr(first_nl + 1));
    auto nj = read_checkpoints(path);
    REQUIRE_FALSE(nj);
    CHECK(nj.error().code == errc::corruption);
    CHECK(contains(nj.error().message, "line 2"));
  }
  SUBCASE("an empty line is corruption") {
    append_file(path, "\n");
    auto r = read_checkpoints(path);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::corruption);
    CHECK(contains(r.error().message, "line 4"));
  }
  SUBCASE("a line longer than the bound is corruption, also when unterminated") {
    append_file(path, std::string(kMaxCheckpointLineBytes + 1, ' '));
    auto r = read_checkpoints(path);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == errc::corruption);
    CHECK(contains(r.error().message, "line 4"));
    // Nor will append cut off more than a torn line could be.
    auto a = file.append(sample(k, 60));
    REQUIRE_FALSE(a);
    CHECK(a.error().code == errc::corruption);
  }
}

TEST_CASE("checkpoint: write_checkpoints and read_checkpoints round trip") {
  TempDir dir;
  const SigningKey k = SigningKey::generate();
  std::vector<Checkpoint> cs;
  for (uint64_t p = 1; p <= 5; ++p) cs.push_back(sample(k, p));
  const auto path = dir / "export/copy.jsonl";
  REQUIRE(write_checkpoints(path, cs));
  auto back = read_checkpoints(path);
  REQUIRE(back);
  CHECK(*back == cs);

  // An export replaces what was there.
  REQUIRE(write_checkpoints(path, std::span(cs).first(2)));
  auto fewer = read_checkpoints(path);
  REQUIRE(fewer);
  CHECK(fewer->size() == 2);

  REQUIRE(write_checkpoints(path, {}));
  auto none = read_checkpoints(path);
  REQUIRE(none);
  CHECK(none->empty());
  CHECK(std::distance(std::filesystem::directory_iterator(path.parent_path()),
                      std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("checkpoint: read_newest_checkpoint reads the last complete line from the tail") {
  TempDir dir;
  const SigningKey k = SigningKey::generate();
  const auto path = DataDir(dir.path()).checkpoints_file();
  auto none = read_newest_checkpoint(path);
  REQUIRE(none);
  CHECK_FALSE(none->has_value());

  const CheckpointFile file(path);
  for (uint64_t p = 1; p <= 50; ++p) REQUIRE(file.append(sample(k, p)));  // longer than the tail
  auto newest = read_newest_checkpoint(path);
  REQUIRE(newest);
  REQUIRE(newest->has_value());
  CHECK(**newest == sample(k, 50));

  // A torn last write is not the newest checkpoint.
  {
    std::ofstream out(path, std::ios::app);
    out << R"({"format":"engram-checkpoint-v1","log_id")";
  }
  newest = read_newest_checkpoint(path);
  REQUIRE(newest);
  CHECK((*newest)->position == Position(50));

  // A malformed last complete line is corruption.
  {
    std::ofstream out(path, std::ios::app);
    out << "garbage\n";
  }
  auto bad = read_newest_checkpoint(path);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == errc::corruption);
}
