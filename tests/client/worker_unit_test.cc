// The pure parts of the C++ worker: reconnect backoff and Result.
#include <gtest/gtest.h>

#include "redrive/worker.h"

namespace redrive {
namespace {

TEST(ReconnectDelayTest, DoublesFromInitialUpToTheCapWithinHalfToFull) {
  const absl::Duration initial = absl::Milliseconds(100);
  const absl::Duration max = absl::Seconds(5);
  EXPECT_EQ(ReconnectDelay(initial, max, 0, 0.0), absl::Milliseconds(50));
  EXPECT_EQ(ReconnectDelay(initial, max, 0, 1.0), absl::Milliseconds(100));
  EXPECT_EQ(ReconnectDelay(initial, max, 1, 1.0), absl::Milliseconds(200));
  EXPECT_EQ(ReconnectDelay(initial, max, 3, 0.5), absl::Milliseconds(600));
  EXPECT_EQ(ReconnectDelay(initial, max, 6, 1.0), absl::Seconds(5));  // 6.4 s capped
  EXPECT_EQ(ReconnectDelay(initial, max, 1000, 0.0), absl::Milliseconds(2500));
  EXPECT_EQ(ReconnectDelay(initial, max, 2, 7.0), absl::Milliseconds(400));  // unit clamped
}

TEST(ResultTest, StatusConvertsToAckOrRetryWithItsText) {
  const Result ok = absl::OkStatus();
  EXPECT_EQ(ok.kind(), Result::Kind::kAck);
  const Result err = absl::UnavailableError("db down");
  EXPECT_EQ(err.kind(), Result::Kind::kRetry);
  EXPECT_EQ(err.reason(), "db down");
  EXPECT_EQ(err.error_code(), "UNAVAILABLE");
  EXPECT_FALSE(err.delay().has_value());
  const Result later = Result::Retry("busy", absl::Seconds(2), "E_BUSY");
  EXPECT_EQ(later.delay(), absl::Seconds(2));
  const Result term = Result::Terminate("bad", "E_BAD");
  EXPECT_EQ(term.kind(), Result::Kind::kTerminate);
  EXPECT_EQ(term.reason(), "bad");
  EXPECT_EQ(term.error_code(), "E_BAD");
}

}  // namespace
}  // namespace redrive
