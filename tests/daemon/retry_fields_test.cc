#include "daemon/retry_fields.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/envelope.h"
#include "daemon/retry_metadata.h"
#include "daemon/stream_entry.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TakeOk;
using ::testing::HasSubstr;

constexpr int64_t kT0 = 1700000000000;  // 2023-11-14T22:13:20.000Z
constexpr absl::string_view kDlqAt = "2023-11-14T22:13:20.000+00:00";

// ---------------------------------------------------------------------------
// Helpers

StreamEntry Entry(std::string id, FieldList fields) {
  StreamEntry e;
  e.id = std::move(id);
  e.fields = std::move(fields);
  return e;
}

// A stream entry whose only field is `__data__` = a byte-length envelope.
StreamEntry DataEntry(std::string id, const HeaderList& headers, const std::string& body) {
  return Entry(std::move(id), {{"__data__", SpecEnvelope(headers, body)}});
}

HeaderList JsonHeaders() {
  return {{"correlation_id", "c1"}, {"content-type", "application/json"}};
}

FailureRecord Failure(uint32_t attempt, int64_t at_ms, std::string outcome = "nack",
                      std::string error = "boom", std::string error_code = "E_HANDLER",
                      std::string consumer = "billing-i1") {
  FailureRecord f;
  f.attempt = attempt;
  f.at_ms = at_ms;
  f.outcome = std::move(outcome);
  f.error = std::move(error);
  f.error_code = std::move(error_code);
  f.consumer = std::move(consumer);
  return f;
}

// The history record JSON text, written out by hand (keys sorted, compact;
// only for strings that need no escaping).
std::string Rec(uint32_t attempt, int64_t at_ms, absl::string_view outcome = "nack",
                absl::string_view error = "boom", absl::string_view code = "E_HANDLER",
                absl::string_view consumer = "billing-i1") {
  return absl::StrCat("{\"at_ms\":", at_ms, ",\"attempt\":", attempt, ",\"consumer\":\"", consumer,
                      "\",\"error\":\"", error, "\",\"error_code\":\"", code, "\",\"outcome\":\"",
                      outcome, "\"}");
}

DeadLetterContext Context(std::string reason, std::string source_stream = "orders") {
  DeadLetterContext c;
  c.reason = std::move(reason);
  c.channel = "orders";
  c.handler_id = "billing";
  c.source_stream = std::move(source_stream);
  c.at = absl::FromUnixMillis(kT0);
  return c;
}

// A value with the BinaryMessageFormatV1 magic whose data_start runs past
// the end of the value (magic right, lengths wrong).
std::string CorruptEnvelope() {
  std::string v = SpecEnvelope({{"correlation_id", "c1"}}, R"({"a":1})");
  // data_start (offset 14..17) := 0x00000200, far past the end.
  v[14] = 0;
  v[15] = 0;
  v[16] = 2;
  v[17] = 0;
  return v;
}

// A value with the magic whose header count promises more than there is.
std::string TruncatedHeadersEnvelope() {
  std::string v = SpecEnvelope({{"k", "v"}}, "body");
  v[18] = 0;
  v[19] = 5;  // 5 headers, only one present
  return v;
}

// ---------------------------------------------------------------------------
// ReadRetryState

TEST(ReadRetryStateTest, MainStreamEntryWithoutMetadata) {
  const StreamEntry entry = DataEntry("5-0", JsonHeaders(), R"({"order":7})");
  const RetryState s = TakeOk(ReadRetryState(entry));
  EXPECT_EQ(s.retry_count, 0);
  EXPECT_EQ(s.original_id, "");
  EXPECT_EQ(s.last_error, "");
  EXPECT_EQ(s.last_error_code, "");
  EXPECT_EQ(s.first_failure_ms, 0);
  EXPECT_EQ(s.history, "");
  EXPECT_TRUE(s.has_data);
  EXPECT_EQ(s.decoded.format, EntryFormat::kBinaryV1);
  EXPECT_EQ(s.decoded.headers, JsonHeaders());
  EXPECT_EQ(s.decoded.body, R"({"order":7})");
  EXPECT_TRUE(s.decoded.fields.empty());
}

TEST(ReadRetryStateTest, JsonObjectBodyCarriesEggAiKeys) {
  const StreamEntry entry = DataEntry(
      "9-0", JsonHeaders(), R"({"order":7,"_retry_count":"2","_original_message_id":"5-0"})");
  const RetryState s = TakeOk(ReadRetryState(entry));
  EXPECT_EQ(s.retry_count, 2);
  EXPECT_EQ(s.original_id, "5-0");
  EXPECT_TRUE(s.has_data);
  EXPECT_EQ(s.decoded.body, R"({"order":7,"_retry_count":"2","_original_message_id":"5-0"})");
}

TEST(ReadRetryStateTest, JsonObjectBodyIgnoresRedriveHeaders) {
  // For a JSON object body the headers are not metadata.
  const StreamEntry entry =
      DataEntry("9-0", {{"x-redrive-attempt", "7"}, {"x-redrive-original-id", "1-0"}},
                R"({"_retry_count":"2","_original_message_id":"5-0"})");
  const RetryState s = TakeOk(ReadRetryState(entry));
  EXPECT_EQ(s.retry_count, 2);
  EXPECT_EQ(s.original_id, "5-0");
}

TEST(ReadRetryStateTest, NonObjectBodiesUseEnvelopeHeaders) {
  for (const std::string& body :
       {std::string("[1,2]"), std::string("plain text"), std::string("\xff\xfe\x00\x01", 4),
        std::string("\"str\""), std::string("")}) {
    SCOPED_TRACE(absl::CHexEscape(body));
    const HeaderList headers = {
        {"correlation_id", "c1"}, {"x-redrive-attempt", "3"}, {"x-redrive-original-id", "5-0"}};
    const StreamEntry entry = DataEntry("9-0", headers, body);
    const RetryState s = TakeOk(ReadRetryState(entry));
    EXPECT_EQ(s.retry_count, 3);
    EXPECT_EQ(s.original_id, "5-0");
    EXPECT_TRUE(s.has_data);
    EXPECT_EQ(s.decoded.format, EntryFormat::kBinaryV1);
    EXPECT_EQ(s.decoded.headers, headers);
    EXPECT_EQ(s.decoded.body, body);
  }
}

TEST(ReadRetryStateTest, NonObjectBodyWithoutHeadersHasNoMetadata) {
  const RetryState s = TakeOk(ReadRetryState(DataEntry("5-0", {}, "[1,2]")));
  EXPECT_EQ(s.retry_count, 0);
  EXPECT_EQ(s.original_id, "");
}

TEST(ReadRetryStateTest, PlainFieldMapUsesRedriveStreamFields) {
  const StreamEntry entry =
      Entry("9-0",
            {{"a", "1"}, {"x-redrive-attempt", "2"}, {"x-redrive-original-id", "5-0"}, {"b", "2"}});
  const RetryState s = TakeOk(ReadRetryState(entry));
  EXPECT_EQ(s.retry_count, 2);
  EXPECT_EQ(s.original_id, "5-0");
  EXPECT_FALSE(s.has_data);
  EXPECT_EQ(s.decoded.format, EntryFormat::kFields);
  // The x-redrive-* fields are not the message's fields.
  EXPECT_EQ(s.decoded.fields, (FieldList{{"a", "1"}, {"b", "2"}}));
}

TEST(ReadRetryStateTest, PlainFieldMapWithoutMetadata) {
  const RetryState s = TakeOk(ReadRetryState(Entry("5-0", {{"a", "1"}})));
  EXPECT_EQ(s.retry_count, 0);
  EXPECT_EQ(s.original_id, "");
  EXPECT_FALSE(s.has_data);
  EXPECT_EQ(s.decoded.format, EntryFormat::kFields);
  EXPECT_EQ(s.decoded.fields, (FieldList{{"a", "1"}}));
}

TEST(ReadRetryStateTest, ReadsTheFailureFields) {
  const std::string history = absl::StrCat("[", Rec(1, kT0 - 1000), "]");
  StreamEntry entry =
      DataEntry("9-0", JsonHeaders(), R"({"_retry_count":"1","_original_message_id":"5-0"})");
  entry.fields.emplace_back("x-redrive-last-error", "boom");
  entry.fields.emplace_back("x-redrive-last-error-code", "E_HANDLER");
  entry.fields.emplace_back("x-redrive-first-failure-ms", absl::StrCat(kT0 - 1000));
  entry.fields.emplace_back("x-redrive-history", history);
  const RetryState s = TakeOk(ReadRetryState(entry));
  EXPECT_EQ(s.retry_count, 1);
  EXPECT_EQ(s.original_id, "5-0");
  EXPECT_EQ(s.last_error, "boom");
  EXPECT_EQ(s.last_error_code, "E_HANDLER");
  EXPECT_EQ(s.first_failure_ms, kT0 - 1000);
  EXPECT_EQ(s.history, history);
}

TEST(ReadRetryStateTest, ReadsTheFailureFieldsOfAFieldMap) {
  const StreamEntry entry = Entry("9-0", {{"a", "1"},
                                          {"x-redrive-attempt", "1"},
                                          {"x-redrive-original-id", "5-0"},
                                          {"x-redrive-last-error", "boom"},
                                          {"x-redrive-last-error-code", "E_HANDLER"},
                                          {"x-redrive-first-failure-ms", "1699999999000"},
                                          {"x-redrive-history", "[]"}});
  const RetryState s = TakeOk(ReadRetryState(entry));
  EXPECT_EQ(s.retry_count, 1);
  EXPECT_EQ(s.original_id, "5-0");
  EXPECT_EQ(s.last_error, "boom");
  EXPECT_EQ(s.last_error_code, "E_HANDLER");
  EXPECT_EQ(s.first_failure_ms, 1699999999000);
  EXPECT_EQ(s.history, "[]");
  EXPECT_EQ(s.decoded.fields, (FieldList{{"a", "1"}}));
}

TEST(ReadRetryStateTest, UnreadableFirstFailureIsNoneNotPoison) {
  for (const char* bad : {"abc", "-5", "", "1.5"}) {
    SCOPED_TRACE(bad);
    StreamEntry entry = DataEntry("5-0", {}, R"({"a":1})");
    entry.fields.emplace_back("x-redrive-first-failure-ms", bad);
    const absl::StatusOr<RetryState> s = ReadRetryState(entry);
    ASSERT_THAT(s, IsOk());
    EXPECT_EQ(s->first_failure_ms, 0);
  }
}

TEST(ReadRetryStateTest, CorruptEnvelopeIsPoison) {
  for (const std::string& value : {CorruptEnvelope(), TruncatedHeadersEnvelope()}) {
    const absl::StatusOr<RetryState> s = ReadRetryState(Entry("5-0", {{"__data__", value}}));
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("corrupt envelope")));
    EXPECT_TRUE(IsPoison(s.status()));
  }
}

TEST(ReadRetryStateTest, UnusableJsonRetryCountIsPoison) {
  for (const char* body : {R"({"a":1,"_retry_count":"abc"})", R"({"a":1,"_retry_count":1.5})",
                           R"({"_retry_count":"-1"})", R"({"_retry_count":true})",
                           R"({"_retry_count":"1000000001"})"}) {
    SCOPED_TRACE(body);
    EXPECT_THAT(ReadRetryState(DataEntry("5-0", JsonHeaders(), body)),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("_retry_count")));
  }
}

TEST(ReadRetryStateTest, EscapedEggAiKeysAreStillRead) {
  // json.loads reads "\u005fretry_count" as "_retry_count": no shortcut may
  // skip it.
  const RetryState ok = TakeOk(ReadRetryState(DataEntry(
      "5-0", {}, R"({"a":1,"\u005fretry_count":"3","_orig\u0069nal_message_id":"1-0"})")));
  EXPECT_EQ(ok.retry_count, 3);
  EXPECT_EQ(ok.original_id, "1-0");
  absl::StatusOr<RetryState> bad =
      ReadRetryState(DataEntry("6-0", {}, R"({"\u005fretry_count":"abc"})"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
}

TEST(ReadRetryStateTest, UnusableJsonOriginalIdIsPoison) {
  EXPECT_THAT(
      ReadRetryState(DataEntry("5-0", {}, R"({"_retry_count":"1","_original_message_id":"x"})")),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("_original_message_id")));
}

TEST(ReadRetryStateTest, UnusableAttemptHeaderIsPoison) {
  EXPECT_THAT(ReadRetryState(DataEntry("5-0", {{"x-redrive-attempt", "x"}}, "[1,2]")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("x-redrive-attempt")));
  EXPECT_THAT(ReadRetryState(DataEntry("5-0", {{"x-redrive-original-id", "nope"}}, "text")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("x-redrive-original-id")));
}

TEST(ReadRetryStateTest, UnusableAttemptFieldIsPoison) {
  for (const char* bad : {"x", "-1", "99999999999999999999", "1000000001", "", " 1", "+1", "1.0"}) {
    SCOPED_TRACE(bad);
    const StreamEntry entry = Entry("5-0", {{"a", "1"}, {"x-redrive-attempt", bad}});
    EXPECT_THAT(ReadRetryState(entry),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("x-redrive-attempt")));
  }
}

TEST(ReadRetryStateTest, AttemptFieldAtTheLimitIsNotPoison) {
  const RetryState s =
      TakeOk(ReadRetryState(Entry("5-0", {{"a", "1"}, {"x-redrive-attempt", "1000000000"}})));
  EXPECT_EQ(s.retry_count, kMaxRetryCount);
}

TEST(ReadRetryStateTest, UnusableOriginalIdFieldIsPoison) {
  for (const char* bad : {"x", "", "5-", "-0", "5-0-1", "5-0 "}) {
    SCOPED_TRACE(bad);
    const StreamEntry entry = Entry("5-0", {{"a", "1"}, {"x-redrive-original-id", bad}});
    EXPECT_THAT(ReadRetryState(entry),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("x-redrive-original-id")));
  }
}

TEST(ReadRetryStateTest, JsonArrayAndNonJsonBodiesAreNotPoison) {
  for (const std::string& value :
       {std::string("[1,2]"), std::string("not json at all"), std::string("{\"a\":"),
        std::string("\xc3\x28", 2), SpecEnvelope({}, "[1,2]"), SpecEnvelope({}, "{broken")}) {
    SCOPED_TRACE(absl::CHexEscape(value));
    const absl::StatusOr<RetryState> s = ReadRetryState(Entry("5-0", {{"__data__", value}}));
    ASSERT_THAT(s, IsOk());
    EXPECT_EQ(s->retry_count, 0);
    EXPECT_EQ(s->original_id, "");
    EXPECT_TRUE(s->has_data);
  }
}

TEST(ReadRetryStateTest, EmptyDataIsAFieldMap) {
  const StreamEntry entry = Entry(
      "9-0",
      {{"__data__", ""}, {"a", "1"}, {"x-redrive-attempt", "4"}, {"x-redrive-original-id", "5-0"}});
  const RetryState s = TakeOk(ReadRetryState(entry));
  EXPECT_FALSE(s.has_data);
  EXPECT_EQ(s.decoded.format, EntryFormat::kFields);
  EXPECT_EQ(s.decoded.fields, (FieldList{{"__data__", ""}, {"a", "1"}}));
  EXPECT_EQ(s.retry_count, 4);
  EXPECT_EQ(s.original_id, "5-0");
}

// ---------------------------------------------------------------------------
// WithoutRedriveFields

TEST(WithoutRedriveFieldsTest, DropsExactlyTheRedriveFieldsInOrder) {
  StreamEntry entry = Entry("9-0", {{"a", "1"},
                                    {"x-redrive-attempt", "2"},
                                    {"__data__", "d"},
                                    {"x-redrive-history", "[]"},
                                    {"x-redrive", "no dash"},
                                    {"X-Redrive-Upper", "u"},
                                    {"x-redrive-", "empty suffix"},
                                    {"b", "2"},
                                    {"a", "dup"}});
  entry.deleted = false;
  const StreamEntry out = WithoutRedriveFields(entry);
  EXPECT_EQ(out.id, "9-0");
  EXPECT_FALSE(out.deleted);
  EXPECT_EQ(out.fields, (FieldList{{"a", "1"},
                                   {"__data__", "d"},
                                   {"x-redrive", "no dash"},
                                   {"X-Redrive-Upper", "u"},
                                   {"b", "2"},
                                   {"a", "dup"}}));
}

TEST(WithoutRedriveFieldsTest, KeepsDeletedFlag) {
  StreamEntry entry;
  entry.id = "3-1";
  entry.deleted = true;
  const StreamEntry out = WithoutRedriveFields(entry);
  EXPECT_EQ(out.id, "3-1");
  EXPECT_TRUE(out.deleted);
  EXPECT_TRUE(out.fields.empty());
}

// ---------------------------------------------------------------------------
// RetryEntryFields

TEST(RetryEntryFieldsTest, FirstRetryOfAJsonObjectBody) {
  const StreamEntry entry = DataEntry("5-0", JsonHeaders(), R"({"order": 7, "item": "book"})");
  const RetryState state = TakeOk(ReadRetryState(entry));
  const FieldList out = TakeOk(RetryEntryFields(entry, state, Failure(1, kT0)));
  EXPECT_EQ(
      out,
      (FieldList{
          {"__data__",
           SpecEnvelope(
               JsonHeaders(),
               R"({"order":7,"item":"book","_retry_count":"1","_original_message_id":"5-0"})")},
          {"x-redrive-last-error", "boom"},
          {"x-redrive-last-error-code", "E_HANDLER"},
          {"x-redrive-first-failure-ms", "1700000000000"},
          {"x-redrive-history",
           "[{\"at_ms\":1700000000000,\"attempt\":1,\"consumer\":\"billing-i1\",\"error\":"
           "\"boom\",\"error_code\":\"E_HANDLER\",\"outcome\":\"nack\"}]"}}));
}

TEST(RetryEntryFieldsTest, RetryOfARetry) {
  const std::string old_history =
      absl::StrCat("[", Rec(1, kT0 - 2000, "nack", "first"), ",",
                   Rec(2, kT0 - 1000, "lease_expired", "second", "", "billing-i2"), "]");
  StreamEntry entry = DataEntry("9-0", JsonHeaders(),
                                R"({"order":7,"_retry_count":"2","_original_message_id":"5-0"})");
  entry.fields.emplace_back("x-redrive-last-error", "second");
  entry.fields.emplace_back("x-redrive-last-error-code", "");
  entry.fields.emplace_back("x-redrive-first-failure-ms", absl::StrCat(kT0 - 2000));
  entry.fields.emplace_back("x-redrive-history", old_history);
  const RetryState state = TakeOk(ReadRetryState(entry));
  ASSERT_EQ(state.retry_count, 2);

  const FieldList out =
      TakeOk(RetryEntryFields(entry, state, Failure(3, kT0, "nack", "third", "E3")));
  EXPECT_EQ(
      out,
      (FieldList{{"__data__",
                  SpecEnvelope(JsonHeaders(),
                               R"({"order":7,"_retry_count":"3","_original_message_id":"5-0"})")},
                 {"x-redrive-last-error", "third"},
                 {"x-redrive-last-error-code", "E3"},
                 {"x-redrive-first-failure-ms", "1699999998000"},
                 {"x-redrive-history",
                  absl::StrCat("[", Rec(1, kT0 - 2000, "nack", "first"), ",",
                               Rec(2, kT0 - 1000, "lease_expired", "second", "", "billing-i2"), ",",
                               Rec(3, kT0, "nack", "third", "E3"), "]")}}));
}

TEST(RetryEntryFieldsTest, ExtraFieldsOfOtherProducersTravelAlong) {
  StreamEntry entry = DataEntry("5-0", {}, R"({"order":7})");
  entry.fields.emplace_back("tenant", "acme");
  entry.fields.emplace_back("x-redrive-last-error", "old");  // replaced, not copied
  const RetryState state = TakeOk(ReadRetryState(entry));
  const FieldList out = TakeOk(RetryEntryFields(entry, state, Failure(1, kT0)));
  ASSERT_GE(out.size(), 3u);
  EXPECT_EQ(out[0].first, "__data__");
  EXPECT_EQ(out[1], (std::pair<std::string, std::string>("tenant", "acme")));
  EXPECT_EQ(out[2], (std::pair<std::string, std::string>("x-redrive-last-error", "boom")));
  EXPECT_EQ(out.size(), 6u);
}

TEST(RetryEntryFieldsTest, ReturnedEntryKeepsItsCountAndFailureFields) {
  // Read, never delivered, handed back: not a failed attempt.
  StreamEntry entry = DataEntry("9-0", JsonHeaders(),
                                R"({"order":7,"_retry_count":"2","_original_message_id":"5-0"})");
  entry.fields.emplace_back("x-redrive-last-error", "second");
  entry.fields.emplace_back("x-redrive-history", "[]");
  const RetryState state = TakeOk(ReadRetryState(entry));
  FailureRecord returned = Failure(0, kT0, std::string(kReturnedOutcome), "", "");
  const FieldList out = TakeOk(RetryEntryFields(entry, state, returned));
  EXPECT_EQ(
      out, (FieldList{{"__data__", SpecEnvelope(JsonHeaders(), R"({"order":7,"_retry_count":"2",)"
                                                               R"("_original_message_id":"5-0"})")},
                      {"x-redrive-last-error", "second"},
                      {"x-redrive-history", "[]"}}));
  // A first-time main-stream entry becomes attempt 1 again, with its id.
  const StreamEntry fresh = DataEntry("3-0", {}, R"({"a":1})");
  const FieldList again = TakeOk(RetryEntryFields(fresh, TakeOk(ReadRetryState(fresh)), returned));
  EXPECT_EQ(again, (FieldList{{"__data__", SpecEnvelope({}, R"({"a":1,"_retry_count":"0",)"
                                                            R"("_original_message_id":"3-0"})")}}));
}

TEST(RetryEntryFieldsTest, NonObjectBodyGetsMetadataHeaders) {
  const StreamEntry entry = DataEntry("5-0", {{"correlation_id", "c1"}}, "[1,2]");
  const RetryState state = TakeOk(ReadRetryState(entry));
  const FieldList out = TakeOk(RetryEntryFields(entry, state, Failure(1, kT0)));
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], (std::pair<std::string, std::string>(
                        "__data__", SpecEnvelope({{"correlation_id", "c1"},
                                                  {"x-redrive-attempt", "1"},
                                                  {"x-redrive-original-id", "5-0"}},
                                                 "[1,2]"))));
  EXPECT_EQ(out[1].first, "x-redrive-last-error");
  EXPECT_EQ(out[4], (std::pair<std::string, std::string>("x-redrive-history",
                                                         absl::StrCat("[", Rec(1, kT0), "]"))));

  // The next retry replaces the headers in place; the first original id wins.
  const StreamEntry retry = Entry("9-0", out);
  const RetryState again = TakeOk(ReadRetryState(retry));
  EXPECT_EQ(again.retry_count, 1);
  EXPECT_EQ(again.original_id, "5-0");
  const FieldList out2 = TakeOk(RetryEntryFields(retry, again, Failure(2, kT0 + 500)));
  EXPECT_EQ(out2, (FieldList{{"__data__", SpecEnvelope({{"correlation_id", "c1"},
                                                        {"x-redrive-attempt", "2"},
                                                        {"x-redrive-original-id", "5-0"}},
                                                       "[1,2]")},
                             {"x-redrive-last-error", "boom"},
                             {"x-redrive-last-error-code", "E_HANDLER"},
                             {"x-redrive-first-failure-ms", "1700000000000"},
                             {"x-redrive-history",
                              absl::StrCat("[", Rec(1, kT0), ",", Rec(2, kT0 + 500), "]")}}));
}

TEST(RetryEntryFieldsTest, HistoryIsCappedKeepingTheNewest) {
  ASSERT_EQ(kMaxHistory, 10u);
  std::string history = "[";
  for (uint32_t a = 1; a <= 10; ++a) {
    absl::StrAppend(&history, a > 1 ? "," : "", Rec(a, kT0 + a));
  }
  history += "]";
  StreamEntry entry = DataEntry("9-0", {}, R"({"_retry_count":"10","_original_message_id":"5-0"})");
  entry.fields.emplace_back("x-redrive-history", history);
  const RetryState state = TakeOk(ReadRetryState(entry));
  const FieldList out = TakeOk(RetryEntryFields(entry, state, Failure(11, kT0 + 11)));
  std::string expected = "[";
  for (uint32_t a = 2; a <= 11; ++a) {
    absl::StrAppend(&expected, a > 2 ? "," : "", Rec(a, kT0 + a));
  }
  expected += "]";
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[4].first, "x-redrive-history");
  EXPECT_EQ(out[4].second, expected);
  // No first-failure field: the failure's own time.
  EXPECT_EQ(out[3], (std::pair<std::string, std::string>("x-redrive-first-failure-ms",
                                                         absl::StrCat(kT0 + 11))));
}

TEST(RetryEntryFieldsTest, OverlongForeignHistoryIsCutToTheNewest) {
  std::string history = "[";
  for (uint32_t a = 1; a <= 12; ++a) {
    absl::StrAppend(&history, a > 1 ? "," : "", Rec(a, kT0 + a));
  }
  history += "]";
  RetryState state;
  state.retry_count = 12;
  state.history = history;
  const StreamEntry entry = Entry("9-0", {{"a", "1"}});
  state.decoded.format = EntryFormat::kFields;
  state.decoded.fields = entry.fields;
  const FieldList out = TakeOk(RetryEntryFields(entry, state, Failure(13, kT0 + 13)));
  std::string expected = "[";
  for (uint32_t a = 4; a <= 13; ++a) {
    absl::StrAppend(&expected, a > 4 ? "," : "", Rec(a, kT0 + a));
  }
  expected += "]";
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), (std::pair<std::string, std::string>("x-redrive-history", expected)));
}

TEST(RetryEntryFieldsTest, UnreadableHistoryStartsAgain) {
  for (const char* bad : {"not json", "{\"a\":1}", "", "[1,"}) {
    SCOPED_TRACE(bad);
    StreamEntry entry = DataEntry("5-0", {}, R"({"a":1})");
    entry.fields.emplace_back("x-redrive-history", bad);
    const RetryState state = TakeOk(ReadRetryState(entry));
    const FieldList out = TakeOk(RetryEntryFields(entry, state, Failure(1, kT0)));
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back(), (std::pair<std::string, std::string>(
                              "x-redrive-history", absl::StrCat("[", Rec(1, kT0), "]"))));
  }
}

TEST(RetryEntryFieldsTest, LongErrorsAreCutWithoutSplittingUtf8) {
  ASSERT_EQ(kMaxStoredError, 1024u);
  struct Case {
    std::string error;
    std::string stored;
  };
  const std::vector<Case> cases = {
      // 2-byte sequence straddling the limit.
      {std::string(1023, 'a') + "\xc3\xa9" + "tail", std::string(1023, 'a')},
      // 3-byte sequence straddling the limit.
      {std::string(1022, 'a') + "\xe2\x82\xac" + "tail", std::string(1022, 'a')},
      // 4-byte sequence straddling the limit.
      {std::string(1022, 'a') + "\xf0\x9f\x98\x80", std::string(1022, 'a')},
      // A sequence ending exactly at the limit is kept.
      {std::string(1020, 'a') + "\xf0\x9f\x98\x80" + "b",
       std::string(1020, 'a') + "\xf0\x9f\x98\x80"},
      // Exactly the limit: unchanged.
      {std::string(1024, 'z'), std::string(1024, 'z')},
      // ASCII over the limit.
      {std::string(5000, 'q'), std::string(1024, 'q')},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.error.size());
    const StreamEntry entry = DataEntry("5-0", {}, R"({"a":1})");
    const RetryState state = TakeOk(ReadRetryState(entry));
    FailureRecord f = Failure(1, kT0);
    f.error = c.error;
    const FieldList out = TakeOk(RetryEntryFields(entry, state, f));
    ASSERT_EQ(out.size(), 5u);
    EXPECT_EQ(out[1], (std::pair<std::string, std::string>("x-redrive-last-error", c.stored)));
    const nlohmann::json h = nlohmann::json::parse(out[4].second, nullptr, false);
    ASSERT_TRUE(h.is_array()) << out[4].second;
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0]["error"].get<std::string>(), c.stored);
  }
}

TEST(RetryEntryFieldsTest, InvalidUtf8ErrorKeepsTheHistoryValidJson) {
  const StreamEntry entry = DataEntry("5-0", {}, R"({"a":1})");
  const RetryState state = TakeOk(ReadRetryState(entry));
  FailureRecord f = Failure(1, kT0);
  f.error = "bad\xff";
  const FieldList out = TakeOk(RetryEntryFields(entry, state, f));
  ASSERT_EQ(out.size(), 5u);
  const nlohmann::json h = nlohmann::json::parse(out[4].second, nullptr, false);
  ASSERT_TRUE(h.is_array()) << absl::CHexEscape(out[4].second);
  EXPECT_EQ(h[0]["error"].get<std::string>(), "bad\xef\xbf\xbd");
}

TEST(RetryEntryFieldsTest, PlainFieldMapGetsAttemptAndOriginalIdFields) {
  const StreamEntry entry = Entry("5-0", {{"a", "1"}, {"b", "2"}});
  const RetryState state = TakeOk(ReadRetryState(entry));
  const FieldList out = TakeOk(RetryEntryFields(entry, state, Failure(1, kT0)));
  EXPECT_EQ(out, (FieldList{{"a", "1"},
                            {"b", "2"},
                            {"x-redrive-attempt", "1"},
                            {"x-redrive-original-id", "5-0"},
                            {"x-redrive-last-error", "boom"},
                            {"x-redrive-last-error-code", "E_HANDLER"},
                            {"x-redrive-first-failure-ms", "1700000000000"},
                            {"x-redrive-history", absl::StrCat("[", Rec(1, kT0), "]")}}));
}

TEST(RetryEntryFieldsTest, RetryOfAPlainFieldMapRetry) {
  const StreamEntry entry =
      Entry("9-0", {{"a", "1"},
                    {"x-redrive-attempt", "1"},
                    {"x-redrive-original-id", "5-0"},
                    {"x-redrive-last-error", "old"},
                    {"x-redrive-last-error-code", "E_OLD"},
                    {"x-redrive-first-failure-ms", "1699999999000"},
                    {"x-redrive-history", absl::StrCat("[", Rec(1, 1699999999000), "]")},
                    {"b", "2"}});
  const RetryState state = TakeOk(ReadRetryState(entry));
  const FieldList out =
      TakeOk(RetryEntryFields(entry, state, Failure(2, kT0, "lease_expired", "", "")));
  EXPECT_EQ(
      out,
      (FieldList{{"a", "1"},
                 {"b", "2"},
                 {"x-redrive-attempt", "2"},
                 {"x-redrive-original-id", "5-0"},
                 {"x-redrive-last-error", ""},
                 {"x-redrive-last-error-code", ""},
                 {"x-redrive-first-failure-ms", "1699999999000"},
                 {"x-redrive-history", absl::StrCat("[", Rec(1, 1699999999000), ",",
                                                    Rec(2, kT0, "lease_expired", "", ""), "]")}}));
}

// ---------------------------------------------------------------------------
// CutUtf8

TEST(CutUtf8Test, CutsAtSequenceBoundaries) {
  EXPECT_EQ(CutUtf8("", 0), "");
  EXPECT_EQ(CutUtf8("abc", 0), "");
  EXPECT_EQ(CutUtf8("abc", 3), "abc");
  EXPECT_EQ(CutUtf8("abc", 10), "abc");
  EXPECT_EQ(CutUtf8("abcd", 3), "abc");
  // "é" = C3 A9
  EXPECT_EQ(CutUtf8("a\xc3\xa9", 2), "a");
  EXPECT_EQ(CutUtf8("a\xc3\xa9", 3), "a\xc3\xa9");
  EXPECT_EQ(CutUtf8("a\xc3\xa9z", 3), "a\xc3\xa9");
  // "€" = E2 82 AC
  EXPECT_EQ(CutUtf8("\xe2\x82\xac", 2), "");
  EXPECT_EQ(CutUtf8("\xe2\x82\xac", 1), "");
  EXPECT_EQ(CutUtf8("a\xe2\x82\xac"
                    "b",
                    3),
            "a");
  EXPECT_EQ(CutUtf8("a\xe2\x82\xac"
                    "b",
                    4),
            "a\xe2\x82\xac");
  // U+1F600 = F0 9F 98 80
  EXPECT_EQ(CutUtf8("\xf0\x9f\x98\x80x", 4), "\xf0\x9f\x98\x80");
  EXPECT_EQ(CutUtf8("\xf0\x9f\x98\x80", 3), "");
  EXPECT_EQ(CutUtf8("ab\xf0\x9f\x98\x80", 5), "ab");
  EXPECT_EQ(CutUtf8("ab\xf0\x9f\x98\x80", 3), "ab");
}

// ---------------------------------------------------------------------------
// DeadLetterFields

TEST(DeadLetterFieldsTest, JsonObjectBodyFromTheMainStream) {
  const StreamEntry entry = DataEntry("5-0", JsonHeaders(), R"({"order": 7})");
  const absl::StatusOr<RetryState> state = ReadRetryState(entry);
  ASSERT_THAT(state, IsOk());
  const FieldList out =
      DeadLetterFields(entry, state, Failure(1, kT0, "terminated", "cannot parse", "E_PARSE"),
                       Context("terminated"));
  EXPECT_EQ(
      out,
      (FieldList{{"__data__",
                  SpecEnvelope(
                      JsonHeaders(),
                      absl::StrCat(R"({"order":7,"_retry_count":"0","_original_message_id":"5-0",)",
                                   R"("_dlq_source":"orders","_dlq_handler":"billing",)",
                                   R"("_dlq_at":"2023-11-14T22:13:20.000+00:00",)",
                                   R"("_dlq_reason":"terminated","_dlq_retries":"0"})"))},
                 {"x-redrive-reason", "terminated"},
                 {"x-redrive-channel", "orders"},
                 {"x-redrive-handler", "billing"},
                 {"x-redrive-source-stream", "orders"},
                 {"x-redrive-source-id", "5-0"},
                 {"x-redrive-original-id", "5-0"},
                 {"x-redrive-attempts", "1"},
                 {"x-redrive-dead-lettered-ms", "1700000000000"},
                 {"x-redrive-last-error", "cannot parse"},
                 {"x-redrive-last-error-code", "E_PARSE"},
                 {"x-redrive-first-failure-ms", "1700000000000"},
                 {"x-redrive-history",
                  "[{\"at_ms\":1700000000000,\"attempt\":1,\"consumer\":\"billing-i1\",\"error\":"
                  "\"cannot parse\",\"error_code\":\"E_PARSE\",\"outcome\":\"terminated\"}]"}}));
}

TEST(DeadLetterFieldsTest, JsonObjectBodyFromTheRetryStreamAfterMaxRetries) {
  const std::string old_history =
      absl::StrCat("[", Rec(1, kT0 - 3000), ",", Rec(2, kT0 - 2000), ",", Rec(3, kT0 - 1000), "]");
  StreamEntry entry = DataEntry("9-0", JsonHeaders(),
                                R"({"order":7,"_retry_count":"3","_original_message_id":"5-0"})");
  entry.fields.emplace_back("x-redrive-last-error", "boom");
  entry.fields.emplace_back("x-redrive-last-error-code", "E_HANDLER");
  entry.fields.emplace_back("x-redrive-first-failure-ms", absl::StrCat(kT0 - 3000));
  entry.fields.emplace_back("x-redrive-history", old_history);
  entry.fields.emplace_back("extra", "kept");
  const absl::StatusOr<RetryState> state = ReadRetryState(entry);
  ASSERT_THAT(state, IsOk());
  const FieldList out = DeadLetterFields(entry, state, Failure(4, kT0, "nack", "final"),
                                         Context("max_retries", "orders.billing.retry"));
  EXPECT_EQ(
      out,
      (FieldList{{"__data__",
                  SpecEnvelope(
                      JsonHeaders(),
                      absl::StrCat(R"({"order":7,"_retry_count":"0","_original_message_id":"5-0",)",
                                   R"("_dlq_source":"orders","_dlq_handler":"billing",)",
                                   R"("_dlq_at":")", kDlqAt, R"(",)",
                                   R"("_dlq_reason":"max_retries","_dlq_retries":"3"})"))},
                 {"extra", "kept"},
                 {"x-redrive-reason", "max_retries"},
                 {"x-redrive-channel", "orders"},
                 {"x-redrive-handler", "billing"},
                 {"x-redrive-source-stream", "orders.billing.retry"},
                 {"x-redrive-source-id", "9-0"},
                 {"x-redrive-original-id", "5-0"},
                 {"x-redrive-attempts", "4"},
                 {"x-redrive-dead-lettered-ms", "1700000000000"},
                 {"x-redrive-last-error", "final"},
                 {"x-redrive-last-error-code", "E_HANDLER"},
                 {"x-redrive-first-failure-ms", "1699999997000"},
                 {"x-redrive-history",
                  absl::StrCat("[", Rec(1, kT0 - 3000), ",", Rec(2, kT0 - 2000), ",",
                               Rec(3, kT0 - 1000), ",", Rec(4, kT0, "nack", "final"), "]")}}));
}

TEST(DeadLetterFieldsTest, NonObjectBodyKeepsItsBytes) {
  for (const std::string& body :
       {std::string("[1,2]"), std::string("plain text"), std::string("\xff\x00\xfe", 3)}) {
    SCOPED_TRACE(absl::CHexEscape(body));
    const std::string value = SpecEnvelope(
        {{"correlation_id", "c1"}, {"x-redrive-attempt", "2"}, {"x-redrive-original-id", "5-0"}},
        body);
    const StreamEntry entry =
        Entry("9-0", {{"__data__", value}, {"x-redrive-first-failure-ms", "1699999999000"}});
    const absl::StatusOr<RetryState> state = ReadRetryState(entry);
    ASSERT_THAT(state, IsOk());
    const FieldList out =
        DeadLetterFields(entry, state, Failure(3, kT0), Context("max_retries", "r"));
    EXPECT_EQ(out, (FieldList{{"__data__", value},
                              {"x-redrive-reason", "max_retries"},
                              {"x-redrive-channel", "orders"},
                              {"x-redrive-handler", "billing"},
                              {"x-redrive-source-stream", "r"},
                              {"x-redrive-source-id", "9-0"},
                              {"x-redrive-original-id", "5-0"},
                              {"x-redrive-attempts", "3"},
                              {"x-redrive-dead-lettered-ms", "1700000000000"},
                              {"x-redrive-last-error", "boom"},
                              {"x-redrive-last-error-code", "E_HANDLER"},
                              {"x-redrive-first-failure-ms", "1699999999000"},
                              {"x-redrive-history", absl::StrCat("[", Rec(3, kT0), "]")}}));
  }
}

TEST(DeadLetterFieldsTest, RawNonJsonDataKeepsItsBytes) {
  const StreamEntry entry = Entry("5-0", {{"__data__", "just bytes"}});
  const absl::StatusOr<RetryState> state = ReadRetryState(entry);
  ASSERT_THAT(state, IsOk());
  const FieldList out = DeadLetterFields(entry, state, Failure(1, kT0), Context("terminated"));
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0], (std::pair<std::string, std::string>("__data__", "just bytes")));
  EXPECT_EQ(out.size(), 13u);
}

std::string PoisonBody(absl::string_view raw, absl::string_view id, absl::string_view retries) {
  return absl::StrCat(
      R"({"_original_message_id":")", id, R"(","_dlq_raw_b64":")", absl::Base64Escape(raw),
      R"(","_dlq_source":"orders",)", R"("_dlq_handler":"billing","_dlq_at":")", kDlqAt,
      R"(","_dlq_reason":"poison","_dlq_retries":")", retries, R"(","_retry_count":"0"})");
}

TEST(DeadLetterFieldsTest, CorruptEnvelopeIsWrappedInDlqRawB64) {
  const std::string raw = CorruptEnvelope();
  const std::string history = absl::StrCat("[", Rec(1, kT0 - 1000), "]");
  const StreamEntry entry = Entry("7-0", {{"__data__", raw},
                                          {"x-redrive-attempt", "1"},
                                          {"x-redrive-original-id", "1-0"},
                                          {"x-redrive-first-failure-ms", "1699999999000"},
                                          {"x-redrive-history", history},
                                          {"other", "o"}});
  const absl::StatusOr<RetryState> state = ReadRetryState(entry);
  ASSERT_THAT(state, StatusIs(absl::StatusCode::kDataLoss));
  const FieldList out = DeadLetterFields(
      entry, state, Failure(1, kT0, "poison", "corrupt", "E_POISON", ""), Context("poison"));
  EXPECT_EQ(out,
            (FieldList{{"__data__", SpecEnvelope({}, PoisonBody(raw, "7-0", "0"))},
                       {"other", "o"},
                       {"x-redrive-reason", "poison"},
                       {"x-redrive-channel", "orders"},
                       {"x-redrive-handler", "billing"},
                       {"x-redrive-source-stream", "orders"},
                       {"x-redrive-source-id", "7-0"},
                       {"x-redrive-original-id", "7-0"},
                       {"x-redrive-attempts", "1"},
                       {"x-redrive-dead-lettered-ms", "1700000000000"},
                       {"x-redrive-last-error", "corrupt"},
                       {"x-redrive-last-error-code", "E_POISON"},
                       {"x-redrive-first-failure-ms", "1699999999000"},
                       {"x-redrive-history",
                        absl::StrCat("[", Rec(1, kT0 - 1000), ",",
                                     Rec(1, kT0, "poison", "corrupt", "E_POISON", ""), "]")}}));
  // The dead letter itself is readable and not poison.
  const absl::StatusOr<RetryState> dl = ReadRetryState(Entry("8-0", {out[0]}));
  ASSERT_THAT(dl, IsOk());
  EXPECT_EQ(dl->retry_count, 0);
  EXPECT_EQ(dl->original_id, "7-0");
}

TEST(DeadLetterFieldsTest, PoisonMetadataKeepsTheEnvelopeHeaders) {
  const std::string raw = SpecEnvelope(JsonHeaders(), R"({"a":1,"_retry_count":"abc"})");
  const StreamEntry entry = Entry("7-0", {{"__data__", raw}});
  const absl::StatusOr<RetryState> state = ReadRetryState(entry);
  ASSERT_THAT(state, StatusIs(absl::StatusCode::kDataLoss));
  const FieldList out = DeadLetterFields(entry, state, Failure(2, kT0), Context("poison"));
  ASSERT_EQ(out.size(), 13u);
  EXPECT_EQ(out[0], (std::pair<std::string, std::string>(
                        "__data__", SpecEnvelope(JsonHeaders(), PoisonBody(raw, "7-0", "1")))));
  EXPECT_EQ(out[6], (std::pair<std::string, std::string>("x-redrive-original-id", "7-0")));
  EXPECT_EQ(out[7], (std::pair<std::string, std::string>("x-redrive-attempts", "2")));
  EXPECT_EQ(out[11],
            (std::pair<std::string, std::string>("x-redrive-first-failure-ms", "1700000000000")));
}

TEST(DeadLetterFieldsTest, PoisonFieldMapKeepsItsFields) {
  const StreamEntry entry = Entry(
      "7-0", {{"a", "1"}, {"x-redrive-attempt", "x"}, {"x-redrive-history", "junk"}, {"b", "2"}});
  const absl::StatusOr<RetryState> state = ReadRetryState(entry);
  ASSERT_THAT(state, StatusIs(absl::StatusCode::kDataLoss));
  const FieldList out =
      DeadLetterFields(entry, state, Failure(1, kT0, "poison", "bad", "E_P"), Context("poison"));
  EXPECT_EQ(out, (FieldList{{"a", "1"},
                            {"b", "2"},
                            {"x-redrive-reason", "poison"},
                            {"x-redrive-channel", "orders"},
                            {"x-redrive-handler", "billing"},
                            {"x-redrive-source-stream", "orders"},
                            {"x-redrive-source-id", "7-0"},
                            {"x-redrive-original-id", "7-0"},
                            {"x-redrive-attempts", "1"},
                            {"x-redrive-dead-lettered-ms", "1700000000000"},
                            {"x-redrive-last-error", "bad"},
                            {"x-redrive-last-error-code", "E_P"},
                            {"x-redrive-first-failure-ms", "1700000000000"},
                            {"x-redrive-history",
                             absl::StrCat("[", Rec(1, kT0, "poison", "bad", "E_P"), "]")}}));
}

TEST(DeadLetterFieldsTest, PlainFieldMapKeepsItsFieldsWithoutOldRedriveFields) {
  const StreamEntry entry =
      Entry("9-0", {{"a", "1"},
                    {"x-redrive-attempt", "2"},
                    {"x-redrive-original-id", "5-0"},
                    {"x-redrive-last-error", "old"},
                    {"x-redrive-first-failure-ms", "1699999999000"},
                    {"x-redrive-history", absl::StrCat("[", Rec(2, 1699999999500), "]")},
                    {"b", "2"}});
  const absl::StatusOr<RetryState> state = ReadRetryState(entry);
  ASSERT_THAT(state, IsOk());
  const FieldList out = DeadLetterFields(entry, state, Failure(3, kT0),
                                         Context("max_retries", "orders.billing.retry"));
  EXPECT_EQ(out, (FieldList{{"a", "1"},
                            {"b", "2"},
                            {"x-redrive-reason", "max_retries"},
                            {"x-redrive-channel", "orders"},
                            {"x-redrive-handler", "billing"},
                            {"x-redrive-source-stream", "orders.billing.retry"},
                            {"x-redrive-source-id", "9-0"},
                            {"x-redrive-original-id", "5-0"},
                            {"x-redrive-attempts", "3"},
                            {"x-redrive-dead-lettered-ms", "1700000000000"},
                            {"x-redrive-last-error", "boom"},
                            {"x-redrive-last-error-code", "E_HANDLER"},
                            {"x-redrive-first-failure-ms", "1699999999000"},
                            {"x-redrive-history",
                             absl::StrCat("[", Rec(2, 1699999999500), ",", Rec(3, kT0), "]")}}));
}

TEST(DeadLetterFieldsTest, DlqTimeIsEggAisIsoFormat) {
  EXPECT_EQ(FormatDeadLetterTime(absl::FromUnixMillis(kT0)), kDlqAt);
}

// ---------------------------------------------------------------------------
// Due members

TEST(DueMemberTest, EncodesExactly) {
  DueMember m;
  m.source = 0;
  m.entry_id = "5-0";
  m.failure = Failure(1, kT0);
  EXPECT_EQ(EncodeDueMember(m), absl::StrCat("0\n5-0\n", Rec(1, kT0)));
}

TEST(DueMemberTest, RoundTripsWithNewlineAndNonAsciiError) {
  DueMember m;
  m.source = 1;
  m.entry_id = "1700000000500-3";
  m.failure = Failure(3, kT0, "lease_expired",
                      "line one\nline two \xe2\x80\x94 \xc3\xbcnic\xc3\xb6"
                      "de \xf0\x9f\x98\x80",
                      "E_\"Q\"", "billing-i2");
  const std::string encoded = EncodeDueMember(m);
  EXPECT_EQ(encoded,
            "1\n1700000000500-3\n{\"at_ms\":1700000000000,\"attempt\":3,\"consumer\":"
            "\"billing-i2\",\"error\":\"line one\\nline two \xe2\x80\x94 \xc3\xbcnic\xc3\xb6"
            "de \xf0\x9f\x98\x80\",\"error_code\":\"E_\\\"Q\\\"\",\"outcome\":\"lease_expired\"}");
  const DueMember d = TakeOk(DecodeDueMember(encoded));
  EXPECT_EQ(d.source, 1);
  EXPECT_EQ(d.entry_id, "1700000000500-3");
  EXPECT_EQ(d.failure.attempt, 3u);
  EXPECT_EQ(d.failure.at_ms, kT0);
  EXPECT_EQ(d.failure.outcome, "lease_expired");
  EXPECT_EQ(d.failure.error, m.failure.error);
  EXPECT_EQ(d.failure.error_code, "E_\"Q\"");
  EXPECT_EQ(d.failure.consumer, "billing-i2");
}

TEST(DueMemberTest, RoundTripsMainStreamSource) {
  DueMember m;
  m.source = 0;
  m.entry_id = "5-0";
  m.failure = Failure(1, 0, "disconnected", "", "", "");
  const DueMember d = TakeOk(DecodeDueMember(EncodeDueMember(m)));
  EXPECT_EQ(d.source, 0);
  EXPECT_EQ(d.entry_id, "5-0");
  EXPECT_EQ(d.failure.attempt, 1u);
  EXPECT_EQ(d.failure.at_ms, 0);
  EXPECT_EQ(d.failure.outcome, "disconnected");
  EXPECT_EQ(d.failure.error, "");
}

TEST(DueMemberTest, MissingFailureKeysTakeDefaults) {
  const DueMember d = TakeOk(DecodeDueMember("0\n1-0\n{}"));
  EXPECT_EQ(d.source, 0);
  EXPECT_EQ(d.entry_id, "1-0");
  EXPECT_EQ(d.failure.attempt, 1u);
  EXPECT_EQ(d.failure.at_ms, 0);
  EXPECT_EQ(d.failure.outcome, "");
}

TEST(DueMemberTest, RejectsMembersThisDaemonDidNotWrite) {
  for (const char* bad : {"", "2\n1-0\n{}", "0\nnot-an-id\n{}", "0\n1-0\nnot json", "0\n1-0", "0",
                          "\n1-0\n{}", "0\n1-0\n[1]", "00\n1-0\n{}"}) {
    SCOPED_TRACE(absl::CHexEscape(bad));
    EXPECT_THAT(DecodeDueMember(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

}  // namespace
}  // namespace redrive
