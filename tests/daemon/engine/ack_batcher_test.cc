// AckBatcher (daemon/engine/ack_batcher.h): one XACK per (stream, group),
// sent when ack_batch ids wait or ack_delay after the first; a failed XACK
// counts a Redis error.
#include "daemon/engine/ack_batcher.h"

#include <map>

#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class AckBatcherTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.ack_batch = 3;
    options_.ack_delay = absl::Hours(1);  // only the batch size flushes
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] { batcher_.reset(); });
  }
  void Make() {
    loop_.RunSync([this] { batcher_ = std::make_unique<AckBatcher>(ctx_); });
  }
  size_t Queued() {
    size_t n = 0;
    loop_.RunSync([&] { n = batcher_->queued(); });
    return n;
  }
  // (stream, group) → ids of every Ack sent.
  std::map<std::pair<std::string, std::string>, std::vector<Ids>> AcksByTarget() {
    std::map<std::pair<std::string, std::string>, std::vector<Ids>> out;
    for (const AckCall& c : Calls<AckCall>()) out[{c.stream, c.group}].push_back(c.ids);
    return out;
  }

  std::unique_ptr<AckBatcher> batcher_;
};

TEST_F(AckBatcherTest, NothingIsSentBelowTheBatchSize) {
  Make();
  Run([&] {
    batcher_->Queue("orders", "billing", "1-0");
    batcher_->Queue("orders", "billing", "2-0");
  });
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());
  EXPECT_EQ(Queued(), 2u);
}

TEST_F(AckBatcherTest, FlushesAtAckBatchIdsWithOneAckPerStreamAndGroup) {
  Make();
  Run([&] {
    batcher_->Queue("orders", "billing", "1-0");
    batcher_->Queue("orders.billing.retry", "billing-retry", "5-0");
    batcher_->Queue("orders", "billing", "2-0");  // the third id: flush
  });
  const auto acks = AcksByTarget();
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_THAT(acks.at({"orders", "billing"}), ElementsAre(Ids{"1-0", "2-0"}));
  EXPECT_THAT(acks.at({"orders.billing.retry", "billing-retry"}), ElementsAre(Ids{"5-0"}));
  EXPECT_EQ(Queued(), 0u);
  EXPECT_EQ(Stats().redis_errors, 0u);
}

TEST_F(AckBatcherTest, IdsQueuedAfterAFlushGoInTheNextAck) {
  Make();
  Run([&] {
    for (int n = 1; n <= 4; ++n) batcher_->Queue("orders", "billing", Id(n));
  });
  ASSERT_EQ(Calls<AckCall>().size(), 1u);
  EXPECT_EQ(Calls<AckCall>()[0].ids, (Ids{"1-0", "2-0", "3-0"}));
  EXPECT_EQ(Queued(), 1u);
  Run([&] { batcher_->Flush(); });
  ASSERT_EQ(Calls<AckCall>().size(), 2u);
  EXPECT_EQ(Calls<AckCall>()[1].stream, "orders");
  EXPECT_EQ(Calls<AckCall>()[1].group, "billing");
  EXPECT_EQ(Calls<AckCall>()[1].ids, (Ids{"4-0"}));
}

TEST_F(AckBatcherTest, FlushSendsEverythingQueuedAndThenNothing) {
  Make();
  Run([&] {
    batcher_->Queue("orders", "billing", "1-0");
    batcher_->Flush();
    batcher_->Flush();
  });
  ASSERT_EQ(Calls<AckCall>().size(), 1u);
  EXPECT_EQ(Calls<AckCall>()[0].ids, (Ids{"1-0"}));
}

TEST_F(AckBatcherTest, FlushWithNothingQueuedSendsNothing) {
  Make();
  Run([&] { batcher_->Flush(); });
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());
}

TEST_F(AckBatcherTest, FlushesAckDelayAfterTheFirstQueuedId) {
  options_.ack_delay = absl::Milliseconds(150);
  Make();
  // When the Ack is sent, on the loop thread (the delay is a real timer).
  absl::Time sent_at = absl::InfiniteFuture();
  Answer<AckCall>([&](const AckCall&) {
    sent_at = absl::Now();
    return absl::OkStatus();
  });
  absl::Time queued_at;
  Run([&] {
    queued_at = absl::Now();
    batcher_->Queue("orders", "billing", "1-0");
    batcher_->Queue("orders", "billing", "2-0");
  });
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());  // not in the same turn
  ASSERT_TRUE(WaitFor([&] { return Calls<AckCall>().size() == 1; }));
  EXPECT_EQ(Calls<AckCall>()[0].ids, (Ids{"1-0", "2-0"}));
  absl::Time sent;
  loop_.RunSync([&] { sent = sent_at; });
  // Not before the delay, give or take one tick of libevent's coarse clock
  // (4 ms; EventLoop::Timer::Arm): 148.2 and 148.6 ms were seen in CI.
  EXPECT_GE(sent - queued_at, absl::Milliseconds(150 - 5));
  EXPECT_EQ(Queued(), 0u);
}

TEST_F(AckBatcherTest, FailedAckCountsARedisError) {
  Make();
  Answer<AckCall>([](const AckCall&) { return absl::UnavailableError("connection lost"); });
  Run([&] {
    batcher_->Queue("orders", "billing", "1-0");
    batcher_->Queue("orders.billing.retry", "billing-retry", "2-0");
    batcher_->Flush();
  });
  EXPECT_EQ(Calls<AckCall>().size(), 2u);
  EXPECT_EQ(Stats().redis_errors, 2u);
}

}  // namespace
}  // namespace redrive::testing
