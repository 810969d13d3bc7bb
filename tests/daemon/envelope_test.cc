#include "daemon/envelope.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

// ordered_json: the vectors' header lists and field maps are ordered.
using Json = nlohmann::ordered_json;
using absl::StatusCode;

constexpr absl::string_view kCid = "0f8fad5b-d9cb-469f-a165-70867728950e";

// ---------------------------------------------------------------------------
// Helpers

Json LoadVectorFile(const std::string& name) {
  const std::string path = std::string(REDRIVE_TEST_DATA_DIR) + "/vectors/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream text;
  text << in.rdbuf();
  Json json = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(json.is_discarded()) << "cannot parse " << path;
  return json;
}

const Json& FastStreamFile() {
  static const Json* const kFile = new Json(LoadVectorFile("faststream-binary-v1.json"));
  return *kFile;
}

const Json& EggAiFile() {
  static const Json* const kFile = new Json(LoadVectorFile("eggai-retry-metadata.json"));
  return *kFile;
}

std::vector<const Json*> VectorsOfCategory(absl::string_view category) {
  std::vector<const Json*> out;
  for (const Json& v : FastStreamFile().at("vectors")) {
    if (v.at("category").get<std::string>() == category) out.push_back(&v);
  }
  return out;
}

const Json& FindVector(const Json& file, absl::string_view name) {
  for (const Json& v : file.at("vectors")) {
    if (v.at("name").get<std::string>() == name) return v;
  }
  ADD_FAILURE() << "no vector " << name;
  static const Json* const kNull = new Json();
  return *kNull;
}

std::string FromHex(absl::string_view hex) {
  EXPECT_EQ(hex.size() % 2, 0u) << hex;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    ADD_FAILURE() << "bad hex digit " << c;
    return 0;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

std::string HexOf(const Json& j) { return FromHex(j.get<std::string>()); }

std::string FromBase64(const Json& j) {
  std::string out;
  EXPECT_TRUE(absl::Base64Unescape(j.get<std::string>(), &out));
  return out;
}

// A vector body object {"utf8", "base64", "length"}.
std::string BodyOf(const Json& body) {
  std::string out = FromBase64(body.at("base64"));
  EXPECT_EQ(out.size(), body.at("length").get<size_t>());
  return out;
}

// [[key, value], ...] with string values.
HeaderList HeadersOf(const Json& list) {
  HeaderList out;
  for (const Json& pair : list) {
    out.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  }
  return out;
}

using ::redrive::testing::TakeOk;

// FastStream 0.7's defective writer: u16 lengths are code-point counts. Used
// to build inputs the vectors only describe (limits) and checked against the
// vectors' own bytes below.
std::string EncodeWithCharLengths(const HeaderList& headers, absl::string_view body) {
  const auto append_u16 = [](size_t v, std::string* out) {
    out->push_back(static_cast<char>(v >> 8 & 0xff));
    out->push_back(static_cast<char>(v & 0xff));
  };
  const auto code_points = [](absl::string_view s) {
    size_t n = 0;
    for (char c : s) n += (static_cast<uint8_t>(c) & 0xc0) != 0x80;
    return n;
  };
  std::string block;
  append_u16(headers.size(), &block);
  for (const auto& [key, value] : headers) {
    append_u16(code_points(key), &block);
    block += key;
    append_u16(code_points(value), &block);
    block += value;
  }
  std::string out("\x89\x42\x49\x4e\x0d\x0a\x1a\x0a\x00\x01\x00\x00\x00\x12", 14);
  const size_t data_start = 18 + block.size();
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>(data_start >> shift & 0xff));
  }
  return out + block + std::string(body);
}

// Minimal SHA-256 (FIPS 180-4), to compare large values with the digests the
// vectors record instead of their bytes.
std::string Sha256Hex(absl::string_view data) {
  static constexpr std::array<uint32_t, 64> kK = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto rotr = [](uint32_t x, int n) { return x >> n | x << (32 - n); };
  std::string msg(data);
  const uint64_t bit_length = static_cast<uint64_t>(data.size()) * 8;
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8) {
    msg.push_back(static_cast<char>(bit_length >> shift & 0xff));
  }
  for (size_t chunk = 0; chunk < msg.size(); chunk += 64) {
    std::array<uint32_t, 64> w{};
    for (size_t i = 0; i < 16; ++i) {
      for (size_t b = 0; b < 4; ++b) {
        w[i] = w[i] << 8 | static_cast<uint8_t>(msg[chunk + 4 * i + b]);
      }
    }
    for (size_t i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    std::array<uint32_t, 8> v = h;
    for (size_t i = 0; i < 64; ++i) {
      const uint32_t s1 = rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25);
      const uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
      const uint32_t t1 = v[7] + s1 + ch + kK[i] + w[i];
      const uint32_t s0 = rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22);
      const uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
      v = {t1 + s0 + maj, v[0], v[1], v[2], v[3] + t1, v[4], v[5], v[6]};
    }
    for (size_t i = 0; i < 8; ++i) h[i] += v[i];
  }
  std::string out;
  for (uint32_t word : h) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      const uint8_t byte = static_cast<uint8_t>(word >> shift & 0xff);
      out += "0123456789abcdef"[byte >> 4];
      out += "0123456789abcdef"[byte & 0xf];
    }
  }
  return out;
}

uint32_t DataStartOf(absl::string_view value) {
  uint32_t v = 0;
  for (size_t i = 14; i < 18; ++i) v = v << 8 | static_cast<uint8_t>(value[i]);
  return v;
}

// ---------------------------------------------------------------------------
// Test helpers themselves.

TEST(EnvelopeTestHelpersTest, Sha256MatchesKnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(EnvelopeTestHelpersTest, CharLengthEncoderReproducesFastStreamBytes) {
  const auto encode = VectorsOfCategory("encode");
  ASSERT_EQ(encode.size(), 10u);
  for (const Json* v : encode) {
    SCOPED_TRACE(v->at("name").get<std::string>());
    EXPECT_EQ(EncodeWithCharLengths(HeadersOf(v->at("input").at("headers")),
                                    BodyOf(v->at("input").at("body"))),
              HexOf(v->at("faststream_encoded_hex")));
  }
}

TEST(EnvelopeTestHelpersTest, VectorFilesHoldTheExpectedCategories) {
  std::map<std::string, int> counts;
  for (const Json& v : FastStreamFile().at("vectors")) {
    ++counts[v.at("category").get<std::string>()];
  }
  EXPECT_EQ(counts, (std::map<std::string, int>{{"encode", 10},
                                                {"decode_only", 1},
                                                {"legacy_json", 7},
                                                {"stream_fields", 2},
                                                {"malformed", 20}}));
  EXPECT_EQ(EggAiFile().at("vectors").size(), 9u);
}

// ---------------------------------------------------------------------------
// Binary v1: vectors produced by FastStream's encoder.

TEST(BinaryV1Test, EveryEncodeVectorDecodesToItsInputs) {
  for (const Json* v : VectorsOfCategory("encode")) {
    SCOPED_TRACE(v->at("name").get<std::string>());
    const bool non_ascii = v->contains("non_ascii_strings");
    const std::string value = HexOf(v->at("faststream_encoded_hex"));
    DecodedEntry entry = TakeOk(DecodeDataValue(value));
    EXPECT_EQ(entry.format, EntryFormat::kBinaryV1);
    EXPECT_EQ(entry.headers, HeadersOf(v->at("input").at("headers")));
    EXPECT_EQ(entry.body, BodyOf(v->at("input").at("body")));
    EXPECT_TRUE(entry.fields.empty());
    // Exactly the non-ASCII (c*) vectors need the character-count reading.
    EXPECT_EQ(entry.recovered_char_length_headers, non_ascii);
  }
}

TEST(BinaryV1Test, EncoderReproducesFastStreamBytesForAsciiHeaders) {
  int checked = 0;
  for (const Json* v : VectorsOfCategory("encode")) {
    if (v->contains("non_ascii_strings")) continue;
    SCOPED_TRACE(v->at("name").get<std::string>());
    EXPECT_EQ(TakeOk(EncodeBinaryV1(HeadersOf(v->at("input").at("headers")),
                                    BodyOf(v->at("input").at("body")))),
              HexOf(v->at("faststream_encoded_hex")));
    ++checked;
  }
  EXPECT_EQ(checked, 6);  // a, b1, b3, b4, d, e1
}

TEST(BinaryV1Test, EncoderWritesByteLengthsForNonAsciiHeaders) {
  int checked = 0;
  for (const Json* v : VectorsOfCategory("encode")) {
    if (!v->contains("non_ascii_strings")) continue;
    SCOPED_TRACE(v->at("name").get<std::string>());
    const HeaderList headers = HeadersOf(v->at("input").at("headers"));
    const std::string body = BodyOf(v->at("input").at("body"));
    const std::string correct = HexOf(v->at("byte_length_correct_hex"));
    const std::string encoded = TakeOk(EncodeBinaryV1(headers, body));
    EXPECT_EQ(encoded, correct);
    EXPECT_NE(encoded, HexOf(v->at("faststream_encoded_hex")));

    DecodedEntry entry = TakeOk(DecodeBinaryV1(correct));
    EXPECT_EQ(entry.headers, headers);
    EXPECT_EQ(entry.body, body);
    EXPECT_FALSE(entry.recovered_char_length_headers);
    ++checked;
  }
  EXPECT_EQ(checked, 4);  // c1..c4
}

TEST(BinaryV1Test, CharLengthHeadersAreRecoveredExactlyAndRepairedOnReencode) {
  // FastStream's own reader truncates c1's value to "grüße" and loses every
  // header of c2..c4 (raw fallback); all four are recoverable exactly.
  const std::map<std::string, std::string> kFastStreamPath = {
      {"c1_non_ascii_header_value_last", "binary"},
      {"c2_non_ascii_header_value_not_last", "raw_fallback"},
      {"c3_non_ascii_header_value_split_char", "raw_fallback"},
      {"c4_non_ascii_header_key", "raw_fallback"}};
  for (const auto& [name, path] : kFastStreamPath) {
    SCOPED_TRACE(name);
    const Json& v = FindVector(FastStreamFile(), name);
    EXPECT_EQ(v.at("faststream_decode").at("path").get<std::string>(), path);
    DecodedEntry entry = TakeOk(DecodeBinaryV1(HexOf(v.at("faststream_encoded_hex"))));
    EXPECT_TRUE(entry.recovered_char_length_headers);
    EXPECT_EQ(entry.headers, HeadersOf(v.at("input").at("headers")));
    EXPECT_EQ(entry.body, BodyOf(v.at("input").at("body")));
    EXPECT_EQ(TakeOk(EncodeBinaryV1(entry.headers, entry.body)),
              HexOf(v.at("byte_length_correct_hex")));
  }
}

TEST(BinaryV1Test, CharLengthRecoveryOfC1GivesTheFullValue) {
  const Json& v = FindVector(FastStreamFile(), "c1_non_ascii_header_value_last");
  DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(v.at("faststream_encoded_hex"))));
  EXPECT_EQ(entry.headers, (HeaderList{{"correlation_id", std::string(kCid)},
                                       {"content-type", "application/json"},
                                       {"x-note",
                                        "gr\xc3\xbc\xc3\x9f"
                                        "e \xe2\x9c\x93"}}));
}

TEST(BinaryV1Test, DecodeOnlyVectorDecodesToItsInputs) {
  const auto vectors = VectorsOfCategory("decode_only");
  ASSERT_EQ(vectors.size(), 1u);
  const Json& v = *vectors[0];
  DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(v.at("constructed_hex"))));
  EXPECT_EQ(entry.format, EntryFormat::kBinaryV1);
  EXPECT_EQ(entry.headers, HeaderList{});
  EXPECT_EQ(entry.body, std::string("\x00\x01\x02\xff", 4));
  EXPECT_EQ(entry.body, BodyOf(v.at("input").at("body")));
  EXPECT_FALSE(entry.recovered_char_length_headers);
}

TEST(BinaryV1Test, DecodeBinaryV1RequiresTheMagic) {
  EXPECT_FALSE(HasBinaryV1Magic(""));
  EXPECT_FALSE(HasBinaryV1Magic(std::string("\x89\x42\x49\x4e\x0d\x0a\x1a", 7)));
  EXPECT_TRUE(HasBinaryV1Magic(std::string("\x89\x42\x49\x4e\x0d\x0a\x1a\x0a", 8)));
  EXPECT_FALSE(HasBinaryV1Magic("{\"data\":\"x\"}"));
  const absl::StatusOr<DecodedEntry> result = DecodeBinaryV1("hello");
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(result.status().message()),
            "not BinaryMessageFormatV1: magic bytes absent");
}

// Builds a byte-length envelope around an arbitrary raw header block.
std::string EnvelopeWithBlock(absl::string_view block, absl::string_view body) {
  std::string out("\x89\x42\x49\x4e\x0d\x0a\x1a\x0a\x00\x01\x00\x00\x00\x12", 14);
  const size_t data_start = 18 + block.size();
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>(data_start >> shift & 0xff));
  }
  return out + std::string(block) + std::string(body);
}

// One header "k" with `value` and its byte length, as a raw block.
std::string OneHeaderBlock(absl::string_view value, size_t declared) {
  std::string block("\x00\x01\x00\x01k", 5);
  block.push_back(static_cast<char>(declared >> 8));
  block.push_back(static_cast<char>(declared & 0xff));
  return block + std::string(value);
}

TEST(BinaryV1Test, HeaderStringsMustBeStrictUtf8) {
  const std::vector<std::string> invalid = {
      "\xc0\x80",          // overlong NUL
      "\xe0\x80\xaf",      // overlong '/'
      "\xed\xa0\x80",      // UTF-16 surrogate U+D800
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xff",              // never valid
      "\x80",              // lone continuation byte
      "abcdefgh\xc3",      // truncated sequence after the 8-byte fast path
  };
  for (const std::string& value : invalid) {
    SCOPED_TRACE(absl::CHexEscape(value));
    const absl::StatusOr<DecodedEntry> result =
        DecodeBinaryV1(EnvelopeWithBlock(OneHeaderBlock(value, value.size()), "b"));
    EXPECT_EQ(result.status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(std::string(result.status().message()), "header 0 value is not valid UTF-8");
    const absl::StatusOr<std::string> encoded = EncodeBinaryV1({{"k", value}}, "b");
    EXPECT_EQ(encoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(encoded.status().message()), "header 0 value is not valid UTF-8");
  }
  const std::vector<std::string> valid = {"",
                                          "\x7f",
                                          "\xc2\x80",
                                          "\xe0\xa0\x80",
                                          "\xed\x9f\xbf",
                                          "\xf0\x90\x80\x80",
                                          "\xf4\x8f\xbf\xbf",
                                          "0123456789abcdef\xf0\x9f\x98\x80"};
  for (const std::string& value : valid) {
    SCOPED_TRACE(absl::CHexEscape(value));
    const std::string envelope = EnvelopeWithBlock(OneHeaderBlock(value, value.size()), "b");
    DecodedEntry entry = TakeOk(DecodeBinaryV1(envelope));
    EXPECT_EQ(entry.headers, (HeaderList{{"k", value}}));
    EXPECT_EQ(entry.body, "b");
    EXPECT_FALSE(entry.recovered_char_length_headers);
    EXPECT_EQ(TakeOk(EncodeBinaryV1({{"k", value}}, "b")), envelope);
  }
}

TEST(BinaryV1Test, InvalidKeyIsRejectedByTheEncoder) {
  const absl::StatusOr<std::string> encoded = EncodeBinaryV1({{"ok", "1"}, {"\xff", "2"}}, "");
  EXPECT_EQ(encoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(encoded.status().message()), "header 1 key is not valid UTF-8");
}

TEST(BinaryV1Test, ReportsBothReadingsWhenNeitherFits) {
  // "é" is 2 bytes / 1 character; a declared length of 3 fits neither.
  const absl::StatusOr<DecodedEntry> result =
      DecodeBinaryV1(EnvelopeWithBlock(OneHeaderBlock("\xc3\xa9", 3), ""));
  EXPECT_EQ(result.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(std::string(result.status().message()),
            "header 0 value length 3 runs past data_start 27; read as "
            "character counts: header 0 value of 3 characters runs past "
            "data_start 27");
}

TEST(BinaryV1Test, CharacterCountsAreOnlyAFallback) {
  // U+00E9 twice is 4 bytes, 2 characters. Declared 4, the
  // byte reading fits and is used.
  DecodedEntry entry =
      TakeOk(DecodeBinaryV1(EnvelopeWithBlock(OneHeaderBlock("\xc3\xa9\xc3\xa9", 4), "body")));
  EXPECT_EQ(entry.headers, (HeaderList{{"k", "\xc3\xa9\xc3\xa9"}}));
  EXPECT_FALSE(entry.recovered_char_length_headers);
  // Declared 2 (FastStream's writer), only the character reading fits.
  entry = TakeOk(DecodeBinaryV1(EnvelopeWithBlock(OneHeaderBlock("\xc3\xa9\xc3\xa9", 2), "body")));
  EXPECT_EQ(entry.headers, (HeaderList{{"k", "\xc3\xa9\xc3\xa9"}}));
  EXPECT_EQ(entry.body, "body");
  EXPECT_TRUE(entry.recovered_char_length_headers);
}

TEST(BinaryV1Test, HeadersStartInsideTheFixedHeaderIsDataLoss) {
  std::string value = TakeOk(EncodeBinaryV1({{"a", "b"}}, "x"));
  value[13] = 17;  // headers_start = 17
  const absl::StatusOr<DecodedEntry> result = DecodeBinaryV1(value);
  EXPECT_EQ(result.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(std::string(result.status().message()),
            "headers_start 17 points into the 18-byte fixed header");
}

TEST(BinaryV1Test, EmptyHeadersAndBodyRoundTrip) {
  const std::string encoded = TakeOk(EncodeBinaryV1({}, ""));
  EXPECT_EQ(encoded, FromHex("8942494e0d0a1a0a000100000012000000140000"));
  DecodedEntry entry = TakeOk(DecodeBinaryV1(encoded));
  EXPECT_TRUE(entry.headers.empty());
  EXPECT_EQ(entry.body, "");
}

TEST(BinaryV1Test, DuplicateHeadersAndBinaryBodyRoundTripInOrder) {
  const HeaderList headers = {{"k", "1"}, {"a", ""}, {"k", "2"}};
  const std::string body("\x00\xff\x89PNG\x00", 7);
  const std::string encoded = TakeOk(EncodeBinaryV1(headers, body));
  DecodedEntry entry = TakeOk(DecodeDataValue(encoded));
  EXPECT_EQ(entry.headers, headers);
  EXPECT_EQ(entry.body, body);
}

// ---------------------------------------------------------------------------
// Malformed vectors: strict outcomes (FastStream's lenient ones differ).

struct Outcome {
  StatusCode code = StatusCode::kOk;
  std::string message;  // when code != kOk
  EntryFormat format = EntryFormat::kBinaryV1;
  HeaderList headers;  // when code == kOk
  std::string body;    // when code == kOk
};

Outcome Fails(StatusCode code, std::string message) {
  Outcome o;
  o.code = code;
  o.message = std::move(message);
  return o;
}

Outcome Decodes(EntryFormat format, HeaderList headers, std::string body) {
  Outcome o;
  o.format = format;
  o.headers = std::move(headers);
  o.body = std::move(body);
  return o;
}

TEST(MalformedVectorsTest, EachHasTheChosenStrictOutcome) {
  const HeaderList kA = {{"correlation_id", std::string(kCid)},
                         {"content-type", "application/json"}};
  const std::string kBody = R"({"id":"1","type":"order","data":{"n":1}})";
  const auto input = [](const char* name) {
    return HexOf(FindVector(FastStreamFile(), name).at("input_hex"));
  };
  const std::map<std::string, Outcome> expected = {
      {"g01_empty_input", Decodes(EntryFormat::kRaw, {}, "")},
      {"g02_magic_only",
       Fails(StatusCode::kDataLoss, "value is 8 bytes, shorter than the 18-byte fixed header")},
      {"g03_magic_and_version",
       Fails(StatusCode::kDataLoss, "value is 10 bytes, shorter than the 18-byte fixed header")},
      {"g04_fixed_header_no_count",
       Fails(StatusCode::kDataLoss, "data_start 106 is past the end of the 18-byte value")},
      {"g05_header_count_plus_one",
       Fails(StatusCode::kDataLoss, "header 2 key length field runs past data_start 106")},
      {"g06_header_count_65535",
       Fails(StatusCode::kDataLoss, "header 2 key length field runs past data_start 106")},
      {"g07_truncated_inside_headers",
       Fails(StatusCode::kDataLoss, "data_start 106 is past the end of the 101-byte value")},
      // Cut exactly at data_start: indistinguishable from an empty body.
      {"g08_truncated_after_headers", Decodes(EntryFormat::kBinaryV1, kA, "")},
      // The body has no length field: a shortened body is undetectable.
      {"g09_truncated_body", Decodes(EntryFormat::kBinaryV1, kA, kBody.substr(0, 35))},
      {"g10_data_start_beyond_end",
       Fails(StatusCode::kDataLoss, "data_start 246 is past the end of the 146-byte value")},
      {"g11_data_start_max",
       Fails(StatusCode::kDataLoss, "data_start 4294967295 is past the end of the 146-byte value")},
      {"g12_data_start_before_headers_end",
       Fails(StatusCode::kDataLoss, "header count at headers_start 18 runs past data_start 18")},
      {"g13_headers_start_beyond_end",
       Fails(StatusCode::kDataLoss,
             "header count at headers_start 65535 runs past data_start 106")},
      {"g14_headers_start_22_with_padding", Decodes(EntryFormat::kBinaryV1, kA, kBody)},
      {"g15_version_2", Fails(StatusCode::kUnimplemented,
                              "BinaryMessageFormatV1 version 2 is not "
                              "supported")},
      {"g16_bad_magic", Decodes(EntryFormat::kRaw, {}, input("g16_bad_magic"))},
      {"g17_invalid_utf8_in_header_value",
       Fails(StatusCode::kDataLoss, "header 0 value is not valid UTF-8")},
      // Both duplicates kept in wire order (FastStream's dict keeps "second").
      {"g18_duplicate_header_keys",
       Decodes(EntryFormat::kBinaryV1, {{"k", "first"}, {"k", "second"}}, "body")},
      {"g19_zero_headers_empty_body", Decodes(EntryFormat::kBinaryV1, {}, "")},
      // FastStream skips the 6 junk bytes; no writer produces them.
      {"g20_trailing_garbage_after_count_zero",
       Fails(StatusCode::kDataLoss, "header block ends at 20, not at data_start 26")},
  };
  const auto malformed = VectorsOfCategory("malformed");
  ASSERT_EQ(malformed.size(), expected.size());
  for (const Json* v : malformed) {
    const std::string name = v->at("name").get<std::string>();
    SCOPED_TRACE(name);
    const auto it = expected.find(name);
    ASSERT_NE(it, expected.end());
    const Outcome& want = it->second;
    const absl::StatusOr<DecodedEntry> got = DecodeDataValue(HexOf(v->at("input_hex")));
    EXPECT_EQ(got.status().code(), want.code) << got.status();
    if (!got.ok()) {
      EXPECT_EQ(std::string(got.status().message()), want.message);
      continue;
    }
    EXPECT_EQ(got->format, want.format);
    EXPECT_EQ(got->headers, want.headers);
    EXPECT_EQ(got->body, want.body);
    EXPECT_FALSE(got->recovered_char_length_headers);
  }
}

TEST(MalformedVectorsTest, OkOutcomesMatchFastStreamWhereItIsNotLossy) {
  // Where we accept, our reading equals FastStream's (except g18's dict).
  for (const char* name : {"g08_truncated_after_headers", "g09_truncated_body",
                           "g14_headers_start_22_with_padding", "g19_zero_headers_empty_body"}) {
    SCOPED_TRACE(name);
    const Json& v = FindVector(FastStreamFile(), name);
    DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(v.at("input_hex"))));
    EXPECT_EQ(entry.headers, HeadersOf(v.at("faststream_decode").at("headers")));
    EXPECT_EQ(entry.body, BodyOf(v.at("faststream_decode").at("body")));
  }
}

TEST(MalformedVectorsTest, EveryTruncationOfAValidEnvelopeHasAnExactOutcome) {
  for (const char* name : {"a_json_order_body", "b4_header_order_str_body_reply_to_and_override",
                           "c2_non_ascii_header_value_not_last"}) {
    SCOPED_TRACE(name);
    const Json& v = FindVector(FastStreamFile(), name);
    const std::string full = HexOf(v.at("faststream_encoded_hex"));
    const HeaderList headers = HeadersOf(v.at("input").at("headers"));
    const size_t data_start = DataStartOf(full);
    for (size_t len = 0; len <= full.size(); ++len) {
      SCOPED_TRACE(len);
      const absl::string_view prefix = absl::string_view(full).substr(0, len);
      const absl::StatusOr<DecodedEntry> got = DecodeDataValue(prefix);
      if (len < 8) {
        ASSERT_TRUE(got.ok());
        EXPECT_EQ(got->format, EntryFormat::kRaw);
        EXPECT_EQ(got->body, prefix);
      } else if (len < data_start) {
        EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
      } else {
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(got->headers, headers);
        EXPECT_EQ(got->body, full.substr(data_start, len - data_start));
      }
    }
  }
}

TEST(MalformedVectorsTest, RandomByteFlipsDecodeConsistentlyOrFailCleanly) {
  std::mt19937 rng(20240601);  // fixed seed: deterministic
  int ok = 0;
  int failed = 0;
  for (const char* name : {"a_json_order_body", "b4_header_order_str_body_reply_to_and_override",
                           "c2_non_ascii_header_value_not_last"}) {
    const std::string base = HexOf(FindVector(FastStreamFile(), name).at("faststream_encoded_hex"));
    for (int round = 0; round < 3000; ++round) {
      std::string value = base;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        // Mostly hit the fixed header and header block, where damage matters.
        const size_t span = rng() % 4 == 0 ? value.size() : 64;
        value[rng() % span] ^= static_cast<char>(1 + rng() % 255);
      }
      const absl::StatusOr<DecodedEntry> got = DecodeDataValue(value);
      if (!got.ok()) {
        ++failed;
        const StatusCode code = got.status().code();
        EXPECT_TRUE(code == StatusCode::kDataLoss || code == StatusCode::kUnimplemented)
            << got.status();
        EXPECT_FALSE(got.status().message().empty());
        continue;
      }
      ++ok;
      if (got->format != EntryFormat::kBinaryV1) {
        EXPECT_EQ(got->format, EntryFormat::kRaw);
        EXPECT_EQ(got->body, value);
        EXPECT_TRUE(got->headers.empty());
        continue;
      }
      // A successful decode re-encodes: byte-identically when the input was
      // already canonical (byte lengths, headers_start 18).
      const std::string reencoded = TakeOk(EncodeBinaryV1(got->headers, got->body));
      if (!got->recovered_char_length_headers && value[13] == 18 &&
          value.compare(10, 3, std::string(3, '\0')) == 0) {
        EXPECT_EQ(reencoded, value);
      }
      DecodedEntry again = TakeOk(DecodeBinaryV1(reencoded));
      EXPECT_EQ(again.headers, got->headers);
      EXPECT_EQ(again.body, got->body);
      EXPECT_FALSE(again.recovered_char_length_headers);
    }
  }
  // Both outcomes occur, so the loop above checked something.
  EXPECT_GT(ok, 100);
  EXPECT_GT(failed, 100);
}

// ---------------------------------------------------------------------------
// Limits (vector file "limits" section).

const Json& FindLimit(absl::string_view name) {
  for (const Json& v : FastStreamFile().at("limits")) {
    if (v.at("name").get<std::string>() == name) return v;
  }
  ADD_FAILURE() << "no limit " << name;
  static const Json* const kNull = new Json();
  return *kNull;
}

TEST(LimitsTest, HeaderValueOf65535BytesEncodesLikeFastStream) {
  const Json& limit = FindLimit("e2_header_value_65535_ascii");
  const HeaderList headers = {{"correlation_id", std::string(kCid)},
                              {"x-big", std::string(65535, 'a')}};
  const std::string encoded = TakeOk(EncodeBinaryV1(headers, "x"));
  EXPECT_EQ(encoded.size(), limit.at("faststream_encoded_length").get<size_t>());
  EXPECT_EQ(DataStartOf(encoded), limit.at("layout").at("data_start").get<uint32_t>());
  EXPECT_EQ(Sha256Hex(encoded), limit.at("faststream_encoded_sha256").get<std::string>());
  DecodedEntry entry = TakeOk(DecodeDataValue(encoded));
  EXPECT_EQ(entry.headers, headers);
  EXPECT_EQ(entry.body, "x");
}

TEST(LimitsTest, HeaderValueOf65536BytesIsRejected) {
  ASSERT_TRUE(FindLimit("e3_header_value_65536_ascii").contains("faststream_encode_error"));
  const absl::StatusOr<std::string> encoded =
      EncodeBinaryV1({{"correlation_id", ""}, {"x-big", std::string(65536, 'a')}}, "x");
  EXPECT_EQ(encoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(encoded.status().message()),
            "header 1 value is 65536 bytes; a u16 length allows at most 65535");
}

TEST(LimitsTest, HeaderKeyOf65536BytesIsRejected) {
  const absl::StatusOr<std::string> encoded = EncodeBinaryV1({{std::string(65536, 'k'), "v"}}, "");
  EXPECT_EQ(encoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(encoded.status().message()),
            "header 0 key is 65536 bytes; a u16 length allows at most 65535");
  EXPECT_TRUE(EncodeBinaryV1({{std::string(65535, 'k'), "v"}}, "").ok());
}

TEST(LimitsTest, NonAsciiValueWithinCharsButOverBytesIsRecoveredNotWritten) {
  // e4: 'é' x 40000 = 80000 bytes; FastStream writes length 40000.
  const Json& limit = FindLimit("e4_header_value_40000_e_acute");
  std::string value;
  for (int i = 0; i < 40000; ++i) value += "\xc3\xa9";
  const HeaderList headers = {{"correlation_id", std::string(kCid)}, {"x-big", value}};
  const std::string faststream = EncodeWithCharLengths(headers, "x");
  EXPECT_EQ(Sha256Hex(faststream), limit.at("faststream_encoded_sha256").get<std::string>());
  EXPECT_EQ(DataStartOf(faststream), limit.at("layout").at("data_start").get<uint32_t>());

  DecodedEntry entry = TakeOk(DecodeDataValue(faststream));
  EXPECT_TRUE(entry.recovered_char_length_headers);
  EXPECT_EQ(entry.headers, headers);
  EXPECT_EQ(entry.body, "x");

  const absl::StatusOr<std::string> encoded = EncodeBinaryV1(headers, "x");
  EXPECT_EQ(encoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(encoded.status().message()),
            "header 1 value is 80000 bytes; a u16 length allows at most 65535");
}

HeaderList ManyHeaders(size_t user_headers) {
  HeaderList headers = {{"correlation_id", std::string(kCid)}};
  headers.reserve(user_headers + 1);
  for (size_t i = 0; i < user_headers; ++i) {
    headers.emplace_back(absl::StrCat("h", i), "v");
  }
  return headers;
}

TEST(LimitsTest, SixtyFiveThousandFiveHundredThirtyFiveHeadersEncodeLikeFastStream) {
  const Json& limit = FindLimit("e6_65534_headers");
  const HeaderList headers = ManyHeaders(65534);
  ASSERT_EQ(headers.size(), 65535u);
  const std::string encoded = TakeOk(EncodeBinaryV1(headers, "x"));
  EXPECT_EQ(encoded.size(), limit.at("faststream_encoded_length").get<size_t>());
  EXPECT_EQ(Sha256Hex(encoded), limit.at("faststream_encoded_sha256").get<std::string>());
  DecodedEntry entry = TakeOk(DecodeDataValue(encoded));
  EXPECT_EQ(entry.headers, headers);
  EXPECT_EQ(entry.body, "x");
}

TEST(LimitsTest, SixtyFiveThousandFiveHundredThirtySixHeadersAreRejected) {
  ASSERT_TRUE(FindLimit("e5_65536_headers").contains("faststream_encode_error"));
  const absl::StatusOr<std::string> encoded = EncodeBinaryV1(ManyHeaders(65535), "x");
  EXPECT_EQ(encoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(encoded.status().message()),
            "65536 headers exceed the u16 header count (65535 at most)");
}

TEST(LimitsTest, BodyOver64KiBRoundTrips) {
  const Json& v = FindVector(FastStreamFile(), "e1_body_70000_bytes");
  const std::string body = BodyOf(v.at("input").at("body"));
  ASSERT_EQ(body.size(), 70000u);
  DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(v.at("faststream_encoded_hex"))));
  EXPECT_EQ(entry.body, body);
}

// ---------------------------------------------------------------------------
// Legacy JSON and raw values.

TEST(LegacyJsonTest, EachVectorHasTheChosenReading) {
  const Json& f1 = FindVector(FastStreamFile(), "f1_legacy_envelope_from_0_6_7_writer");
  const Json& f2 = FindVector(FastStreamFile(), "f2_legacy_envelope_non_ascii_from_0_6_7_writer");
  const std::string order = R"({"id":"1","type":"order","data":{"n":1}})";
  const std::map<std::string, Outcome> expected = {
      {"f1_legacy_envelope_from_0_6_7_writer",
       Decodes(EntryFormat::kLegacyJson,
               {{"correlation_id", std::string(kCid)}, {"content-type", "application/json"}},
               order)},
      {"f2_legacy_envelope_non_ascii_from_0_6_7_writer",
       Decodes(EntryFormat::kLegacyJson,
               {{"correlation_id", std::string(kCid)},
                {"content-type", "application/json"},
                {"x-note",
                 "gr\xc3\xbc\xc3\x9f"
                 "e \xe2\x9c\x93"}},
               "{\"id\":\"2\",\"type\":\"note\",\"data\":{\"text\":"
               "\"gr\xc3\xbc\xc3\x9f"
               "e \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac"
               "\"}}")},
      {"f3_legacy_envelope_without_headers_key", Decodes(EntryFormat::kLegacyJson, {}, "hello")},
      {"f4_plain_json_no_envelope", Decodes(EntryFormat::kRaw, {}, R"({"id":"1","type":"order"})")},
      // Stricter than FastStream (which yields body "hello"): not an envelope.
      {"f5_plain_json_with_string_data_field",
       Decodes(EntryFormat::kRaw, {}, R"({"id":"1","type":"order","data":"hello"})")},
      {"f6_plain_json_with_object_data_field", Decodes(EntryFormat::kRaw, {}, order)},
      // Non-string header values become their compact JSON text.
      {"f7_legacy_envelope_non_string_header_values",
       Decodes(EntryFormat::kLegacyJson, {{"correlation_id", "c1"}, {"retries", "3"}}, "x")},
  };
  const auto vectors = VectorsOfCategory("legacy_json");
  ASSERT_EQ(vectors.size(), expected.size());
  for (const Json* v : vectors) {
    const std::string name = v->at("name").get<std::string>();
    SCOPED_TRACE(name);
    const auto it = expected.find(name);
    ASSERT_NE(it, expected.end());
    const std::string value = HexOf(v->at("entry_value_hex"));
    EXPECT_EQ(value, v->at("entry_value_utf8").get<std::string>());
    DecodedEntry entry = TakeOk(DecodeDataValue(value));
    EXPECT_EQ(entry.format, it->second.format);
    EXPECT_EQ(entry.headers, it->second.headers);
    EXPECT_EQ(entry.body, it->second.body);
  }
  // The orjson-written (compact, unescaped) variants read the same.
  for (const Json* v : {&f1, &f2}) {
    const std::string name = v->at("name").get<std::string>();
    SCOPED_TRACE(name);
    const Json& differences = v->at("orjson_variant").at("differences");
    DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(differences.at("/entry_value_hex"))));
    EXPECT_EQ(entry.format, EntryFormat::kLegacyJson);
    EXPECT_EQ(entry.headers, expected.at(name).headers);
    EXPECT_EQ(entry.body, expected.at(name).body);
  }
}

TEST(LegacyJsonTest, AgreesWithFastStreamExceptForF5) {
  for (const Json* v : VectorsOfCategory("legacy_json")) {
    const std::string name = v->at("name").get<std::string>();
    if (name == "f5_plain_json_with_string_data_field" ||
        name == "f7_legacy_envelope_non_string_header_values") {
      continue;  // f5: stricter; f7: FastStream's header is an int.
    }
    SCOPED_TRACE(name);
    const Json& fs = v->at("faststream_decode");
    DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(v->at("entry_value_hex"))));
    EXPECT_EQ(entry.format, fs.at("path").get<std::string>() == "legacy_json"
                                ? EntryFormat::kLegacyJson
                                : EntryFormat::kRaw);
    EXPECT_EQ(entry.headers, HeadersOf(fs.at("headers")));
    EXPECT_EQ(entry.body, BodyOf(fs.at("body")));
  }
}

TEST(LegacyJsonTest, DecodeLegacyJsonExplainsRejections) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not a JSON object"},
      {"hello", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {"{\"data\":", "not valid JSON"},
      {R"({"headers":{"a":"b"}})", "no member \"data\""},
      {R"({"id":"1","type":"order"})", "has members other than \"data\" and \"headers\""},
      {R"({"id":"1","type":"order","data":"hello"})",
       "has members other than \"data\" and \"headers\""},
      {R"({"data":{"n":1}})", "member \"data\" is not a string"},
      {R"({"data":"x","headers":[["a","b"]]})", "member \"headers\" is not an object"},
      {R"({"data":"x","headers":null})", "member \"headers\" is not an object"},
      {R"({"data":"\ud800"})", "not valid JSON"},  // lone surrogate
      {"{\"data\":\"\xff\"}", "not valid JSON"},   // invalid UTF-8
  };
  for (const auto& [value, why] : cases) {
    SCOPED_TRACE(value);
    const absl::StatusOr<DecodedEntry> result = DecodeLegacyJson(value);
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(result.status().message()),
              absl::StrCat("not a legacy JSON envelope: ", why));
    DecodedEntry raw = TakeOk(DecodeDataValue(value));
    EXPECT_EQ(raw.format, EntryFormat::kRaw);
    EXPECT_EQ(raw.body, value);
    EXPECT_TRUE(raw.headers.empty());
  }
}

TEST(LegacyJsonTest, HeaderValuesOfEveryJsonTypeAndOrderAreKept) {
  DecodedEntry entry =
      TakeOk(DecodeLegacyJson(" \n{\"headers\": {\"z\": \"s\", \"n\": -1.50, \"e\": 1E3, \"i\": -7,"
                              " \"u\": 18446744073709551615, \"t\": true, \"f\": false,"
                              " \"nul\": null, \"arr\": [1, \"a\", [], {}, [null]],"
                              " \"obj\": {\"b\": 2, \"a\": {\"c\": \"\\u00e9\\n\\\"\"}}, \"z\": "
                              "\"last\"},"
                              " \"data\": \"\\u00e9\\u0000\"}"));
  EXPECT_EQ(entry.format, EntryFormat::kLegacyJson);
  EXPECT_EQ(entry.headers, (HeaderList{{"z", "last"},
                                       {"n", "-1.50"},
                                       {"e", "1E3"},
                                       {"i", "-7"},
                                       {"u", "18446744073709551615"},
                                       {"t", "true"},
                                       {"f", "false"},
                                       {"nul", "null"},
                                       {"arr", "[1,\"a\",[],{},[null]]"},
                                       {"obj", "{\"b\":2,\"a\":{\"c\":\"\xc3\xa9\\n\\\"\"}}"}}));
  EXPECT_EQ(entry.body, std::string("\xc3\xa9\x00", 3));
}

TEST(LegacyJsonTest, RepeatedMembersFollowPythonDictSemantics) {
  // A repeated "data" or "headers" replaces the earlier one.
  DecodedEntry entry = TakeOk(
      DecodeLegacyJson(R"({"data":"a","headers":{"x":"1"},"data":"b","headers":{"y":"2"}})"));
  EXPECT_EQ(entry.body, "b");
  EXPECT_EQ(entry.headers, (HeaderList{{"y", "2"}}));
  // The last "data" decides whether it is an envelope at all.
  EXPECT_EQ(DecodeLegacyJson(R"({"data":"a","data":1})").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(LegacyJsonTest, LargeObjectsAreReadInLinearTime) {
  // 200k headers: a per-key linear lookup would take minutes.
  std::string value = "{\"data\":\"d\",\"headers\":{";
  for (int i = 0; i < 200000; ++i) {
    absl::StrAppend(&value, i == 0 ? "" : ",", "\"h", i, "\":", i);
  }
  value += "}}";
  DecodedEntry entry = TakeOk(DecodeDataValue(value));
  EXPECT_EQ(entry.format, EntryFormat::kLegacyJson);
  ASSERT_EQ(entry.headers.size(), 200000u);
  EXPECT_EQ(entry.headers[199999], std::make_pair(std::string("h199999"), std::string("199999")));
  // A large plain payload is rejected at its first member, not parsed.
  std::string payload = "{\"id\":1,\"rest\":[";
  payload += std::string(1 << 20, '[');  // never closed: never reached
  entry = TakeOk(DecodeDataValue(payload));
  EXPECT_EQ(entry.format, EntryFormat::kRaw);
  EXPECT_EQ(entry.body, payload);
}

TEST(LegacyJsonTest, DeeplyNestedJsonIsRawNotACrash) {
  std::string deep = "{\"x\":";
  deep += std::string(200000, '[');
  std::string closed = deep + std::string(200000, ']') + "}";
  DecodedEntry entry = TakeOk(DecodeDataValue(deep));
  EXPECT_EQ(entry.format, EntryFormat::kRaw);
  EXPECT_EQ(entry.body, deep);
  entry = TakeOk(DecodeDataValue(closed));
  EXPECT_EQ(entry.format, EntryFormat::kRaw);
  EXPECT_EQ(entry.body.size(), closed.size());
}

// ---------------------------------------------------------------------------
// Stream entries.

TEST(StreamEntryTest, StreamFieldVectorsAreFieldMaps) {
  const std::map<std::string, FieldList> expected = {
      {"s1_stream_fields_without___data__", {{"id", "1"}, {"type", "order"}}},
      {"s2_stream_empty___data__", {{"__data__", ""}}},
  };
  const auto vectors = VectorsOfCategory("stream_fields");
  ASSERT_EQ(vectors.size(), expected.size());
  for (const Json* v : vectors) {
    const std::string name = v->at("name").get<std::string>();
    SCOPED_TRACE(name);
    FieldList fields;
    for (const auto& [key, value] : v->at("entry_fields").items()) {
      fields.emplace_back(key, value.get<std::string>());
    }
    EXPECT_EQ(fields, expected.at(name));
    DecodedEntry entry = TakeOk(DecodeStreamEntry(fields));
    EXPECT_EQ(entry.format, EntryFormat::kFields);
    EXPECT_EQ(entry.fields, expected.at(name));
    EXPECT_TRUE(entry.headers.empty());
    EXPECT_EQ(entry.body, "");
  }
}

TEST(StreamEntryTest, DataFieldIsDecodedAndOtherFieldsIgnored) {
  const std::string value =
      HexOf(FindVector(FastStreamFile(), "a_json_order_body").at("faststream_encoded_hex"));
  DecodedEntry entry = TakeOk(DecodeStreamEntry({{"other", "1"}, {"__data__", value}, {"x", "y"}}));
  EXPECT_EQ(entry.format, EntryFormat::kBinaryV1);
  EXPECT_EQ(entry.body, R"({"id":"1","type":"order","data":{"n":1}})");
  EXPECT_EQ(entry.headers.size(), 2u);
  EXPECT_TRUE(entry.fields.empty());
}

TEST(StreamEntryTest, FirstDataFieldWins) {
  const std::string first = TakeOk(EncodeBinaryV1({{"n", "1"}}, "first"));
  const std::string second = TakeOk(EncodeBinaryV1({{"n", "2"}}, "second"));
  DecodedEntry entry = TakeOk(DecodeStreamEntry({{"__data__", first}, {"__data__", second}}));
  EXPECT_EQ(entry.headers, (HeaderList{{"n", "1"}}));
  EXPECT_EQ(entry.body, "first");
  // An empty first __data__ makes the entry a field map, as FastStream does.
  const FieldList empty_first = {{"__data__", ""}, {"__data__", second}};
  entry = TakeOk(DecodeStreamEntry(empty_first));
  EXPECT_EQ(entry.format, EntryFormat::kFields);
  EXPECT_EQ(entry.fields, empty_first);
}

TEST(StreamEntryTest, DataFieldNameMatchesExactlyAndFieldsAreBinarySafe) {
  const FieldList fields = {{"__DATA__", "x"},
                            {"__data__ ", "y"},
                            {std::string("__data__\0", 9), "z"},
                            {std::string("k\0\xff", 3), std::string("\0v\x89", 3)}};
  DecodedEntry entry = TakeOk(DecodeStreamEntry(fields));
  EXPECT_EQ(entry.format, EntryFormat::kFields);
  EXPECT_EQ(entry.fields, fields);
  entry = TakeOk(DecodeStreamEntry({}));
  EXPECT_EQ(entry.format, EntryFormat::kFields);
  EXPECT_TRUE(entry.fields.empty());
}

TEST(StreamEntryTest, CorruptBinaryDataIsAnErrorAndOtherValuesAreRawOrLegacy) {
  const absl::StatusOr<DecodedEntry> corrupt = DecodeStreamEntry(
      {{"__data__", HexOf(FindVector(FastStreamFile(), "g15_version_2").at("input_hex"))}});
  EXPECT_EQ(corrupt.status().code(), StatusCode::kUnimplemented);

  DecodedEntry entry = TakeOk(DecodeStreamEntry({{"__data__", "plain text"}}));
  EXPECT_EQ(entry.format, EntryFormat::kRaw);
  EXPECT_EQ(entry.body, "plain text");

  entry = TakeOk(DecodeStreamEntry({{"__data__", R"({"data":"d"})"}}));
  EXPECT_EQ(entry.format, EntryFormat::kLegacyJson);
  EXPECT_EQ(entry.body, "d");
}

// ---------------------------------------------------------------------------
// EggAI PendingReclaimer rewrite vectors.

// Decodes `hex` and compares with an EggAI vector's *_faststream_decode.
void ExpectDecodesLikeFastStream(const Json& hex, const Json& fs) {
  DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(hex)));
  const std::string path = fs.at("path").get<std::string>();
  EXPECT_EQ(entry.format, path == "binary" ? EntryFormat::kBinaryV1 : EntryFormat::kRaw);
  EXPECT_EQ(entry.headers, HeadersOf(fs.at("headers")));
  EXPECT_EQ(entry.body, FromBase64(fs.at("body_base64")));
  EXPECT_FALSE(entry.recovered_char_length_headers);
}

TEST(EggAiRetryVectorsTest, InputsAndOutputsDecodeLikeFastStream) {
  for (const char* name : {"r1_first_reclaim_main_stream", "r2_second_reclaim_retry_stream",
                           "x1_first_reclaim_non_ascii_body",
                           "x4_plain_json_entry_without_envelope", "x5_non_json_body"}) {
    SCOPED_TRACE(name);
    const Json& v = FindVector(EggAiFile(), name);
    ExpectDecodesLikeFastStream(v.at("input_hex"), v.at("input_faststream_decode"));
    ExpectDecodesLikeFastStream(v.at("output_hex"), v.at("output_faststream_decode"));
  }
}

TEST(EggAiRetryVectorsTest, RetryMetadataBodiesAreExact) {
  const Json& r2 = FindVector(EggAiFile(), "r2_second_reclaim_retry_stream");
  DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(r2.at("output_hex"))));
  EXPECT_EQ(entry.body, R"({"id":"1","type":"order","data":{"n":1},"_retry_count":"2",)"
                        R"("_original_message_id":"1700000000000-0"})");
  // EggAI's rewrite of ASCII headers equals our encoder's output.
  EXPECT_EQ(TakeOk(EncodeBinaryV1(entry.headers, entry.body)), HexOf(r2.at("output_hex")));
}

TEST(EggAiRetryVectorsTest, NonAsciiHeaderRewriteIsRecoveredNotPoison) {
  const Json& x2 = FindVector(EggAiFile(), "x2_first_reclaim_non_ascii_header");
  const Json& x3 = FindVector(EggAiFile(), "x3_second_reclaim_non_ascii_header");
  const std::string note_full =
      "gr\xc3\xbc\xc3\x9f"
      "e \xe2\x9c\x93";
  const std::string note_cut =
      "gr\xc3\xbc\xc3\x9f"
      "e";

  // x2 input (FastStream's c1 bytes): we recover the full value, where
  // FastStream (and therefore EggAI) read the truncated "grüße".
  DecodedEntry input = TakeOk(DecodeDataValue(HexOf(x2.at("input_hex"))));
  EXPECT_TRUE(input.recovered_char_length_headers);
  EXPECT_EQ(input.headers.at(2), std::make_pair(std::string("x-note"), note_full));
  EXPECT_EQ(input.body, FromBase64(x2.at("input_faststream_decode").at("body_base64")));

  // x2 output == x3 input == x3 output: FastStream falls back to raw (poison
  // for EggAI); the character-count reading recovers it. EggAI already cut
  // the value to "grüße" and that loss cannot be undone.
  const std::string rewritten = HexOf(x2.at("output_hex"));
  EXPECT_EQ(HexOf(x3.at("input_hex")), rewritten);
  EXPECT_EQ(HexOf(x3.at("output_hex")), rewritten);
  EXPECT_EQ(x3.at("input_faststream_decode").at("path").get<std::string>(), "raw_fallback");
  const Json& correct = x2.at("byte_length_correct_output_faststream_decode");
  DecodedEntry output = TakeOk(DecodeDataValue(rewritten));
  EXPECT_EQ(output.format, EntryFormat::kBinaryV1);
  EXPECT_TRUE(output.recovered_char_length_headers);
  EXPECT_EQ(output.headers, HeadersOf(correct.at("headers")));
  EXPECT_EQ(output.headers.at(2), std::make_pair(std::string("x-note"), note_cut));
  EXPECT_EQ(output.body, FromBase64(correct.at("body_base64")));

  // Re-encoding repairs it into exactly what a byte-length reclaimer writes.
  const std::string repaired = TakeOk(EncodeBinaryV1(output.headers, output.body));
  EXPECT_EQ(repaired, HexOf(x2.at("byte_length_correct_output_hex")));
  DecodedEntry reread = TakeOk(DecodeDataValue(repaired));
  EXPECT_FALSE(reread.recovered_char_length_headers);
  EXPECT_EQ(reread.headers, output.headers);
}

TEST(EggAiRetryVectorsTest, BodiesEggAiCannotRewriteStillDecodeAsEnvelopes) {
  // x6/x7 make EggAI raise; at the envelope level they are ordinary.
  const std::map<std::string, std::string> bodies = {
      {"x6_json_array_body", "[1,2]"},
      {"x7_non_numeric_retry_count", R"({"id":"1","_retry_count":"abc"})"}};
  for (const auto& [name, body] : bodies) {
    SCOPED_TRACE(name);
    const Json& v = FindVector(EggAiFile(), name);
    ExpectDecodesLikeFastStream(v.at("input_hex"), v.at("input_faststream_decode"));
    DecodedEntry entry = TakeOk(DecodeDataValue(HexOf(v.at("input_hex"))));
    EXPECT_EQ(entry.body, body);
  }
}

}  // namespace
}  // namespace redrive
