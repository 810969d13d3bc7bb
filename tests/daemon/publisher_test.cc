#include "daemon/publisher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/fakes/fake_redis.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::FakeRedis;
using ::redrive::testing::IsOk;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kUuid[] = "00000000-0000-4000-8000-000000000001";
constexpr char kTraceparent[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

class PublisherTest : public ::testing::Test {
 protected:
  PublisherTest() : publisher_(Limits(), KeyStyle::kEggAI, [] { return std::string(kUuid); }) {}

  static PublishLimits Limits() {
    PublishLimits l;
    l.max_payload_bytes = 100;
    l.max_headers = 3;
    l.max_header_bytes = 50;
    l.max_batch_messages = 4;
    return l;
  }

  static v1::PublishRequest Request(std::string channel, std::string payload) {
    v1::PublishRequest r;
    r.set_channel(std::move(channel));
    r.mutable_message()->set_payload(std::move(payload));
    return r;
  }

  Publisher publisher_;
  FakeRedis redis_;
};

TEST_F(PublisherTest, EncodesFastStreamHeaderOrderWithByteLengths) {
  v1::PublishRequest r = Request("orders", "{\"id\":1}");
  v1::OutgoingMessage& m = *r.mutable_message();
  m.set_content_type("application/json");
  m.set_reply_to("replies");
  auto* h = m.add_headers();
  h->set_key("x-city");
  h->set_value("Z\xc3\xbcrich");  // non-ASCII: byte length 7, 6 characters
  m.mutable_trace()->set_traceparent(kTraceparent);
  m.mutable_trace()->set_tracestate("k=v");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(r);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->stream, "orders");
  EXPECT_THAT(p->correlation_ids, ElementsAre(kUuid));
  ASSERT_EQ(p->envelopes.size(), 1u);
  EXPECT_EQ(p->envelopes[0], SpecEnvelope({{"correlation_id", kUuid},
                                           {"content-type", "application/json"},
                                           {"reply_to", "replies"},
                                           {"x-city", "Z\xc3\xbcrich"},
                                           {"traceparent", kTraceparent},
                                           {"tracestate", "k=v"}},
                                          "{\"id\":1}"));
}

TEST_F(PublisherTest, KeepsGivenCorrelationIdAndOmitsEmptyOptionalHeaders) {
  v1::PublishRequest r = Request("orders", std::string("\x00\xff", 2));
  r.mutable_message()->set_correlation_id("c-1");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(r);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->envelopes[0], SpecEnvelope({{"correlation_id", "c-1"}}, std::string("\x00\xff", 2)));
}

TEST_F(PublisherTest, WriteIsOneXaddOfDataField) {
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(Request("orders", "x"));
  ASSERT_THAT(p, IsOk());
  redis_.replies.push_back(RedisReply::String("1-0"));
  absl::StatusOr<std::vector<std::string>> ids = publisher_.Write(redis_, *p);
  ASSERT_THAT(ids, IsOk());
  EXPECT_THAT(*ids, ElementsAre("1-0"));
  ASSERT_EQ(redis_.commands.size(), 1u);
  EXPECT_THAT(redis_.commands[0], ElementsAre("XADD", "orders", "*", "__data__", p->envelopes[0]));
}

TEST_F(PublisherTest, MaxLenIsApproximateTrim) {
  v1::PublishRequest r = Request("orders", "x");
  r.set_max_len(1000);
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(r);
  ASSERT_THAT(p, IsOk());
  redis_.replies.push_back(RedisReply::String("1-0"));
  ASSERT_THAT(publisher_.Write(redis_, *p), IsOk());
  EXPECT_THAT(redis_.commands[0], ElementsAre("XADD", "orders", "MAXLEN", "~", "1000", "*",
                                              "__data__", p->envelopes[0]));
}

TEST_F(PublisherTest, BatchIsOneTransactionAndReturnsIdsInOrder) {
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  b.add_messages()->set_payload("a");
  b.add_messages()->set_payload("b");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(b);
  ASSERT_THAT(p, IsOk());
  redis_.replies = {RedisReply::Status("OK"), RedisReply::Status("QUEUED"),
                    RedisReply::Status("QUEUED"),
                    RedisReply::Array({RedisReply::String("5-0"), RedisReply::String("5-1")})};
  absl::StatusOr<std::vector<std::string>> ids = publisher_.Write(redis_, *p);
  ASSERT_THAT(ids, IsOk());
  EXPECT_THAT(*ids, ElementsAre("5-0", "5-1"));
  ASSERT_EQ(redis_.commands.size(), 4u);
  EXPECT_THAT(redis_.commands[0], ElementsAre("MULTI"));
  EXPECT_THAT(redis_.commands[1], ElementsAre("XADD", "orders", "*", "__data__",
                                              SpecEnvelope({{"correlation_id", kUuid}}, "a")));
  EXPECT_THAT(redis_.commands[2], ElementsAre("XADD", "orders", "*", "__data__",
                                              SpecEnvelope({{"correlation_id", kUuid}}, "b")));
  EXPECT_THAT(redis_.commands[3], ElementsAre("EXEC"));
}

TEST_F(PublisherTest, WrongTypeKeyIsFailedPrecondition) {
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(Request("orders", "x"));
  ASSERT_THAT(p, IsOk());
  redis_.replies.push_back(
      RedisReply::Error("WRONGTYPE Operation against a key holding the wrong kind of value"));
  EXPECT_THAT(publisher_.Write(redis_, *p),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a stream")));
}

TEST_F(PublisherTest, RedisDownIsUnavailable) {
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(Request("orders", "x"));
  ASSERT_THAT(p, IsOk());
  redis_.transport = absl::UnavailableError("redis down");
  EXPECT_THAT(publisher_.Write(redis_, *p), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(PublisherTest, RejectsBadInputNamingTheField) {
  using C = absl::StatusCode;
  EXPECT_THAT(publisher_.Prepare(Request("", "x")),
              StatusIs(C::kInvalidArgument, HasSubstr("channel is required")));
  EXPECT_THAT(publisher_.Prepare(Request("bad channel", "x")),
              StatusIs(C::kInvalidArgument, HasSubstr("channel")));
  v1::PublishRequest no_message;
  no_message.set_channel("orders");
  EXPECT_THAT(publisher_.Prepare(no_message),
              StatusIs(C::kInvalidArgument, HasSubstr("message is required")));
  EXPECT_THAT(publisher_.Prepare(Request("orders", std::string(101, 'x'))),
              StatusIs(C::kResourceExhausted, HasSubstr("message.payload is 101 bytes")));
  EXPECT_THAT(publisher_.Prepare(Request("orders", std::string(100, 'x'))), IsOk());

  v1::PublishRequest r = Request("orders", "x");
  r.set_max_len(kMaxStreamLength + 1);
  EXPECT_THAT(publisher_.Prepare(r), StatusIs(C::kInvalidArgument, HasSubstr("max_len")));

  r = Request("orders", "x");
  for (int i = 0; i < 4; ++i) {
    auto* h = r.mutable_message()->add_headers();
    h->set_key("k");
    h->set_value("v");
  }
  EXPECT_THAT(publisher_.Prepare(r),
              StatusIs(C::kResourceExhausted, HasSubstr("message.headers has 4 entries")));

  r = Request("orders", "x");
  auto* h = r.mutable_message()->add_headers();
  h->set_key("k");
  h->set_value(std::string(50, 'v'));
  EXPECT_THAT(publisher_.Prepare(r),
              StatusIs(C::kResourceExhausted, HasSubstr("message.headers total 51 bytes")));

  r = Request("orders", "x");
  r.mutable_message()->add_headers()->set_value("v");
  EXPECT_THAT(publisher_.Prepare(r),
              StatusIs(C::kInvalidArgument, HasSubstr("message.headers[0].key is empty")));

  r = Request("orders", "x");
  h = r.mutable_message()->add_headers();
  h->set_key("Content-Type");
  EXPECT_THAT(publisher_.Prepare(r), StatusIs(C::kInvalidArgument, HasSubstr("reserved")));

  r = Request("orders", "x");
  r.mutable_message()->mutable_trace()->set_traceparent("00-abc");
  EXPECT_THAT(publisher_.Prepare(r),
              StatusIs(C::kInvalidArgument, HasSubstr("message.trace.traceparent")));

  r = Request("orders", "x");
  r.mutable_message()->set_correlation_id(std::string(257, 'c'));
  EXPECT_THAT(publisher_.Prepare(r),
              StatusIs(C::kInvalidArgument, HasSubstr("message.correlation_id is 257 bytes")));
}

TEST_F(PublisherTest, BatchLimitsNameTheMessage) {
  using C = absl::StatusCode;
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  EXPECT_THAT(publisher_.Prepare(b), StatusIs(C::kInvalidArgument, HasSubstr("messages is empty")));
  for (int i = 0; i < 5; ++i) b.add_messages()->set_payload("x");
  EXPECT_THAT(publisher_.Prepare(b),
              StatusIs(C::kResourceExhausted, HasSubstr("messages has 5 entries")));
  b.mutable_messages()->RemoveLast();
  b.mutable_messages(2)->set_payload(std::string(101, 'x'));
  EXPECT_THAT(publisher_.Prepare(b),
              StatusIs(C::kResourceExhausted, HasSubstr("messages[2].payload")));
}

constexpr char kCallTraceparent[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

v1::TraceContext CallTrace(std::string traceparent, std::string tracestate) {
  v1::TraceContext t;
  t.set_traceparent(std::move(traceparent));
  t.set_tracestate(std::move(tracestate));
  return t;
}

TEST_F(PublisherTest, MessageWithoutTraceGetsTheCallsTraceContext) {
  absl::StatusOr<PreparedPublish> p =
      publisher_.Prepare(Request("orders", "x"), CallTrace(kCallTraceparent, "vendor=1"));
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->envelopes[0], SpecEnvelope({{"correlation_id", kUuid},
                                           {"traceparent", kCallTraceparent},
                                           {"tracestate", "vendor=1"}},
                                          "x"));
}

TEST_F(PublisherTest, MessagesOwnTraceparentWinsOverTheCalls) {
  v1::PublishRequest r = Request("orders", "x");
  r.mutable_message()->mutable_trace()->set_traceparent(kTraceparent);
  absl::StatusOr<PreparedPublish> p =
      publisher_.Prepare(r, CallTrace(kCallTraceparent, "vendor=1"));
  ASSERT_THAT(p, IsOk());
  // The message's whole trace context: its (empty) tracestate too.
  EXPECT_EQ(p->envelopes[0],
            SpecEnvelope({{"correlation_id", kUuid}, {"traceparent", kTraceparent}}, "x"));
}

TEST_F(PublisherTest, BatchAppliesTheCallsTraceToEachMessageWithoutOne) {
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  b.add_messages()->set_payload("a");
  v1::OutgoingMessage* own = b.add_messages();
  own->set_payload("b");
  own->mutable_trace()->set_traceparent(kTraceparent);
  own->mutable_trace()->set_tracestate("mine=2");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(b, CallTrace(kCallTraceparent, ""));
  ASSERT_THAT(p, IsOk());
  ASSERT_EQ(p->envelopes.size(), 2u);
  EXPECT_EQ(p->envelopes[0],
            SpecEnvelope({{"correlation_id", kUuid}, {"traceparent", kCallTraceparent}}, "a"));
  EXPECT_EQ(p->envelopes[1], SpecEnvelope({{"correlation_id", kUuid},
                                           {"traceparent", kTraceparent},
                                           {"tracestate", "mine=2"}},
                                          "b"));
}

TEST_F(PublisherTest, NoCallTraceLeavesTheMessageAsItIs) {
  v1::PublishRequest r = Request("orders", "x");
  r.mutable_message()->mutable_trace()->set_tracestate("only=state");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(r, v1::TraceContext());
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->envelopes[0],
            SpecEnvelope({{"correlation_id", kUuid}, {"tracestate", "only=state"}}, "x"));
}

TEST(TraceparentTest, W3CFormat) {
  EXPECT_TRUE(IsValidTraceparent(kTraceparent));
  EXPECT_FALSE(IsValidTraceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01"));
  EXPECT_FALSE(IsValidTraceparent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"));
  EXPECT_FALSE(IsValidTraceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
  EXPECT_FALSE(IsValidTraceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"));
  EXPECT_FALSE(IsValidTraceparent(""));
}

TEST(UuidTest, RandomUuidIsVersion4) {
  const std::string a = RandomUuid();
  const std::string b = RandomUuid();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[8], '-');
  EXPECT_EQ(a[14], '4');
  EXPECT_THAT(std::string("89ab"), HasSubstr(std::string(1, a[19])));
}

}  // namespace
}  // namespace redrive
