#include "daemon/keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;

TEST(KeysTest, EggAINamesMatchEggAI034) {
  // The example of docs/eggai-compat.md: agent order-service, handler handle_order.
  const HandlerKeys k =
      MakeHandlerKeys("eggai.orders", "order-service-handle_order-1", KeyStyle::kEggAI);
  EXPECT_EQ(k.stream, "eggai.orders");
  EXPECT_EQ(k.group, "order-service-handle_order-1");
  EXPECT_EQ(k.retry_stream, "eggai.orders.order-service-handle_order-1.retry");
  EXPECT_EQ(k.retry_group, "order-service-handle_order-1-retry");
  EXPECT_EQ(k.dlq_stream, "eggai.orders.order-service-handle_order-1.dlq");
}

TEST(KeysTest, ClusterNamesShareOneHashTagPerChannel) {
  const HandlerKeys k = MakeHandlerKeys("orders", "h1", KeyStyle::kCluster);
  EXPECT_EQ(k.stream, "{orders}");
  EXPECT_EQ(k.group, "h1");
  EXPECT_EQ(k.retry_stream, "{orders}.h1.retry");
  EXPECT_EQ(k.retry_group, "h1-retry");
  EXPECT_EQ(k.dlq_stream, "{orders}.h1.dlq");
}

TEST(KeysTest, HandlersOnOneChannelGetDisjointRetryAndDlqKeys) {
  const HandlerKeys a = MakeHandlerKeys("orders", "a", KeyStyle::kEggAI);
  const HandlerKeys b = MakeHandlerKeys("orders", "b", KeyStyle::kEggAI);
  EXPECT_EQ(a.stream, b.stream);
  EXPECT_NE(a.retry_stream, b.retry_stream);
  EXPECT_NE(a.dlq_stream, b.dlq_stream);
  EXPECT_NE(a.retry_group, b.retry_group);
}

TEST(KeysTest, LegacySharedKeys) {
  EXPECT_EQ(LegacyRetryStream("eggai.orders", KeyStyle::kEggAI), "eggai.orders.retry");
  EXPECT_EQ(LegacyDlqStream("eggai.orders", KeyStyle::kEggAI), "eggai.orders.dlq");
  EXPECT_EQ(LegacyRetryStream("orders", KeyStyle::kCluster), "{orders}.retry");
}

TEST(KeysTest, ConsumerNameIsHandlerAndInstance) {
  EXPECT_EQ(ConsumerName("h1", "pod-7-123"), "h1-pod-7-123");
  EXPECT_EQ(ConsumerName("h1", "pod-7-123", ""), "h1-pod-7-123");
}

TEST(KeysTest, ConsumerNameCarriesTheLabelBeforeTheInstance) {
  EXPECT_EQ(ConsumerName("h1", "pod-7-123", "web-5f9c"), "h1-web-5f9c-pod-7-123");
}

TEST(KeysTest, ChannelGrammar) {
  EXPECT_THAT(ValidateChannel("eggai.orders"), IsOk());
  EXPECT_THAT(ValidateChannel("a/b:c-d_e.f"), IsOk());
  EXPECT_THAT(ValidateChannel(std::string(200, 'x')), IsOk());
  EXPECT_THAT(ValidateChannel(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("channel is required")));
  EXPECT_THAT(ValidateChannel(std::string(201, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 200")));
  EXPECT_THAT(ValidateChannel("orders new"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at byte 6")));
  EXPECT_THAT(ValidateChannel("{orders}"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateChannel(".orders"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateChannel("orders.h.retry"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(".retry or .dlq")));
  EXPECT_THAT(ValidateChannel("orders.dlq"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateChannel("caf\xc3\xa9"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateChannel("x", "messages[2].channel"), IsOk());
  EXPECT_THAT(ValidateChannel("", "register.channel"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("register.channel")));
}

TEST(KeysTest, HandlerIdGrammar) {
  EXPECT_THAT(ValidateHandlerId("order-service-handle_order-1"), IsOk());
  EXPECT_THAT(ValidateHandlerId("a:b.c"), IsOk());
  EXPECT_THAT(ValidateHandlerId(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("handler_id is required")));
  EXPECT_THAT(ValidateHandlerId("a/b"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateHandlerId(std::string(201, 'h')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(KeysTest, EntryIds) {
  EXPECT_TRUE(IsValidEntryId("1700000000000-0"));
  EXPECT_TRUE(IsValidEntryId("0"));
  EXPECT_TRUE(IsValidEntryId("18446744073709551615-18446744073709551615"));
  EXPECT_FALSE(IsValidEntryId(""));
  EXPECT_FALSE(IsValidEntryId("-1"));
  EXPECT_FALSE(IsValidEntryId("1-"));
  EXPECT_FALSE(IsValidEntryId("1-2-3"));
  EXPECT_FALSE(IsValidEntryId("$"));
  EXPECT_FALSE(IsValidEntryId("18446744073709551616-0"));
  EXPECT_FALSE(IsValidEntryId("+1-0"));
}

TEST(KeysTest, PresenceFieldsAreTellableFromRegistrations) {
  EXPECT_EQ(PresenceField("orders", "billing", "pod-7"), "orders billing pod-7");
  EXPECT_EQ(PresenceInstance("orders billing pod-7", "orders", "billing"), "pod-7");
  // Another handler whose id starts the same, a registration, no instance.
  EXPECT_EQ(PresenceInstance("orders billing-2 pod-7", "orders", "billing"), std::nullopt);
  EXPECT_EQ(PresenceInstance("orders billing", "orders", "billing"), std::nullopt);
  EXPECT_EQ(PresenceInstance("orders billing ", "orders", "billing"), std::nullopt);
  EXPECT_EQ(PresenceInstance("orders billing a b", "orders", "billing"), std::nullopt);
  EXPECT_TRUE(IsPresenceField("orders billing pod-7"));
  EXPECT_FALSE(IsPresenceField(RegistryField("orders", "billing")));
  EXPECT_LT(kPresenceInterval * 3, kPresenceTtl);
}

}  // namespace
}  // namespace redrive
