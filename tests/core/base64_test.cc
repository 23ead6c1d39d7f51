#include "core/base64.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>

using engram::core::base64_decode;
using engram::core::base64_encode;
using engram::core::base64url_decode;
using engram::core::base64url_encode;

namespace {
const std::string kBinary("\xff\xfe\x00\x01\x80", 5);
}

TEST_CASE("base64: the RFC 4648 test vectors, round trip") {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [bytes, text] : vectors) {
    CHECK(base64_encode(bytes) == text);
    CHECK(base64_decode(text) == std::optional<std::string>(bytes));
  }
  CHECK(base64_encode(std::string("\xfb\xff", 2)) == "+/8=");
  CHECK(base64_decode(base64_encode(kBinary)) == std::optional<std::string>(kBinary));
  const uint8_t raw[] = {0xfb, 0xff};
  CHECK(base64_encode(std::span<const uint8_t>(raw)) == "+/8=");
}

TEST_CASE("base64: strict decoding, one encoding per byte string") {
  CHECK_FALSE(base64_decode("Zg").has_value());        // padding missing
  CHECK_FALSE(base64_decode("Zg=").has_value());       // padding short
  CHECK_FALSE(base64_decode("Zg===").has_value());     // padding long
  CHECK_FALSE(base64_decode("Z===").has_value());      // three '='
  CHECK_FALSE(base64_decode("Zg==Zg==").has_value());  // padding inside
  CHECK_FALSE(base64_decode("-_8=").has_value());      // the other alphabet
  CHECK_FALSE(base64_decode("Zm9v\n").has_value());    // white space
  CHECK_FALSE(base64_decode(" Zm9v").has_value());
  CHECK_FALSE(base64_decode("Zh==").has_value());  // non-zero trailing bits ("Zg==" is "f")
  CHECK_FALSE(base64_decode("Zm9=").has_value());  // non-zero trailing bits ("Zm8=" is "fo")
}

TEST_CASE("base64url: round trip and strict decoding") {
  for (const std::string& s : {std::string(), std::string("f"), std::string("fo"),
                               std::string("foo"), std::string("foob"), std::string("fooba"),
                               std::string("foobar"), kBinary}) {
    auto back = base64url_decode(base64url_encode(s));
    REQUIRE(back.has_value());
    CHECK(*back == s);
  }
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK(base64url_decode("-_8").has_value());
  CHECK_FALSE(base64url_decode("Zm8=").has_value());   // padding
  CHECK_FALSE(base64url_decode("+/8").has_value());    // the other alphabet
  CHECK_FALSE(base64url_decode("Zm9v!").has_value());  // bad character
  CHECK_FALSE(base64url_decode("Zm9vY").has_value());  // impossible length
  CHECK_FALSE(base64url_decode("Zn").has_value());     // non-zero trailing bits ("Zg" is "f")
  CHECK(base64url_decode("Zg") == std::optional<std::string>("f"));
}
