#include "daemon/retry_metadata.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/envelope.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using Json = nlohmann::ordered_json;
using ::redrive::testing::IsOk;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;

constexpr absl::string_view kCid = "0f8fad5b-d9cb-469f-a165-70867728950e";
constexpr absl::string_view kMainId = "1700000000000-0";   // vectors' msg_id (r1, x1, ...)
constexpr absl::string_view kRetryId = "1700000000500-0";  // vectors' msg_id (r2, x3)

// ---------------------------------------------------------------------------
// Helpers

const Json& VectorFile() {
  static const Json* const kFile = [] {
    const std::string path =
        std::string(REDRIVE_TEST_DATA_DIR) + "/vectors/eggai-retry-metadata.json";
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    std::stringstream text;
    text << in.rdbuf();
    auto* json = new Json(Json::parse(text.str(), nullptr, /*allow_exceptions=*/false));
    EXPECT_FALSE(json->is_discarded()) << "cannot parse " << path;
    return json;
  }();
  return *kFile;
}

const Json& Vector(absl::string_view name) {
  for (const Json& v : VectorFile().at("vectors")) {
    if (v.at("name").get<std::string>() == name) return v;
  }
  ADD_FAILURE() << "no vector " << name;
  static const Json* const kNull = new Json();
  return *kNull;
}

std::string HexOf(const Json& j) { return absl::HexStringToBytes(j.get<std::string>()); }

std::string FromBase64(const Json& j) {
  std::string out;
  EXPECT_TRUE(absl::Base64Unescape(j.get<std::string>(), &out));
  return out;
}

HeaderList HeadersOf(const Json& list) {
  HeaderList out;
  for (const Json& pair : list) {
    out.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::string>());
  }
  return out;
}

using ::redrive::testing::TakeOk;

DecodedEntry Decode(absl::string_view value) { return TakeOk(DecodeDataValue(value)); }

DecodedEntry Entry(HeaderList headers, std::string body) {
  DecodedEntry e;
  e.format = EntryFormat::kBinaryV1;
  e.headers = std::move(headers);
  e.body = std::move(body);
  return e;
}

HeaderList JsonHeaders() {
  return {{"correlation_id", std::string(kCid)}, {"content-type", "application/json"}};
}

std::string Envelope(const HeaderList& headers, absl::string_view body) {
  return SpecEnvelope(headers, std::string(body));
}

// The body of a value we wrote, after checking it is a byte-length envelope.
std::string BodyOf(absl::string_view value) {
  DecodedEntry e = Decode(value);
  EXPECT_EQ(e.format, EntryFormat::kBinaryV1);
  EXPECT_FALSE(e.recovered_char_length_headers);
  return e.body;
}

DeadLetterInfo Info(absl::string_view reason, int64_t retries) {
  DeadLetterInfo info;
  info.source = "orders";
  info.handler = "order-service-handle_order-1";
  info.at = absl::FromUnixMillis(1700000000123);
  info.reason = std::string(reason);
  info.retries = retries;
  return info;
}

// ---------------------------------------------------------------------------
// EggAI vectors: every vector has an asserted outcome.

TEST(RetryMetadataVectorsTest, EveryVectorIsCovered) {
  const std::set<std::string> covered = {"r1_first_reclaim_main_stream",
                                         "r2_second_reclaim_retry_stream",
                                         "x1_first_reclaim_non_ascii_body",
                                         "x2_first_reclaim_non_ascii_header",
                                         "x3_second_reclaim_non_ascii_header",
                                         "x4_plain_json_entry_without_envelope",
                                         "x5_non_json_body",
                                         "x6_json_array_body",
                                         "x7_non_numeric_retry_count"};
  std::set<std::string> names;
  for (const Json& v : VectorFile().at("vectors")) names.insert(v.at("name").get<std::string>());
  EXPECT_EQ(names, covered);
}

// r1, r2, x1, x4: our rewrite is byte-identical to EggAI 0.3.4's.
TEST(RetryMetadataVectorsTest, RewriteIsByteIdenticalToEggAi) {
  struct Case {
    const char* name;
    int64_t count_before;
    std::string original_before;
  };
  for (const Case& c : {Case{"r1_first_reclaim_main_stream", 0, ""},
                        Case{"r2_second_reclaim_retry_stream", 1, std::string(kMainId)},
                        Case{"x1_first_reclaim_non_ascii_body", 0, ""},
                        Case{"x4_plain_json_entry_without_envelope", 0, ""}}) {
    SCOPED_TRACE(c.name);
    const Json& v = Vector(c.name);
    ASSERT_TRUE(v.at("raised").is_null());
    RetryEntry read = TakeOk(ReadRetryEntry(HexOf(v.at("input_hex"))));
    EXPECT_EQ(read.metadata.carrier, MetadataCarrier::kJsonBody);
    EXPECT_EQ(read.metadata.retry_count, c.count_before);
    EXPECT_EQ(read.metadata.original_id, c.original_before);

    const int64_t next = read.metadata.retry_count + 1;
    EXPECT_EQ(next, v.at("returned_new_count").get<int64_t>());
    const std::string written =
        TakeOk(WriteRetryDataValue(read.entry, v.at("msg_id").get<std::string>(), next));
    EXPECT_EQ(absl::BytesToHexString(written), v.at("output_hex").get<std::string>());
  }
}

TEST(RetryMetadataVectorsTest, PlainJsonEntryBecomesAZeroHeaderEnvelopeLikeEggAi) {
  const Json& v = Vector("x4_plain_json_entry_without_envelope");
  RetryEntry read = TakeOk(ReadRetryEntry(HexOf(v.at("input_hex"))));
  EXPECT_EQ(read.entry.format, EntryFormat::kRaw);
  const std::string written = TakeOk(WriteRetryDataValue(read.entry, kMainId, 1));
  EXPECT_EQ(written,
            Envelope({}, R"({"id":"1","type":"order","data":{"n":1},)"
                         R"("_retry_count":"1","_original_message_id":"1700000000000-0"})"));
  RetryEntry again = TakeOk(ReadRetryEntry(written));
  EXPECT_EQ(again.entry.format, EntryFormat::kBinaryV1);
  EXPECT_TRUE(again.entry.headers.empty());
  EXPECT_EQ(again.metadata.retry_count, 1);
  EXPECT_EQ(again.metadata.original_id, kMainId);
}

// x2: EggAI read (and re-wrote) the truncated "grüße"; given the same headers
// we write exactly the byte-length-correct output.
TEST(RetryMetadataVectorsTest, NonAsciiHeaderIsWrittenWithByteLengths) {
  const Json& v = Vector("x2_first_reclaim_non_ascii_header");
  const Json& fs = v.at("input_faststream_decode");
  DecodedEntry as_eggai_read = Entry(HeadersOf(fs.at("headers")), FromBase64(fs.at("body_base64")));
  const std::string written = TakeOk(WriteRetryDataValue(as_eggai_read, kMainId, 1));
  EXPECT_EQ(absl::BytesToHexString(written),
            v.at("byte_length_correct_output_hex").get<std::string>());
}

// x2 as stored: our decoder recovers the whole "grüße ✓" (FastStream wrote a
// character count) and the rewrite keeps it whole, with byte lengths.
TEST(RetryMetadataVectorsTest, NonAsciiHeaderRecoveredFromCharacterCountsIsKeptWhole) {
  const Json& v = Vector("x2_first_reclaim_non_ascii_header");
  RetryEntry read = TakeOk(ReadRetryEntry(HexOf(v.at("input_hex"))));
  EXPECT_TRUE(read.entry.recovered_char_length_headers);
  EXPECT_EQ(read.metadata.retry_count, 0);
  const std::string written = TakeOk(WriteRetryDataValue(read.entry, kMainId, 1));
  HeaderList headers = JsonHeaders();
  headers.emplace_back("x-note",
                       "gr\xc3\xbc\xc3\x9f"
                       "e \xe2\x9c\x93");
  EXPECT_EQ(
      written,
      Envelope(headers,
               FromBase64(v.at("byte_length_correct_output_faststream_decode").at("body_base64"))));
}

// x3: EggAI's own x2 output is poison for EggAI (FastStream falls back to
// raw); we recover it, and our rewrite repairs it.
TEST(RetryMetadataVectorsTest, EggAiCorruptedNonAsciiHeaderIsNotPoison) {
  const Json& v = Vector("x3_second_reclaim_non_ascii_header");
  EXPECT_FALSE(v.at("returned_parsed_ok").get<bool>());  // EggAI: poison
  RetryEntry read = TakeOk(ReadRetryEntry(HexOf(v.at("input_hex"))));
  EXPECT_TRUE(read.entry.recovered_char_length_headers);
  EXPECT_EQ(read.metadata.carrier, MetadataCarrier::kJsonBody);
  EXPECT_EQ(read.metadata.retry_count, 1);
  EXPECT_EQ(read.metadata.original_id, kMainId);

  // Rewritten at the same count it is exactly x2's byte-length-correct output.
  EXPECT_EQ(absl::BytesToHexString(TakeOk(WriteRetryDataValue(read.entry, kRetryId, 1))),
            Vector("x2_first_reclaim_non_ascii_header")
                .at("byte_length_correct_output_hex")
                .get<std::string>());
  // The next retry: count 2, original id kept (first wins).
  HeaderList headers = JsonHeaders();
  headers.emplace_back("x-note",
                       "gr\xc3\xbc\xc3\x9f"
                       "e");
  EXPECT_EQ(TakeOk(WriteRetryDataValue(read.entry, kRetryId, 2)),
            Envelope(headers, R"({"id":"1","type":"order","data":{"n":1},)"
                              R"("_retry_count":"2","_original_message_id":"1700000000000-0"})"));
}

// x5: a non-JSON body (EggAI: poison) is a legal payload; metadata in headers.
TEST(RetryMetadataVectorsTest, NonJsonBodyCarriesMetadataInHeaders) {
  const Json& v = Vector("x5_non_json_body");
  RetryEntry read = TakeOk(ReadRetryEntry(HexOf(v.at("input_hex"))));
  EXPECT_EQ(read.metadata.carrier, MetadataCarrier::kHeaders);
  EXPECT_EQ(read.metadata.retry_count, 0);
  EXPECT_EQ(read.metadata.original_id, "");
  const std::string written = TakeOk(WriteRetryDataValue(read.entry, kMainId, 1));
  EXPECT_EQ(written, Envelope({{"correlation_id", ""},
                               {"x-redrive-attempt", "1"},
                               {"x-redrive-original-id", "1700000000000-0"}},
                              std::string("\x00\x01\x02\xff", 4)));
  RetryEntry again = TakeOk(ReadRetryEntry(written));
  EXPECT_EQ(again.metadata.carrier, MetadataCarrier::kHeaders);
  EXPECT_EQ(again.metadata.retry_count, 1);
  EXPECT_EQ(again.metadata.original_id, kMainId);
}

// x6: JSON that is not an object (EggAI raises) is a legal payload too.
TEST(RetryMetadataVectorsTest, JsonArrayBodyIsNotPoisonAndKeepsItsBytes) {
  const Json& v = Vector("x6_json_array_body");
  EXPECT_FALSE(v.at("raised").is_null());
  RetryEntry read = TakeOk(ReadRetryEntry(HexOf(v.at("input_hex"))));
  EXPECT_EQ(read.metadata.carrier, MetadataCarrier::kHeaders);
  EXPECT_EQ(read.metadata.retry_count, 0);
  HeaderList headers = JsonHeaders();
  headers.emplace_back("x-redrive-attempt", "1");
  headers.emplace_back("x-redrive-original-id", "1700000000000-0");
  EXPECT_EQ(TakeOk(WriteRetryDataValue(read.entry, kMainId, 1)), Envelope(headers, "[1,2]"));
}

// x7: a non-numeric _retry_count (EggAI raises) is poison, with the reason.
TEST(RetryMetadataVectorsTest, NonNumericRetryCountIsPoison) {
  const Json& v = Vector("x7_non_numeric_retry_count");
  const std::string value = HexOf(v.at("input_hex"));
  const absl::StatusOr<RetryEntry> read = ReadRetryEntry(value);
  EXPECT_THAT(read, StatusIs(absl::StatusCode::kDataLoss,
                             "poison: _retry_count \"abc\" is not a decimal integer"));
  EXPECT_TRUE(IsPoison(read.status()));
  EXPECT_THAT(WriteRetryDataValue(Decode(value), kMainId, 1),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("_retry_count")));
}

// ---------------------------------------------------------------------------
// Round trips and first-wins original id

TEST(RetryMetadataTest, JsonBodyRoundTripsAndTheFirstOriginalIdWins) {
  const std::string first = Envelope(JsonHeaders(), R"({"a":1})");
  const std::string retry1 = TakeOk(WriteRetryDataValue(Decode(first), "5-0", 1));
  RetryEntry read1 = TakeOk(ReadRetryEntry(retry1));
  EXPECT_EQ(read1.metadata.carrier, MetadataCarrier::kJsonBody);
  EXPECT_EQ(read1.metadata.retry_count, 1);
  EXPECT_EQ(read1.metadata.original_id, "5-0");

  const std::string retry2 = TakeOk(WriteRetryDataValue(read1.entry, "9-3", 2));
  EXPECT_EQ(retry2,
            Envelope(JsonHeaders(), R"({"a":1,"_retry_count":"2","_original_message_id":"5-0"})"));
  RetryEntry read2 = TakeOk(ReadRetryEntry(retry2));
  EXPECT_EQ(read2.metadata.retry_count, 2);
  EXPECT_EQ(read2.metadata.original_id, "5-0");
}

TEST(RetryMetadataTest, HeaderCarrierRoundTripsAndTheFirstOriginalIdWins) {
  const std::string first = Envelope({{"correlation_id", "c"}}, "plain text");
  const std::string retry1 = TakeOk(WriteRetryDataValue(Decode(first), "5-0", 1));
  const std::string retry2 = TakeOk(WriteRetryDataValue(Decode(retry1), "9-3", 2));
  EXPECT_EQ(retry2, Envelope({{"correlation_id", "c"},
                              {"x-redrive-attempt", "2"},
                              {"x-redrive-original-id", "5-0"}},
                             "plain text"));
  RetryEntry read = TakeOk(ReadRetryEntry(retry2));
  EXPECT_EQ(read.metadata.carrier, MetadataCarrier::kHeaders);
  EXPECT_EQ(read.metadata.retry_count, 2);
  EXPECT_EQ(read.metadata.original_id, "5-0");
}

TEST(RetryMetadataTest, MetadataHeadersAreReplacedInPlaceWithoutDuplicates) {
  DecodedEntry entry = Entry({{"a", "1"},
                              {"x-redrive-attempt", "3"},
                              {"b", "2"},
                              {"x-redrive-original-id", "7-1"},
                              {"x-redrive-attempt", "3"},
                              {"x-redrive-original-id", "7-1"},
                              {"c", "3"}},
                             "bytes");
  EXPECT_EQ(TakeOk(ReadRetryMetadata(entry)).retry_count, 3);
  EXPECT_EQ(TakeOk(WriteRetryDataValue(entry, "8-0", 4)),
            Envelope({{"a", "1"},
                      {"x-redrive-attempt", "4"},
                      {"b", "2"},
                      {"x-redrive-original-id", "7-1"},
                      {"c", "3"}},
                     "bytes"));
}

TEST(RetryMetadataTest, BinaryBodyIsKeptByteForByte) {
  std::string body;
  for (int i = 0; i < 256; ++i) body.push_back(static_cast<char>(255 - i));
  const std::string written =
      TakeOk(WriteRetryDataValue(Entry({{"correlation_id", "c"}}, body), "1-1", 1));
  EXPECT_EQ(written, Envelope({{"correlation_id", "c"},
                               {"x-redrive-attempt", "1"},
                               {"x-redrive-original-id", "1-1"}},
                              body));
  EXPECT_EQ(BodyOf(written), body);
}

TEST(RetryMetadataTest, RawNonJsonValueIsWrappedWithOnlyTheMetadataHeaders) {
  const std::string raw("\x00hello\xff", 7);  // no magic: FastStream reads it raw
  DecodedEntry entry = Decode(raw);
  ASSERT_EQ(entry.format, EntryFormat::kRaw);
  const std::string written = TakeOk(WriteRetryDataValue(entry, "2-0", 1));
  EXPECT_EQ(written, Envelope({{"x-redrive-attempt", "1"}, {"x-redrive-original-id", "2-0"}}, raw));
}

TEST(RetryMetadataTest, LegacyJsonEnvelopeIsRewrittenAsBinaryWithItsHeaders) {
  DecodedEntry entry = Decode(R"({"data":"{\"k\":\"v\"}","headers":{"correlation_id":"c"}})");
  ASSERT_EQ(entry.format, EntryFormat::kLegacyJson);
  EXPECT_EQ(TakeOk(WriteRetryDataValue(entry, "3-0", 1)),
            Envelope({{"correlation_id", "c"}},
                     R"({"k":"v","_retry_count":"1","_original_message_id":"3-0"})"));
}

TEST(RetryMetadataTest, JsonBodyIgnoresAndKeepsRedriveHeaders) {
  // For JSON object bodies the headers are not metadata: not read, not changed.
  DecodedEntry entry = Entry({{"x-redrive-attempt", "junk"}}, R"({"_retry_count":"4"})");
  RetryMetadata md = TakeOk(ReadRetryMetadata(entry));
  EXPECT_EQ(md.carrier, MetadataCarrier::kJsonBody);
  EXPECT_EQ(md.retry_count, 4);
  EXPECT_EQ(TakeOk(WriteRetryDataValue(entry, "1-0", 5)),
            Envelope({{"x-redrive-attempt", "junk"}},
                     R"({"_retry_count":"5","_original_message_id":"1-0"})"));
}

TEST(RetryMetadataTest, RetryCountIsUpdatedInPlaceAndNewKeysAppended) {
  DecodedEntry entry = Entry({}, R"({"_retry_count":"1","z":[1,{"y":null}],"a":true})");
  EXPECT_EQ(BodyOf(TakeOk(WriteRetryDataValue(entry, "1-0", 2))),
            R"({"_retry_count":"2","z":[1,{"y":null}],"a":true,"_original_message_id":"1-0"})");
}

TEST(RetryMetadataTest, RewriteReserialisesLikePython) {
  // Python: {"b":"\ud83d\ude00\u0007","a":100000.0,"_retry_count":"1",...}
  DecodedEntry entry = Entry({}, "{ \"b\" : \"\xf0\x9f\x98\x80\\u0007\", \"a\" : 1e5 }");
  EXPECT_EQ(BodyOf(TakeOk(WriteRetryDataValue(entry, "1-0", 1))),
            R"({"b":"\ud83d\ude00\u0007","a":100000.0,"_retry_count":"1",)"
            R"("_original_message_id":"1-0"})");
}

TEST(RetryMetadataTest, JsonTooDeepToReadIsALegalPayloadWithHeaderMetadata) {
  const std::string deep =
      absl::StrCat("{\"a\":", std::string(100000, '['), std::string(100000, ']'), "}");
  RetryMetadata md = TakeOk(ReadRetryMetadata(Entry({}, deep)));
  EXPECT_EQ(md.carrier, MetadataCarrier::kHeaders);
}

// ---------------------------------------------------------------------------
// Poison (R-D6) and what is not poison

TEST(RetryMetadataPoisonTest, UsableRetryCounts) {
  const std::vector<std::pair<std::string, int64_t>> cases = {{R"("0")", 0},
                                                              {R"("7")", 7},
                                                              {R"("007")", 7},
                                                              {"5", 5},
                                                              {R"("-0")", 0},
                                                              {"-0", 0},
                                                              {R"("1000000000")", kMaxRetryCount},
                                                              {R"("\u0033")", 3}};
  for (const auto& [json, want] : cases) {
    const absl::StatusOr<RetryMetadata> md =
        ReadRetryMetadata(Entry({}, absl::StrCat("{\"_retry_count\":", json, "}")));
    ASSERT_THAT(md, IsOk()) << json;
    EXPECT_EQ(md->retry_count, want) << json;
  }
}

TEST(RetryMetadataPoisonTest, UnusableRetryCountsArePoisonWithTheReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("abc")", R"(_retry_count "abc" is not a decimal integer)"},
      {R"("")", R"(_retry_count "" is not a decimal integer)"},
      {R"(" 1")", R"(_retry_count " 1" is not a decimal integer)"},
      {R"("+1")", R"(_retry_count "+1" is not a decimal integer)"},
      {R"("1.5")", R"(_retry_count "1.5" is not a decimal integer)"},
      {"1.0", "_retry_count 1.0 is not a decimal integer"},
      {"true", "_retry_count true is not a decimal integer"},
      {"null", "_retry_count null is not a decimal integer"},
      {"[1]", "_retry_count [1] is not a decimal integer"},
      {R"("-1")", R"(_retry_count "-1" is negative)"},
      {"-3", "_retry_count -3 is negative"},
      {R"("1000000001")", R"(_retry_count "1000000001" is absurd (> 1000000000))"},
      {"99999999999999999999999", "_retry_count 99999999999999999999999 is absurd (> 1000000000)"},
  };
  for (const auto& [json, reason] : cases) {
    EXPECT_THAT(ReadRetryMetadata(Entry({}, absl::StrCat("{\"_retry_count\":", json, "}"))),
                StatusIs(absl::StatusCode::kDataLoss, absl::StrCat("poison: ", reason)))
        << json;
  }
}

TEST(RetryMetadataPoisonTest, UnusableOriginalIdIsPoison) {
  for (const std::string& json :
       {std::string("123"), std::string(R"("abc")"), std::string(R"("")"), std::string("null")}) {
    EXPECT_THAT(
        ReadRetryMetadata(Entry({}, absl::StrCat("{\"_original_message_id\":", json, "}"))),
        StatusIs(absl::StatusCode::kDataLoss,
                 absl::StrCat("poison: _original_message_id ", json, " is not a stream entry id")))
        << json;
  }
  EXPECT_EQ(TakeOk(ReadRetryMetadata(Entry({}, R"({"_original_message_id":"17"})"))).original_id,
            "17");
}

TEST(RetryMetadataPoisonTest, UnparsableRedriveHeadersArePoison) {
  const std::vector<std::pair<HeaderList, std::string>> cases = {
      {{{"x-redrive-attempt", "abc"}},
       R"(header x-redrive-attempt "abc" is not a decimal integer)"},
      {{{"x-redrive-attempt", ""}}, R"(header x-redrive-attempt "" is not a decimal integer)"},
      {{{"x-redrive-attempt", "-1"}}, R"(header x-redrive-attempt "-1" is not a decimal integer)"},
      {{{"x-redrive-attempt", " 1"}}, R"(header x-redrive-attempt " 1" is not a decimal integer)"},
      {{{"x-redrive-attempt", "1000000001"}},
       R"(header x-redrive-attempt "1000000001" is absurd (> 1000000000))"},
      {{{"x-redrive-attempt", "1"}, {"x-redrive-attempt", "2"}},
       "conflicting x-redrive-attempt headers"},
      {{{"x-redrive-original-id", "zz"}},
       R"(header x-redrive-original-id "zz" is not a stream entry id)"},
      {{{"x-redrive-original-id", "1-0"}, {"x-redrive-original-id", "2-0"}},
       "conflicting x-redrive-original-id headers"},
  };
  for (const auto& [headers, reason] : cases) {
    EXPECT_THAT(ReadRetryMetadata(Entry(headers, "not json")),
                StatusIs(absl::StatusCode::kDataLoss, absl::StrCat("poison: ", reason)))
        << reason;
    EXPECT_THAT(WriteRetryDataValue(Entry(headers, "not json"), "1-0", 1),
                StatusIs(absl::StatusCode::kDataLoss))
        << reason;
  }
}

TEST(RetryMetadataPoisonTest, CorruptEnvelopeIsPoison) {
  std::string value = Envelope(JsonHeaders(), R"({"a":1})");
  value[17] = static_cast<char>(value[17] + 1);  // data_start one past the header block
  const absl::StatusOr<RetryEntry> read = ReadRetryEntry(value);
  EXPECT_THAT(read, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("poison: corrupt envelope: ")));
  // Wrong version: FastStream cannot read it either.
  std::string v2 = Envelope(JsonHeaders(), R"({"a":1})");
  v2[9] = 2;
  EXPECT_THAT(ReadRetryEntry(v2),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("poison: corrupt envelope: ")));
}

TEST(RetryMetadataPoisonTest, BodiesThatAreNotJsonObjectsAreLegalPayloads) {
  for (const std::string& body :
       {std::string(""), std::string("[1,2]"), std::string("\"text\""), std::string("42"),
        std::string("null"), std::string("{\"a\":1,}"), std::string("{\"_retry_count\":"),
        std::string("\xff\xfe{\x00}\x00", 6)}) {
    const absl::StatusOr<RetryMetadata> md = ReadRetryMetadata(Entry({}, body));
    ASSERT_THAT(md, IsOk()) << body;
    EXPECT_EQ(md->carrier, MetadataCarrier::kHeaders) << body;
    EXPECT_EQ(md->retry_count, 0) << body;
    EXPECT_EQ(BodyOf(TakeOk(WriteRetryDataValue(Entry({}, body), "1-0", 1))), body);
  }
}

TEST(RetryMetadataTest, CallerMistakesAreInvalidArgument) {
  const DecodedEntry entry = Entry({}, "{}");
  EXPECT_THAT(WriteRetryDataValue(entry, "not-an-id", 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("entry_id")));
  EXPECT_THAT(WriteRetryDataValue(entry, "1-0", -1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("new_retry_count")));
  EXPECT_THAT(WriteRetryDataValue(entry, "1-0", kMaxRetryCount + 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("new_retry_count")));
  EXPECT_THAT(WriteRetryDataValue(entry, "1-0", kMaxRetryCount), IsOk());
  DecodedEntry fields;
  fields.format = EntryFormat::kFields;
  fields.fields = {{"k", "v"}};
  EXPECT_THAT(ReadRetryMetadata(fields), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WriteRetryDataValue(fields, "1-0", 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(IsPoison(WriteRetryDataValue(fields, "1-0", 1).status()));
}

// ---------------------------------------------------------------------------
// Dead letters (expected bodies produced by later EggAI's _stamp_dead_letter
// and _poison_body logic in Python, with _dlq_at fixed).

TEST(DeadLetterTest, TimeIsUtcMillisecondsAsEggAIWritesIt) {
  EXPECT_EQ(FormatDeadLetterTime(absl::FromUnixMillis(1700000000123)),
            "2023-11-14T22:13:20.123+00:00");
  EXPECT_EQ(FormatDeadLetterTime(absl::FromUnixMicros(1700000000123999)),
            "2023-11-14T22:13:20.123+00:00");  // truncated, as Python's isoformat
  EXPECT_EQ(FormatDeadLetterTime(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000+00:00");
}

TEST(DeadLetterTest, JsonBodyGetsEggAiDeadLetterFields) {
  const std::string r2_out = HexOf(Vector("r2_second_reclaim_retry_stream").at("output_hex"));
  const std::string dlq =
      TakeOk(WriteDeadLetterDataValue(Decode(r2_out), "1700000000900-0", Info("max_retries", 5)));
  EXPECT_EQ(dlq,
            Envelope(JsonHeaders(),
                     R"({"id":"1","type":"order","data":{"n":1},"_retry_count":"0",)"
                     R"("_original_message_id":"1700000000000-0","_dlq_source":"orders",)"
                     R"("_dlq_handler":"order-service-handle_order-1",)"
                     R"("_dlq_at":"2023-11-14T22:13:20.123+00:00","_dlq_reason":"max_retries",)"
                     R"("_dlq_retries":"5"})"));

  // Dead-lettered again (e.g. by a DLQ consumer): origin keys are kept, the
  // reason and retries are the latest hop's.
  DeadLetterInfo second = Info("terminated", 0);
  second.source = "other";
  second.handler = "h2";
  second.at = absl::FromUnixSeconds(1704067200);
  EXPECT_EQ(BodyOf(TakeOk(WriteDeadLetterDataValue(Decode(dlq), "1-0", second))),
            R"({"id":"1","type":"order","data":{"n":1},"_retry_count":"0",)"
            R"("_original_message_id":"1700000000000-0","_dlq_source":"orders",)"
            R"("_dlq_handler":"order-service-handle_order-1",)"
            R"("_dlq_at":"2023-11-14T22:13:20.123+00:00","_dlq_reason":"terminated",)"
            R"("_dlq_retries":"0"})");

  // A DLQ entry reads back as a fresh budget.
  RetryEntry read = TakeOk(ReadRetryEntry(dlq));
  EXPECT_EQ(read.metadata.retry_count, 0);
  EXPECT_EQ(read.metadata.original_id, "1700000000000-0");
}

TEST(DeadLetterTest, NewKeysAreAppendedInEggAiOrderAndEscapedLikePython) {
  DeadLetterInfo info = Info("max_retries", 2);
  info.source = "caf\xc3\xa9";
  EXPECT_EQ(BodyOf(TakeOk(WriteDeadLetterDataValue(Entry({}, R"({"x":1})"), "4-2", info))),
            R"({"x":1,"_retry_count":"0","_original_message_id":"4-2","_dlq_source":"caf\u00e9",)"
            R"("_dlq_handler":"order-service-handle_order-1",)"
            R"("_dlq_at":"2023-11-14T22:13:20.123+00:00","_dlq_reason":"max_retries",)"
            R"("_dlq_retries":"2"})");
}

TEST(DeadLetterTest, RefusesBodiesThatCannotCarryTheFields) {
  EXPECT_THAT(WriteDeadLetterDataValue(Entry({}, "[1,2]"), "1-0", Info("max_retries", 1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(
      WriteDeadLetterDataValue(Entry({}, R"({"_retry_count":"x"})"), "1-0", Info("max_retries", 1)),
      StatusIs(absl::StatusCode::kDataLoss));
  DeadLetterInfo bad = Info("max_retries", 1);
  bad.handler = "\xff";
  EXPECT_THAT(WriteDeadLetterDataValue(Entry({}, "{}"), "1-0", bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WriteDeadLetterDataValue(Entry({}, "{}"), "1-0", Info("max_retries", -1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DeadLetterTest, PoisonWrapsTheRawBytes) {
  const std::string raw = absl::HexStringToBytes("8942494e0d0a1a0a000100000012000003e70000");
  ASSERT_TRUE(IsPoison(ReadRetryEntry(raw).status()));
  const std::string body =
      R"({"_original_message_id":"1700000000000-0","_dlq_raw_b64":"iUJJTg0KGgoAAQAAABIAAAPnAAA=",)"
      R"("_dlq_source":"orders","_dlq_handler":"order-service-handle_order-1",)"
      R"("_dlq_at":"2023-11-14T22:13:20.123+00:00","_dlq_reason":"poison","_dlq_retries":"0",)"
      R"("_retry_count":"0"})";
  EXPECT_EQ(TakeOk(PoisonDeadLetterBody(raw, kMainId, Info("poison", 0))), body);
  // The envelope did not decode: no headers to keep.
  const std::string dlq = TakeOk(WritePoisonDeadLetterDataValue(raw, kMainId, Info("poison", 0)));
  EXPECT_EQ(dlq, Envelope({}, body));
  RetryEntry read = TakeOk(ReadRetryEntry(dlq));
  EXPECT_EQ(read.metadata.carrier, MetadataCarrier::kJsonBody);
  EXPECT_EQ(read.metadata.retry_count, 0);
  EXPECT_EQ(read.metadata.original_id, kMainId);
}

TEST(DeadLetterTest, PoisonMetadataKeepsTheEnvelopeHeaders) {
  const std::string raw = HexOf(Vector("x7_non_numeric_retry_count").at("input_hex"));
  const std::string dlq = TakeOk(WritePoisonDeadLetterDataValue(raw, kMainId, Info("poison", 0)));
  std::string b64;
  absl::Base64Escape(raw, &b64);
  EXPECT_EQ(dlq,
            Envelope(JsonHeaders(),
                     absl::StrCat(R"({"_original_message_id":"1700000000000-0",)",
                                  R"("_dlq_raw_b64":")", b64, R"(",)", R"("_dlq_source":"orders",)",
                                  R"("_dlq_handler":"order-service-handle_order-1",)",
                                  R"("_dlq_at":"2023-11-14T22:13:20.123+00:00",)",
                                  R"("_dlq_reason":"poison","_dlq_retries":"0",)",
                                  R"("_retry_count":"0"})")));
  std::string back;
  ASSERT_TRUE(absl::Base64Unescape(b64, &back));
  EXPECT_EQ(back, raw);
}

}  // namespace
}  // namespace redrive
