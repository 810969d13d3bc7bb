#include "daemon/trace_context.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/envelope.h"
#include "daemon/stream_entry.h"

namespace redrive {
namespace {

constexpr char kTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";

TEST(TraceIdOfTest, IsTheTraceIdPartOfAValidTraceparent) {
  EXPECT_EQ(TraceIdOf(kTraceparent), kTraceId);
  EXPECT_EQ(TraceIdOf(""), "");
  EXPECT_EQ(TraceIdOf("00-4bf92f3577b34da6a3ce929d0e0e4736"), "");
  EXPECT_EQ(TraceIdOf("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), "");
}

TEST(TraceFromMetadataTest, NoTraceparentIsNothing) {
  MetadataTrace t = TraceFromMetadata({}, {"a=b"});
  EXPECT_EQ(t.trace.traceparent(), "");
  EXPECT_EQ(t.trace.tracestate(), "");
  EXPECT_EQ(t.ignored, "");
}

TEST(TraceFromMetadataTest, ValidTraceparentAndJoinedTracestates) {
  std::vector<absl::string_view> parents = {kTraceparent};
  std::vector<absl::string_view> states = {"a=1,b=2", "c=3"};
  MetadataTrace t = TraceFromMetadata(parents, states);
  EXPECT_EQ(t.trace.traceparent(), kTraceparent);
  EXPECT_EQ(t.trace.tracestate(), "a=1,b=2,c=3");
  EXPECT_EQ(t.ignored, "");
}

TEST(TraceFromMetadataTest, InvalidOrRepeatedTraceparentIsIgnoredWithAReason) {
  std::vector<absl::string_view> states = {"a=1"};
  std::vector<absl::string_view> bad = {"00-xyz"};
  MetadataTrace t = TraceFromMetadata(bad, states);
  EXPECT_EQ(t.trace.traceparent(), "");
  EXPECT_EQ(t.trace.tracestate(), "");
  EXPECT_EQ(t.ignored,
            "the call's traceparent is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)");
  std::vector<absl::string_view> two = {kTraceparent, kTraceparent};
  t = TraceFromMetadata(two, states);
  EXPECT_EQ(t.trace.traceparent(), "");
  EXPECT_EQ(t.ignored, "the call sent 2 traceparent values");
}

TEST(TraceFromMetadataTest, OversizedOrNonAsciiTracestateAloneIsDropped) {
  std::vector<absl::string_view> parents = {kTraceparent};
  const std::string big(kMaxTracestate + 1, 'a');
  std::vector<absl::string_view> states = {big};
  MetadataTrace t = TraceFromMetadata(parents, states);
  EXPECT_EQ(t.trace.traceparent(), kTraceparent);
  EXPECT_EQ(t.trace.tracestate(), "");
  EXPECT_EQ(t.ignored, "the call's tracestate is 257 bytes; at most 256 are kept");
  std::vector<absl::string_view> control = {"a=\x01"};
  t = TraceFromMetadata(parents, control);
  EXPECT_EQ(t.trace.traceparent(), kTraceparent);
  EXPECT_EQ(t.trace.tracestate(), "");
  EXPECT_EQ(t.ignored, "the call's tracestate is not printable ASCII");
}

TEST(TraceparentOfTest, ReadsTheHeaderOfABinaryEnvelope) {
  absl::StatusOr<std::string> data =
      EncodeBinaryV1({{"correlation_id", "c"}, {"traceparent", kTraceparent}}, "body");
  ASSERT_TRUE(data.ok());
  StreamEntry e{"1-0", {{"__data__", *data}}, false};
  EXPECT_EQ(TraceparentOf(e), kTraceparent);
}

TEST(TraceparentOfTest, ReadsAnEggAiJsonBody) {
  absl::StatusOr<std::string> data = EncodeBinaryV1(
      {{"correlation_id", "c"}}, std::string("{\"traceparent\":\"") + kTraceparent + "\"}");
  ASSERT_TRUE(data.ok());
  StreamEntry e{"1-0", {{"__data__", *data}}, false};
  EXPECT_EQ(TraceparentOf(e), kTraceparent);
}

TEST(TraceparentOfTest, NoneOrUndecodableIsEmpty) {
  absl::StatusOr<std::string> data = EncodeBinaryV1({{"correlation_id", "c"}}, "body");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(TraceparentOf(StreamEntry{"1-0", {{"__data__", *data}}, false}), "");
  // Binary magic, then garbage: poison.
  EXPECT_EQ(TraceparentOf(StreamEntry{"1-0", {{"__data__", data->substr(0, 12)}}, false}), "");
  EXPECT_EQ(TraceparentOf(StreamEntry{"1-0", {{"traceparent", kTraceparent}}, false}), "");
}

}  // namespace
}  // namespace redrive
