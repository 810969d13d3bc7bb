#include "daemon/backoff.h"

#include <gtest/gtest.h>

namespace redrive {
namespace {

v1::RetryPolicy Policy(uint32_t max_retries, uint32_t initial, double multiplier, uint32_t max,
                       double jitter) {
  v1::RetryPolicy p;
  p.set_max_retries(max_retries);
  p.set_initial_backoff_ms(initial);
  p.set_multiplier(multiplier);
  p.set_max_backoff_ms(max);
  p.set_jitter(jitter);
  return p;
}

TEST(BackoffTest, MaxRetriesFiveMeansSixCalls) {
  const v1::RetryPolicy p = Policy(5, 1000, 2.0, 300000, 0.1);
  for (uint32_t a = 1; a <= 5; ++a) EXPECT_FALSE(RetriesExhausted(p, a)) << a;
  EXPECT_TRUE(RetriesExhausted(p, 6));
  EXPECT_TRUE(RetriesExhausted(Policy(0, 1, 1.0, 1, 0), 1));
  v1::RetryPolicy unlimited = p;
  unlimited.set_unlimited(true);
  EXPECT_FALSE(RetriesExhausted(unlimited, 1'000'000));
}

TEST(BackoffTest, ExponentialWithCap) {
  const v1::RetryPolicy p = Policy(10, 100, 2.0, 1000, 0.0);
  EXPECT_EQ(RetryDelay(p, 1, 0.5), absl::Milliseconds(100));
  EXPECT_EQ(RetryDelay(p, 2, 0.5), absl::Milliseconds(200));
  EXPECT_EQ(RetryDelay(p, 3, 0.5), absl::Milliseconds(400));
  EXPECT_EQ(RetryDelay(p, 4, 0.5), absl::Milliseconds(800));
  EXPECT_EQ(RetryDelay(p, 5, 0.5), absl::Milliseconds(1000));
  EXPECT_EQ(RetryDelay(p, 4'000'000'000u, 0.5), absl::Milliseconds(1000));
}

TEST(BackoffTest, JitterIsUpwardOnlyAndBounded) {
  const v1::RetryPolicy p = Policy(10, 1000, 1.0, 1000, 0.5);
  EXPECT_EQ(RetryDelay(p, 1, 0.0), absl::Milliseconds(1000));
  EXPECT_EQ(RetryDelay(p, 1, 0.5), absl::Milliseconds(1250));
  EXPECT_EQ(RetryDelay(p, 1, 0.999), absl::Milliseconds(1500));
  EXPECT_EQ(RetryDelay(p, 1, 7.0), absl::Milliseconds(1500));  // clamped
}

TEST(BackoffTest, ZeroInitialMeansImmediate) {
  EXPECT_EQ(RetryDelay(Policy(3, 0, 2.0, 0, 0.1), 3, 0.9), absl::ZeroDuration());
}

}  // namespace
}  // namespace redrive
