// The pure parts of the C++ worker: reconnect backoff, Result, and Message's
// copy and move.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

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

namespace redrive {
namespace {

v1::Delivery Sample() {
  v1::Delivery d;
  d.set_delivery_id(7);
  d.set_channel("orders");
  d.set_payload(std::string(200, 'p'));
  d.set_entry_id("1-0");
  v1::Header* h = d.add_headers();
  h->set_key("tenant");
  h->set_value("acme");
  return d;
}

TEST(MessageTest, ACopyOwnsItsDeliveryAndAMovedFromMessageReadsEmpty) {
  auto original = std::make_unique<Message>(Sample());
  const Message copy(*original);  // NOLINT(performance-unnecessary-copy-initialization)
  Message assigned(v1::Delivery{});
  assigned = *original;
  original.reset();  // the copies do not point into it
  EXPECT_EQ(copy.payload(), std::string(200, 'p'));
  EXPECT_EQ(copy.channel(), "orders");
  EXPECT_EQ(copy.header("tenant"), "acme");
  EXPECT_EQ(assigned.delivery().delivery_id(), 7u);

  Message source(Sample());
  Message moved(std::move(source));
  EXPECT_EQ(moved.payload(), std::string(200, 'p'));
  // NOLINTNEXTLINE(bugprone-use-after-move): a moved-from Message is valid and empty.
  EXPECT_EQ(source.payload(), "");
  EXPECT_EQ(source.delivery().delivery_id(), 0u);
  Message target(v1::Delivery{});
  target = std::move(moved);
  EXPECT_EQ(target.entry_id(), "1-0");
  EXPECT_EQ(moved.channel(), "");  // NOLINT(bugprone-use-after-move)
}

}  // namespace
}  // namespace redrive
