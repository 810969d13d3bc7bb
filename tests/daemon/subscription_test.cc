#include "daemon/subscription.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;

v1::Register Valid() {
  v1::Register r;
  r.set_channel("orders");
  r.set_handler_id("h1");
  return r;
}

absl::StatusOr<SubscriptionSpec> Resolve(const v1::Register& r) {
  return ResolveRegistration(r, KeyStyle::kEggAI, "pod-1");
}

TEST(SubscriptionTest, DefaultsAndNames) {
  absl::StatusOr<SubscriptionSpec> s = Resolve(Valid());
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->max_in_flight, 64u);
  EXPECT_EQ(s->lease, absl::Seconds(30));
  EXPECT_EQ(s->start.kind(), v1::StartPosition::START_NEW);
  EXPECT_FALSE(s->auto_ack);
  ASSERT_TRUE(s->has_retry_policy);
  EXPECT_EQ(s->retry_policy.max_retries(), 5u);
  EXPECT_EQ(s->retry_policy.initial_backoff_ms(), 1000u);
  EXPECT_EQ(s->retry_policy.multiplier(), 2.0);
  EXPECT_EQ(s->retry_policy.max_backoff_ms(), 300000u);
  EXPECT_EQ(s->retry_policy.jitter(), 0.1);
  EXPECT_TRUE(s->retry_policy.defaults_applied());
  EXPECT_EQ(s->consumer, "h1-pod-1");
  const v1::Registered r = MakeRegistered(*s, "pod-1");
  EXPECT_EQ(r.names().stream(), "orders");
  EXPECT_EQ(r.names().group(), "h1");
  EXPECT_EQ(r.names().retry_stream(), "orders.h1.retry");
  EXPECT_EQ(r.names().retry_group(), "h1-retry");
  EXPECT_EQ(r.names().dlq_stream(), "orders.h1.dlq");
  EXPECT_EQ(r.names().consumer(), "h1-pod-1");
  EXPECT_EQ(r.instance_id(), "pod-1");
  EXPECT_EQ(r.lease_ms(), 30000u);
}

TEST(SubscriptionTest, ExplicitZeroRetriesIsKept) {
  v1::Register r = Valid();
  r.mutable_retry_policy()->set_max_retries(0);
  absl::StatusOr<SubscriptionSpec> s = Resolve(r);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->retry_policy.max_retries(), 0u);
  EXPECT_TRUE(s->retry_policy.defaults_applied());
}

TEST(SubscriptionTest, AutoAckHasNoRetryPolicy) {
  v1::Register r = Valid();
  r.set_auto_ack(true);
  absl::StatusOr<SubscriptionSpec> s = Resolve(r);
  ASSERT_THAT(s, IsOk());
  EXPECT_FALSE(s->has_retry_policy);
  EXPECT_FALSE(MakeRegistered(*s, "x").has_retry_policy());
}

TEST(SubscriptionTest, GroupStartIds) {
  v1::StartPosition p;
  EXPECT_EQ(GroupStartId(p), "$");
  p.set_kind(v1::StartPosition::START_BACKLOG);
  EXPECT_EQ(GroupStartId(p), "0");
  p.set_kind(v1::StartPosition::START_AT_ID);
  p.set_entry_id("17-3");
  EXPECT_EQ(GroupStartId(p), "17-3");
}

TEST(SubscriptionTest, EveryBadFieldIsInvalidArgumentNamingIt) {
  using C = absl::StatusCode;
  struct Case {
    std::function<void(v1::Register&)> edit;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](v1::Register& r) { r.clear_channel(); }, "register.channel is required"},
      {[](v1::Register& r) { r.set_channel("x.retry"); }, "register.channel"},
      {[](v1::Register& r) { r.clear_handler_id(); }, "register.handler_id is required"},
      {[](v1::Register& r) { r.set_handler_id("a/b"); }, "register.handler_id"},
      {[](v1::Register& r) { r.set_max_in_flight(10001); }, "register.max_in_flight"},
      {[](v1::Register& r) { r.set_lease_ms(999); }, "register.lease_ms"},
      {[](v1::Register& r) { r.set_lease_ms(86'400'001); }, "register.lease_ms"},
      {[](v1::Register& r) { r.mutable_start()->set_kind(v1::StartPosition::START_AT_ID); },
       "register.start.entry_id"},
      {[](v1::Register& r) { r.mutable_start()->set_entry_id("1-1"); }, "only allowed with START_AT_ID"},
      {[](v1::Register& r) { r.mutable_start()->set_kind(static_cast<v1::StartPosition::Kind>(9)); },
       "register.start.kind"},
      {[](v1::Register& r) { r.set_consumer_label("pod 1"); }, "register.consumer_label"},
      {[](v1::Register& r) { r.set_consumer_label(std::string(65, 'a')); }, "register.consumer_label"},
      {[](v1::Register& r) {
         r.set_auto_ack(true);
         r.mutable_retry_policy();
       },
       "register.auto_ack"},
      {[](v1::Register& r) {
         r.set_auto_ack(true);
         r.mutable_dead_letter_policy()->set_max_len(5);
       },
       "register.auto_ack"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_max_retries(1001); },
       "register.retry_policy.max_retries"},
      {[](v1::Register& r) {
         r.mutable_retry_policy()->set_unlimited(true);
         r.mutable_retry_policy()->set_max_retries(3);
       },
       "exclusive"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_multiplier(0.5); },
       "register.retry_policy.multiplier"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_multiplier(std::nan("")); },
       "register.retry_policy.multiplier"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_jitter(1.5); },
       "register.retry_policy.jitter"},
      {[](v1::Register& r) {
         r.mutable_retry_policy()->set_initial_backoff_ms(5000);
         r.mutable_retry_policy()->set_max_backoff_ms(100);
       },
       "register.retry_policy.max_backoff_ms"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_initial_backoff_ms(86'400'001); },
       "register.retry_policy.initial_backoff_ms"},
      {[](v1::Register& r) { r.mutable_dead_letter_policy()->set_max_len(10); },
       "explicit overflow policy"},
      {[](v1::Register& r) {
         r.mutable_dead_letter_policy()->set_overflow(v1::DeadLetterPolicy::OVERFLOW_HOLD);
       },
       "needs a max_len"},
      {[](v1::Register& r) { r.mutable_dead_letter_policy()->set_max_len(100'000'001); },
       "register.dead_letter_policy.max_len"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    v1::Register r = Valid();
    cases[i].edit(r);
    EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument, HasSubstr(cases[i].needle)))
        << "case " << i;
  }
}

TEST(SubscriptionTest, ClusterKeyStyle) {
  absl::StatusOr<SubscriptionSpec> s = ResolveRegistration(Valid(), KeyStyle::kCluster, "p");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->keys.stream, "{orders}");
  EXPECT_EQ(s->keys.retry_stream, "{orders}.h1.retry");
}

}  // namespace
}  // namespace redrive
