// Unit tests of dead-letter decoding, selection and the redrive rewrite
// (daemon/dead_letters.h), on entries built the way the daemon builds them.
#include "daemon/dead_letters.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "daemon/retry_fields.h"
#include "daemon/retry_metadata.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::StatusIs;
using ::redrive::testing::TakeOk;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Field(const FieldList& fields, absl::string_view name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return v;
  }
  return "<absent>";
}

std::string Binary(const HeaderList& headers, const std::string& body) {
  return TakeOk(EncodeBinaryV1(headers, body));
}

// A dead letter as the daemon writes it: the entry `main_id` with `data`
// failed `attempt` times, the last with `reason`.
StreamEntry MakeDeadLetter(const std::string& data, uint32_t attempt, const std::string& reason,
                           FieldList extra = {}) {
  StreamEntry main{"1700000000000-1", {{"__data__", data}}, false};
  for (auto& f : extra) main.fields.push_back(f);
  FailureRecord failure;
  failure.attempt = attempt;
  failure.outcome = reason == "terminated" ? "terminated" : "nack";
  failure.error = "boom";
  failure.error_code = "E_BOOM";
  failure.consumer = "h-i1";
  failure.at_ms = 1700000001000;
  DeadLetterContext context{reason, "orders", "h", "orders", absl::FromUnixMillis(1700000002000)};
  StreamEntry dl;
  dl.id = "1700000002000-0";
  dl.fields = DeadLetterFields(main, ReadRetryState(main), failure, context);
  return dl;
}

TEST(DeadLettersTest, DecodesRedriveProvenanceAndTheMessageAsTheHandlerSawIt) {
  const StreamEntry dl = MakeDeadLetter(
      Binary({{"correlation_id", "c1"}, {"content-type", "application/json"}, {"tenant", "t"}},
             R"({"order":7})"),
      3, "max_retries");
  const v1::DeadLetter d = DecodeDeadLetter(dl, 1000, 5);
  EXPECT_EQ(d.entry_id(), "1700000002000-0");
  EXPECT_EQ(d.reason(), "max_retries");
  EXPECT_EQ(d.source_channel(), "orders");
  EXPECT_EQ(d.handler_id(), "h");
  EXPECT_EQ(d.attempts(), 3u);
  EXPECT_EQ(d.last_error(), "boom");
  EXPECT_EQ(d.last_error_code(), "E_BOOM");
  EXPECT_EQ(d.first_failure_unix_ms(), 1700000001000);
  EXPECT_EQ(d.dead_lettered_unix_ms(), 1700000002000);  // the DLQ entry id's time
  EXPECT_EQ(d.original_entry_id(), "1700000000000-1");
  EXPECT_EQ(d.payload(), R"({"order":7})");  // no _retry_count, no _dlq_* keys
  EXPECT_EQ(d.payload_size(), 11u);
  EXPECT_FALSE(d.payload_truncated());
  EXPECT_EQ(d.content_type(), "application/json");
  ASSERT_EQ(d.headers_size(), 1);
  EXPECT_EQ(d.headers(0).key(), "tenant");
  ASSERT_EQ(d.history_size(), 1);
  EXPECT_EQ(d.history(0).attempt(), 3u);
  EXPECT_EQ(d.history(0).consumer(), "h-i1");
  EXPECT_FALSE(d.eggai_format());
  EXPECT_EQ(d.redrive_count(), 0u);
  EXPECT_FALSE(d.quarantined());

  const v1::DeadLetter preview = DecodeDeadLetter(dl, 4, 5);
  EXPECT_EQ(preview.payload(), R"({"or)");
  EXPECT_TRUE(preview.payload_truncated());
  EXPECT_EQ(preview.payload_size(), 11u);
}

TEST(DeadLettersTest, RedriveToTheHandlerKeepsOrResetsTheAttemptsAndCountsTheRedrive) {
  const StreamEntry dl = MakeDeadLetter(Binary({}, R"({"order":7})"), 3, "max_retries");
  const FieldList kept = TakeOk(RedriveFields(dl, /*to_handler_retry=*/true, false));
  const RetryState state = TakeOk(ReadRetryState(StreamEntry{"9-9", kept, false}));
  EXPECT_EQ(state.retry_count, 3);  // the next delivery is attempt 4: one more try
  EXPECT_EQ(state.original_id, "1700000000000-1");
  EXPECT_EQ(state.last_error, "boom");
  EXPECT_EQ(state.first_failure_ms, 1700000001000);
  EXPECT_EQ(state.decoded.body,
            R"({"order":7,"_retry_count":"3","_original_message_id":"1700000000000-1"})");
  EXPECT_EQ(Field(kept, "x-redrive-redrives"), "1");
  EXPECT_EQ(Field(kept, "x-redrive-reason"), "<absent>");  // not a dead letter any more

  const FieldList reset = TakeOk(RedriveFields(dl, true, /*reset_attempts=*/true));
  EXPECT_EQ(TakeOk(ReadRetryState(StreamEntry{"9-9", reset, false})).retry_count, 0);

  // The redrive counter survives the next retry and dead-lettering.
  StreamEntry retried{"1700000003000-0", kept, false};
  FailureRecord f;
  f.attempt = 4;
  f.outcome = "nack";
  const FieldList next = TakeOk(RetryEntryFields(retried, TakeOk(ReadRetryState(retried)), f));
  EXPECT_EQ(Field(next, "x-redrive-redrives"), "1");
  DeadLetterContext context{"max_retries", "orders", "h", "orders.h.retry", absl::Now()};
  const FieldList again = DeadLetterFields(retried, ReadRetryState(retried), f, context);
  EXPECT_EQ(Field(again, "x-redrive-redrives"), "1");
  StreamEntry dl2{"1700000004000-0", again, false};
  EXPECT_TRUE(DecodeDeadLetter(dl2, 0, /*max_redrives=*/1).quarantined());
  EXPECT_FALSE(DecodeDeadLetter(dl2, 0, 2).quarantined());
  EXPECT_EQ(Field(TakeOk(RedriveFields(dl2, true, false)), "x-redrive-redrives"), "2");
}

TEST(DeadLettersTest, RedriveToAChannelIsAFreshMessage) {
  const StreamEntry dl = MakeDeadLetter(
      Binary({{"correlation_id", "c1"}, {"content-type", "application/json"}}, R"({"order":7})"), 2,
      "terminated", {{"other-field", "kept"}});
  const FieldList fields = TakeOk(RedriveFields(dl, /*to_handler_retry=*/false, false));
  const DecodedEntry d = TakeOk(DecodeDataValue(Field(fields, "__data__")));
  EXPECT_EQ(d.body, R"({"order":7})");
  EXPECT_EQ(d.headers,
            (HeaderList{{"correlation_id", "c1"}, {"content-type", "application/json"}}));
  EXPECT_EQ(Field(fields, "other-field"), "kept");
  EXPECT_EQ(Field(fields, "x-redrive-last-error"), "<absent>");
  EXPECT_EQ(Field(fields, "x-redrive-redrives"), "1");
  EXPECT_EQ(TakeOk(ReadRetryState(StreamEntry{"9-9", fields, false})).retry_count, 0);
}

TEST(DeadLettersTest, NonJsonBodiesCarryTheCountInHeadersAndKeepTheirBytes) {
  const StreamEntry dl = MakeDeadLetter(Binary({}, "plain \xff bytes"), 2, "max_retries");
  EXPECT_EQ(DecodeDeadLetter(dl, 100, 5).payload(), "plain \xff bytes");
  const FieldList fields = TakeOk(RedriveFields(dl, true, false));
  const RetryState state = TakeOk(ReadRetryState(StreamEntry{"9-9", fields, false}));
  EXPECT_EQ(state.retry_count, 2);
  EXPECT_EQ(state.decoded.body, "plain \xff bytes");
}

TEST(DeadLettersTest, PoisonPayloadIsTheRawBytesAndRedriveRestoresThem) {
  const std::string raw = std::string(
                              "\x89"
                              "BIN\r\n\x1a\n",
                              8) +
                          "\x00\x01garbage";
  StreamEntry main{"1700000000000-1", {{"__data__", raw}}, false};
  FailureRecord failure;
  failure.attempt = 1;
  failure.outcome = "poison";
  DeadLetterContext context{"poison", "orders", "h", "orders", absl::Now()};
  StreamEntry dl{"1700000002000-0", DeadLetterFields(main, ReadRetryState(main), failure, context),
                 false};
  const v1::DeadLetter d = DecodeDeadLetter(dl, 1000, 5);
  EXPECT_EQ(d.reason(), "poison");
  EXPECT_EQ(d.payload(), raw);
  EXPECT_EQ(Field(TakeOk(RedriveFields(dl, true, false)), "__data__"), raw);
}

TEST(DeadLettersTest, EggAIDeadLettersDecodeWithAndWithoutDlqKeys) {
  StreamEntry pr277{"1700000005000-0",
                    {{"__data__", R"({"id":"x","_retry_count":"0","_original_message_id":"1-1",)"
                                  R"("_dlq_source":"eggai.orders","_dlq_handler":"svc-h-1",)"
                                  R"("_dlq_at":"2023-11-14T22:13:20.123+00:00",)"
                                  R"("_dlq_reason":"poison","_dlq_retries":"2"})"}},
                    false};
  const v1::DeadLetter a = DecodeDeadLetter(pr277, 1000, 5);
  EXPECT_TRUE(a.eggai_format());
  EXPECT_EQ(a.reason(), "poison");
  EXPECT_EQ(a.attempts(), 3u);
  EXPECT_EQ(a.source_channel(), "eggai.orders");
  EXPECT_EQ(a.handler_id(), "svc-h-1");
  EXPECT_EQ(a.dead_lettered_unix_ms(), 1700000005000);  // the DLQ entry's time, as filters
  EXPECT_EQ(a.original_entry_id(), "1-1");
  EXPECT_EQ(a.payload(), R"({"id":"x"})");

  StreamEntry older{"1700000006000-0", {{"__data__", R"({"id":"y","_retry_count":"5"})"}}, false};
  const v1::DeadLetter b = DecodeDeadLetter(older, 1000, 5);
  EXPECT_EQ(b.reason(), "max_retries");
  EXPECT_EQ(b.attempts(), 6u);
  EXPECT_EQ(b.dead_lettered_unix_ms(), 1700000006000);
  // Redriven to the handler: EggAI's body minus nothing but bookkeeping.
  const FieldList f = TakeOk(RedriveFields(older, true, true));
  EXPECT_EQ(TakeOk(ReadRetryState(StreamEntry{"9-9", f, false})).decoded.body,
            R"({"id":"y","_retry_count":"0","_original_message_id":"1700000006000-0"})");
}

TEST(DeadLettersTest, FieldMapsAreRedrivenWithTheirFields) {
  StreamEntry plain{"1700000000000-1", {{"sku", "a1"}, {"qty", "2"}}, false};
  FailureRecord failure;
  failure.attempt = 1;
  failure.outcome = "terminated";
  DeadLetterContext context{"terminated", "orders", "h", "orders", absl::Now()};
  StreamEntry dl{"1700000002000-0",
                 DeadLetterFields(plain, ReadRetryState(plain), failure, context), false};
  const FieldList f = TakeOk(RedriveFields(dl, true, false));
  EXPECT_EQ(Field(f, "sku"), "a1");
  EXPECT_EQ(Field(f, "qty"), "2");
  EXPECT_EQ(Field(f, "x-redrive-attempt"), "1");
  EXPECT_EQ(Field(f, "x-redrive-original-id"), "1700000000000-1");
  const FieldList c = TakeOk(RedriveFields(dl, false, false));
  EXPECT_EQ(Field(c, "x-redrive-attempt"), "<absent>");
  EXPECT_EQ(Field(c, "sku"), "a1");
}

TEST(DeadLettersTest, FiltersValidateAndBecomeRanges) {
  v1::DeadLetterFilter f;
  EXPECT_TRUE(ValidateFilter(f, "filter").ok());
  EXPECT_EQ(FilterRange(f), (std::pair<std::string, std::string>{"-", "+"}));
  f.set_from_unix_ms(100);
  f.set_to_unix_ms(200);
  EXPECT_EQ(FilterRange(f), (std::pair<std::string, std::string>{"100-0", "(200-0"}));
  f.set_to_unix_ms(100);
  EXPECT_THAT(ValidateFilter(f, "filter"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not before")));
  f.set_to_unix_ms(-5);
  EXPECT_THAT(ValidateFilter(f, "filter"), StatusIs(absl::StatusCode::kInvalidArgument));
  f.Clear();
  for (int i = 0; i < 17; ++i) f.add_reasons("r");
  EXPECT_THAT(ValidateFilter(f, "filter"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 16")));
  f.Clear();
  f.add_reasons(std::string(65, 'r'));
  EXPECT_THAT(ValidateFilter(f, "filter"), StatusIs(absl::StatusCode::kInvalidArgument));

  v1::DeadLetter d;
  d.set_reason("poison");
  f.Clear();
  EXPECT_TRUE(MatchesReasons(d, f));
  f.add_reasons("max_retries");
  EXPECT_FALSE(MatchesReasons(d, f));
  f.add_reasons("poison");
  EXPECT_TRUE(MatchesReasons(d, f));
}

TEST(DeadLettersTest, ListRequestsValidateSizesAndCursors) {
  v1::ListDeadLettersRequest r;
  EXPECT_TRUE(ValidateListRequest(r).ok());
  r.set_page_size(1001);
  EXPECT_THAT(ValidateListRequest(r), StatusIs(absl::StatusCode::kInvalidArgument));
  r.set_page_size(1000);
  r.set_preview_bytes(65537);
  EXPECT_THAT(ValidateListRequest(r), StatusIs(absl::StatusCode::kInvalidArgument));
  r.set_preview_bytes(65536);
  r.set_cursor("o:12-3");
  EXPECT_TRUE(ValidateListRequest(r).ok());
  r.set_order(v1::ORDER_NEWEST_FIRST);
  EXPECT_THAT(ValidateListRequest(r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("other order")));
  r.set_cursor("n:12-3");
  EXPECT_TRUE(ValidateListRequest(r).ok());
  for (const char* bad : {"n:", "x:1-1", "n:abc", "n12-3"}) {
    r.set_cursor(bad);
    EXPECT_THAT(ValidateListRequest(r), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  r.set_cursor("");
  r.set_order(static_cast<v1::Order>(9));
  EXPECT_THAT(ValidateListRequest(r), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace redrive
