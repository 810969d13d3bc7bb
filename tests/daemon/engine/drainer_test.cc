// Drainer (daemon/engine/drainer.h): hand back when everything is settled or
// the grace is over; retry operations get 10 s more; Finish runs `done`
// after every earlier reply (Barrier).
#include "daemon/engine/drainer.h"

#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;

class DrainerTest : public EngineTest {
 protected:
  void SetUp() override {
    loop_.RunSync([this] { drainer_ = std::make_unique<Drainer>(ctx_); });
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] { drainer_.reset(); });
  }
  bool HandBackDue(bool settled) {
    bool due = false;
    loop_.RunSync([&] { due = drainer_->HandBackDue(settled); });
    return due;
  }
  bool OpsDone() {
    bool done = false;
    loop_.RunSync([&] { done = drainer_->OpsDone(); });
    return done;
  }
  bool Draining() {
    bool d = false;
    loop_.RunSync([&] { d = drainer_->draining(); });
    return d;
  }

  std::unique_ptr<Drainer> drainer_;
};

TEST_F(DrainerTest, NothingIsHandedBackWithoutADrain) {
  EXPECT_FALSE(Draining());
  EXPECT_FALSE(HandBackDue(true));
  EXPECT_FALSE(HandBackDue(false));
}

TEST_F(DrainerTest, HandsBackOnceSettledOrWhenTheGraceIsOver) {
  Run([&] { drainer_->Start(absl::Seconds(30), [] {}); });
  EXPECT_TRUE(Draining());
  EXPECT_TRUE(HandBackDue(true));
  EXPECT_FALSE(HandBackDue(false));
  SetNow(kT0 + absl::Seconds(30) - absl::Milliseconds(1));
  EXPECT_FALSE(HandBackDue(false));
  SetNow(kT0 + absl::Seconds(30));
  EXPECT_TRUE(HandBackDue(false));
}

TEST_F(DrainerTest, RetryOperationsGetTenSecondsAfterTheGrace) {
  Run([&] { drainer_->Start(absl::Seconds(30), [] {}); });
  EXPECT_TRUE(OpsDone());  // none in progress
  loop_.RunSync([&] { tracker_.Begin(); });
  EXPECT_FALSE(OpsDone());
  SetNow(kT0 + absl::Seconds(40) - absl::Milliseconds(1));
  EXPECT_FALSE(OpsDone());
  SetNow(kT0 + absl::Seconds(40));
  EXPECT_TRUE(OpsDone());
  SetNow(kT0 + absl::Seconds(1));
  loop_.RunSync([&] { tracker_.End(); });
  EXPECT_TRUE(OpsDone());
}

TEST_F(DrainerTest, FinishRunsDoneAfterEveryEarlierReply) {
  std::vector<std::string> order;  // loop thread
  Run([&] {
    drainer_->Start(absl::Seconds(30), [&] { order.push_back("done"); });
    ops_.Ack("orders", "billing", {"1-0"}, [&](absl::Status) { order.push_back("ack"); });
    drainer_->Finish();
    EXPECT_EQ(ops_.calls<BarrierCall>().size(), 1u);
    EXPECT_TRUE(order.empty());
  });
  EXPECT_THAT(order, ElementsAre("ack", "done"));
  EXPECT_EQ(Calls<BarrierCall>().size(), 1u);
  // The drain has ended: nothing more is handed back for it.
  EXPECT_FALSE(HandBackDue(true));
}

TEST_F(DrainerTest, FinishRunsDoneEvenWhenTheBarrierFails) {
  Answer<BarrierCall>([](const BarrierCall&) { return absl::UnavailableError("down"); });
  int done = 0;
  Run([&] {
    drainer_->Start(absl::Seconds(1), [&] { ++done; });
    drainer_->Finish();
  });
  EXPECT_EQ(done, 1);
}

}  // namespace
}  // namespace redrive::testing
