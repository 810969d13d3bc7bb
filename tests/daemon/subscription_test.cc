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
      {[](v1::Register& r) { r.mutable_start()->set_entry_id("1-1"); },
       "only allowed with START_AT_ID"},
      {[](v1::Register& r) {
         r.mutable_start()->set_kind(static_cast<v1::StartPosition::Kind>(9));
       },
       "register.start.kind"},
      {[](v1::Register& r) { r.set_consumer_label("pod 1"); }, "register.consumer_label"},
      {[](v1::Register& r) { r.set_consumer_label(std::string(65, 'a')); },
       "register.consumer_label"},
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

// Issue 10 item 14a: integer fields printed through a double ("1e+09").
TEST(SubscriptionTest, OutOfRangeMessagesPrintIntegersAsIntegers) {
  using C = absl::StatusCode;
  v1::Register r = Valid();
  r.set_max_in_flight(1'000'000'000);
  EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument,
                                   "register.max_in_flight 1000000000 is outside 1..10000"));
  r = Valid();
  r.set_lease_ms(4'000'000'000u);
  EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument,
                                   "register.lease_ms 4000000000 is outside 1000..86400000"));
  r = Valid();
  r.mutable_retry_policy()->set_max_retries(2'000'000);
  EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument,
                                   "register.retry_policy.max_retries 2000000 is outside 0..1000"));
  r = Valid();
  r.mutable_retry_policy()->set_initial_backoff_ms(100'000'000);
  EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument,
                                   "register.retry_policy.initial_backoff_ms 100000000 is "
                                   "outside 0..86400000"));
  r = Valid();
  r.mutable_retry_policy()->set_initial_backoff_ms(5'000'000);
  r.mutable_retry_policy()->set_max_backoff_ms(1'000'000);
  EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument,
                                   "register.retry_policy.max_backoff_ms 1000000 is outside "
                                   "5000000..86400000"));
  r = Valid();
  r.mutable_dead_letter_policy()->set_max_len(123'456'789'012ull);
  r.mutable_dead_letter_policy()->set_overflow(v1::DeadLetterPolicy::OVERFLOW_HOLD);
  EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument,
                                   "register.dead_letter_policy.max_len 123456789012 is outside "
                                   "0..100000000"));
  // Fractions stay fractions.
  r = Valid();
  r.mutable_retry_policy()->set_multiplier(12.5);
  EXPECT_THAT(Resolve(r), StatusIs(C::kInvalidArgument,
                                   "register.retry_policy.multiplier 12.5 is outside 1..10"));
  r = Valid();
  r.mutable_retry_policy()->set_jitter(1.25);
  EXPECT_THAT(Resolve(r),
              StatusIs(C::kInvalidArgument, "register.retry_policy.jitter 1.25 is outside 0..1"));
}

// Issue 10 item 8.
TEST(SubscriptionTest, ConsumerLabelAppearsInTheConsumerName) {
  v1::Register r = Valid();
  r.set_consumer_label("web-5f9c.x_1");
  absl::StatusOr<SubscriptionSpec> s = Resolve(r);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->consumer, "h1-web-5f9c.x_1-pod-1");
  EXPECT_EQ(MakeRegistered(*s, "pod-1").names().consumer(), "h1-web-5f9c.x_1-pod-1");
  ASSERT_THAT(Resolve(Valid()), IsOk());
  EXPECT_EQ(Resolve(Valid())->consumer, "h1-pod-1");
}

// Issue 10 item 9: one handler, one policy per daemon.
TEST(SubscriptionTest, CheckSamePolicyNamesTheFirstDisagreeingFieldAndBothValues) {
  using C = absl::StatusCode;
  auto spec = [](const std::function<void(v1::Register&)>& edit) {
    v1::Register r = Valid();
    r.mutable_retry_policy()->set_max_retries(5);
    edit(r);
    absl::StatusOr<SubscriptionSpec> s = Resolve(r);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? *std::move(s) : SubscriptionSpec{};
  };
  const SubscriptionSpec registered = spec([](v1::Register&) {});
  const std::string tail =
      " (handler 'h1' on 'orders' is registered on this daemon; every registration of a "
      "handler must agree)";
  struct Case {
    std::function<void(v1::Register&)> edit;
    std::string message;  // "" = accepted
  };
  const std::vector<Case> cases = {
      {[](v1::Register&) {}, ""},
      // Per-stream settings may differ.
      {[](v1::Register& r) {
         r.set_max_in_flight(3);
         r.set_lease_ms(5000);
         r.set_consumer_label("other");
         r.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
       },
       ""},
      // Defaults spelled out are the same policy.
      {[](v1::Register& r) {
         r.mutable_retry_policy()->set_initial_backoff_ms(1000);
         r.mutable_retry_policy()->set_multiplier(2.0);
       },
       ""},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_max_retries(3); },
       "register.retry_policy.max_retries: 3 differs from the registered 5"},
      {[](v1::Register& r) {
         r.mutable_retry_policy()->clear_max_retries();
         r.mutable_retry_policy()->set_unlimited(true);
       },
       "register.retry_policy.unlimited: true differs from the registered false"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_initial_backoff_ms(250); },
       "register.retry_policy.initial_backoff_ms: 250 differs from the registered 1000"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_multiplier(1.5); },
       "register.retry_policy.multiplier: 1.5 differs from the registered 2"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_max_backoff_ms(60000); },
       "register.retry_policy.max_backoff_ms: 60000 differs from the registered 300000"},
      {[](v1::Register& r) { r.mutable_retry_policy()->set_jitter(0.25); },
       "register.retry_policy.jitter: 0.25 differs from the registered 0.1"},
      {[](v1::Register& r) {
         r.mutable_dead_letter_policy()->set_max_len(1000);
         r.mutable_dead_letter_policy()->set_overflow(v1::DeadLetterPolicy::OVERFLOW_HOLD);
       },
       "register.dead_letter_policy.max_len: 1000 differs from the registered 0"},
      {[](v1::Register& r) {
         r.clear_retry_policy();
         r.set_auto_ack(true);
       },
       "register.auto_ack: true differs from the registered false"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const absl::Status status = CheckSamePolicy(registered, spec(cases[i].edit));
    if (cases[i].message.empty()) {
      EXPECT_THAT(status, IsOk()) << "case " << i;
    } else {
      EXPECT_THAT(status, StatusIs(C::kFailedPrecondition, cases[i].message + tail))
          << "case " << i;
    }
  }
  // Overflow alone (same cap).
  auto capped = [&](v1::DeadLetterPolicy::Overflow o) {
    return spec([o](v1::Register& r) {
      r.mutable_dead_letter_policy()->set_max_len(10);
      r.mutable_dead_letter_policy()->set_overflow(o);
    });
  };
  EXPECT_THAT(CheckSamePolicy(capped(v1::DeadLetterPolicy::OVERFLOW_HOLD),
                              capped(v1::DeadLetterPolicy::OVERFLOW_EVICT_OLDEST)),
              StatusIs(C::kFailedPrecondition,
                       "register.dead_letter_policy.overflow: OVERFLOW_EVICT_OLDEST differs from "
                       "the registered OVERFLOW_HOLD" +
                           tail));
}

TEST(SubscriptionTest, ClusterKeyStyle) {
  absl::StatusOr<SubscriptionSpec> s = ResolveRegistration(Valid(), KeyStyle::kCluster, "p");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->keys.stream, "{orders}");
  EXPECT_EQ(s->keys.retry_stream, "{orders}.h1.retry");
}

}  // namespace
}  // namespace redrive
