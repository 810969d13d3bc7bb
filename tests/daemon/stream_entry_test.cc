#include "daemon/stream_entry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::StatusIs;

RedisReply Entry(const std::string& id, std::vector<std::string> fields) {
  std::vector<RedisReply> f;
  for (std::string& s : fields) f.push_back(RedisReply::String(std::move(s)));
  return RedisReply::Array({RedisReply::String(id), RedisReply::Array(std::move(f))});
}

TEST(StreamEntryTest, ParsesReadReplyForItsStream) {
  RedisReply reply = RedisReply::Array({RedisReply::Array(
      {RedisReply::String("orders"),
       RedisReply::Array({Entry("1-0", {"__data__", "x"}), Entry("1-1", {"a", "b", "c", "d"})})})});
  absl::StatusOr<std::vector<StreamEntry>> entries = ParseReadReply(reply, "orders");
  ASSERT_THAT(entries, IsOk());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].id, "1-0");
  EXPECT_EQ((*entries)[1].fields, (FieldList{{"a", "b"}, {"c", "d"}}));
  EXPECT_TRUE(ParseReadReply(reply, "other")->empty());
  EXPECT_TRUE(ParseReadReply(RedisReply::Nil(), "orders")->empty());
  EXPECT_THAT(ParseReadReply(RedisReply::Integer(3), "orders"),
              StatusIs(absl::StatusCode::kInternal));
}

TEST(StreamEntryTest, DeletedEntriesAreMarked) {
  RedisReply list =
      RedisReply::Array({RedisReply::Array({RedisReply::String("5-0"), RedisReply::Nil()})});
  absl::StatusOr<std::vector<StreamEntry>> entries = ParseEntryList(list);
  ASSERT_THAT(entries, IsOk());
  EXPECT_TRUE((*entries)[0].deleted);
}

TEST(StreamEntryTest, SplitsReservedHeadersIntoTheirFields) {
  StreamEntry e;
  e.id = "1-0";
  e.fields = {{"__data__", SpecEnvelope({{"correlation_id", "c1"},
                                         {"content-type", "application/json"},
                                         {"reply_to", "r"},
                                         {"x", "y"},
                                         {"traceparent", "tp"},
                                         {"tracestate", "ts"}},
                                        "{}")}};
  v1::Delivery d;
  ASSERT_THAT(FillMessage(e, d), IsOk());
  EXPECT_EQ(d.payload(), "{}");
  EXPECT_EQ(d.correlation_id(), "c1");
  EXPECT_EQ(d.content_type(), "application/json");
  ASSERT_EQ(d.headers_size(), 2);
  EXPECT_EQ(d.headers(0).key(), "reply_to");
  EXPECT_EQ(d.headers(1).key(), "x");
  EXPECT_EQ(d.trace().traceparent(), "tp");
  EXPECT_EQ(d.trace().tracestate(), "ts");
  EXPECT_EQ(d.source_format(), v1::SOURCE_FORMAT_BINARY_V1);
}

TEST(StreamEntryTest, TraceparentFromEggAIJsonBody) {
  StreamEntry e;
  e.fields = {{"__data__", SpecEnvelope({{"correlation_id", "c"}},
                                        R"({"id":"1","traceparent":"00-aa-bb-01","data":{}})")}};
  v1::Delivery d;
  ASSERT_THAT(FillMessage(e, d), IsOk());
  EXPECT_EQ(d.trace().traceparent(), "00-aa-bb-01");
  v1::Delivery plain;
  e.fields = {{"__data__", SpecEnvelope({{"correlation_id", "c"}}, "[1,2]")}};
  ASSERT_THAT(FillMessage(e, plain), IsOk());
  EXPECT_FALSE(plain.has_trace());
}

TEST(StreamEntryTest, FieldMapsBecomeJsonWhenUtf8) {
  StreamEntry e;
  e.fields = {{"order", "42"}, {"note", "caf\xc3\xa9"}};
  v1::Delivery d;
  ASSERT_THAT(FillMessage(e, d), IsOk());
  EXPECT_EQ(d.source_format(), v1::SOURCE_FORMAT_FIELDS);
  EXPECT_EQ(d.payload(), "{\"order\":\"42\",\"note\":\"caf\xc3\xa9\"}");
  EXPECT_EQ(d.content_type(), "application/json");
  ASSERT_EQ(d.fields_size(), 2);

  StreamEntry binary;
  binary.fields = {{"blob", std::string("\xff\x00", 2)}};
  v1::Delivery b;
  ASSERT_THAT(FillMessage(binary, b), IsOk());
  EXPECT_EQ(b.payload(), "");
  EXPECT_EQ(b.content_type(), "");
  ASSERT_EQ(b.fields_size(), 1);
  EXPECT_EQ(b.fields(0).value(), std::string("\xff\x00", 2));
}

TEST(StreamEntryTest, CorruptEnvelopeReportsDataLossAndKeepsRawBytes) {
  std::string corrupt = SpecEnvelope({{"k", "v"}}, "body");
  corrupt[14] = '\x7f';  // data_start far beyond the end
  StreamEntry e;
  e.fields = {{"__data__", corrupt}};
  v1::Delivery d;
  EXPECT_THAT(FillMessage(e, d), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(d.payload(), corrupt);
  EXPECT_EQ(d.source_format(), v1::SOURCE_FORMAT_RAW);
}

}  // namespace
}  // namespace redrive
