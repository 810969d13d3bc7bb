// FakeStreamOps records typed calls and answers them later, on the loop.
#include "tests/fakes/fake_stream_ops.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;

class FakeStreamOpsTest : public ::testing::Test {
 protected:
  ~FakeStreamOpsTest() override {
    loop_.RunSync([this] { ops_.reset(); });
  }

  EventLoop loop_;
  std::unique_ptr<FakeStreamOps> ops_ = std::make_unique<FakeStreamOps>(loop_);
};

TEST_F(FakeStreamOpsTest, RecordsEachCallWithItsArgumentsByName) {
  ScheduleRetryOp schedule{GroupRef{"orders", "h1", "h1-a"},
                           "orders.h1.retry.due",
                           "5-0",
                           "h1:scheduled",
                           absl::Seconds(2),
                           "member"};
  loop_.RunSync([&] {
    ops_->Claim(GroupRef{"orders", "h1", "h1-a"}, absl::Seconds(30), {"1-0", "2-0"},
                [](absl::StatusOr<std::vector<StreamEntry>>) {});
    ops_->Ack("orders", "h1", {"3-0"}, nullptr);
    ops_->ScheduleRetry(schedule, [](absl::StatusOr<ScheduleRetryResult>) {});
    ops_->RemoveDue("orders.h1.retry.due", "m1");
  });
  loop_.RunSync([&] {
    ASSERT_EQ(ops_->calls<ClaimCall>().size(), 1u);
    const ClaimCall& claim = ops_->calls<ClaimCall>()[0];
    EXPECT_EQ(claim.g.stream, "orders");
    EXPECT_EQ(claim.g.group, "h1");
    EXPECT_EQ(claim.g.consumer, "h1-a");
    EXPECT_EQ(claim.min_idle, absl::Seconds(30));
    EXPECT_THAT(claim.ids, ElementsAre("1-0", "2-0"));
    ASSERT_EQ(ops_->calls<AckCall>().size(), 1u);
    EXPECT_EQ(ops_->calls<AckCall>()[0].stream, "orders");
    EXPECT_THAT(ops_->calls<AckCall>()[0].ids, ElementsAre("3-0"));
    ASSERT_EQ(ops_->calls<ScheduleRetryCall>().size(), 1u);
    EXPECT_EQ(ops_->calls<ScheduleRetryCall>()[0].op.owner.consumer, "h1-a");
    EXPECT_EQ(ops_->calls<ScheduleRetryCall>()[0].op.delay, absl::Seconds(2));
    EXPECT_EQ(ops_->calls<ScheduleRetryCall>()[0].op.member, "member");
    ASSERT_EQ(ops_->calls<RemoveDueCall>().size(), 1u);
    EXPECT_EQ(ops_->calls<RemoveDueCall>()[0].member, "m1");
    EXPECT_TRUE(ops_->calls<ReadGroupCall>().empty());
    EXPECT_EQ(ops_->in_transit(), 0u);  // the null and absent callbacks got nothing
  });
}

TEST_F(FakeStreamOpsTest, AnswersLaterInCallOrderFromTheProgrammedAnswer) {
  std::vector<std::string> events;
  std::optional<absl::StatusOr<std::vector<StreamEntry>>> read;
  std::optional<absl::StatusOr<MoveDueResult>> moved;
  std::optional<absl::Status> acked;
  loop_.RunSync([&] {
    ops_->Answer<ReadGroupCall>([](const ReadGroupCall& call) {
      return std::vector<StreamEntry>{StreamEntry{call.g.stream + "-1", {{"k", "v"}}, false}};
    });
    ops_->Answer<AckCall>(
        [](const AckCall&) { return absl::Status(absl::UnavailableError("down")); });
    ops_->ReadGroup(GroupRef{"orders", "h1", "h1-a"}, 10, false, [&](auto r) {
      events.push_back("read");
      read = std::move(r);
    });
    ops_->Ack("orders", "h1", {"1-0"}, [&](absl::Status s) {
      events.push_back("ack");
      acked = s;
    });
    ops_->MoveDue(MoveDueOp{}, [&](auto r) {
      events.push_back("move");
      moved = std::move(r);
    });
    EXPECT_TRUE(events.empty()) << "answered inside the call";
    EXPECT_EQ(ops_->in_transit(), 3u);
  });
  loop_.RunSync([&] {
    EXPECT_THAT(events, ElementsAre("read", "ack", "move"));
    EXPECT_EQ(ops_->in_transit(), 0u);
  });
  ASSERT_TRUE(read.has_value());
  ASSERT_THAT(*read, IsOk());
  ASSERT_EQ((*read)->size(), 1u);
  EXPECT_EQ((**read)[0].id, "orders-1");
  EXPECT_THAT(*acked, StatusIs(absl::StatusCode::kUnavailable));
  // Unprogrammed: OK with the default result.
  ASSERT_THAT(*moved, IsOk());
  EXPECT_EQ((*moved)->kind, MoveDueResult::Kind::kGone);
}

}  // namespace
}  // namespace redrive::testing
