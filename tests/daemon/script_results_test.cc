// The decoders of script_results.h: every documented code of every script
// maps to its named outcome, and any other reply is INTERNAL. (The codes
// themselves are produced by the real scripts in lua_cli_test and
// move_scripts_test.)
#include "daemon/redis/script_results.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::StatusIs;
using R = RedisReply;

TEST(ScriptResultsTest, ScheduleRetry) {
  auto scheduled = DecodeScheduleRetry(R::Integer(1700000000123));
  ASSERT_TRUE(scheduled.ok());
  EXPECT_EQ(scheduled->kind, ScheduleRetryResult::Kind::kScheduled);
  EXPECT_EQ(scheduled->due, absl::FromUnixMillis(1700000000123));
  EXPECT_EQ(DecodeScheduleRetry(R::Integer(0))->kind, ScheduleRetryResult::Kind::kNotOwner);
  EXPECT_THAT(DecodeScheduleRetry(R::Integer(-1)), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodeScheduleRetry(R::String("1")), StatusIs(absl::StatusCode::kInternal));
}

TEST(ScriptResultsTest, MoveDue) {
  auto moved = DecodeMoveDue(R::String("5-1"));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->kind, MoveDueResult::Kind::kMoved);
  EXPECT_EQ(moved->retry_id, "5-1");
  EXPECT_EQ(DecodeMoveDue(R::Integer(0))->kind, MoveDueResult::Kind::kGone);
  EXPECT_EQ(DecodeMoveDue(R::Integer(-3))->kind, MoveDueResult::Kind::kNotDue);
  EXPECT_EQ(DecodeMoveDue(R::Integer(-1))->kind, MoveDueResult::Kind::kNotPending);
  EXPECT_THAT(DecodeMoveDue(R::Integer(-2)), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodeMoveDue(R::Nil()), StatusIs(absl::StatusCode::kInternal));
}

TEST(ScriptResultsTest, LegacyMove) {
  auto moved = DecodeLegacyMove(R::String("7-0"));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->kind, LegacyMoveResult::Kind::kMoved);
  EXPECT_EQ(moved->new_id, "7-0");
  EXPECT_EQ(DecodeLegacyMove(R::Integer(0))->kind, LegacyMoveResult::Kind::kNotDone);
  EXPECT_THAT(DecodeLegacyMove(R::Integer(1)), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodeLegacyMove(R::Nil()), StatusIs(absl::StatusCode::kInternal));
}

TEST(ScriptResultsTest, DeadLetter) {
  auto dead = DecodeDeadLetter(R::Array({R::String("9-0"), R::Integer(2)}));
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(dead->kind, DeadLetterResult::Kind::kDeadLettered);
  EXPECT_EQ(dead->dlq_id, "9-0");
  EXPECT_EQ(dead->evicted, 2);
  EXPECT_EQ(DecodeDeadLetter(R::Integer(0))->kind, DeadLetterResult::Kind::kNotPending);
  EXPECT_EQ(DecodeDeadLetter(R::Integer(-2))->kind, DeadLetterResult::Kind::kHeld);
  EXPECT_THAT(DecodeDeadLetter(R::Integer(-1)), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodeDeadLetter(R::Array({R::String("9-0")})),
              StatusIs(absl::StatusCode::kInternal));
}

TEST(ScriptResultsTest, Purge) {
  auto purged = DecodePurge(R::Integer(3));
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(purged->kind, PurgeResult::Kind::kPurged);
  EXPECT_EQ(purged->count, 3);
  auto mismatch = DecodePurge(R::Array({R::Integer(-1), R::Integer(7)}));
  ASSERT_TRUE(mismatch.ok());
  EXPECT_EQ(mismatch->kind, PurgeResult::Kind::kCountMismatch);
  EXPECT_EQ(mismatch->count, 7);
  EXPECT_THAT(DecodePurge(R::Integer(-1)), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodePurge(R::Array({R::Integer(-2), R::Integer(7)})),
              StatusIs(absl::StatusCode::kInternal));
}

TEST(ScriptResultsTest, RedriveStep) {
  auto step = DecodeRedriveStep(R::Array({R::Integer(4), R::Integer(1), R::Integer(2)}));
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(step->kind, RedriveStepResult::Kind::kStepped);
  EXPECT_EQ(std::make_tuple(step->moved, step->skipped, step->failed), std::make_tuple(4, 1, 2));
  EXPECT_EQ(DecodeRedriveStep(R::Integer(-1))->kind, RedriveStepResult::Kind::kNotOwner);
  EXPECT_EQ(DecodeRedriveStep(R::Integer(-2))->kind, RedriveStepResult::Kind::kCursorMoved);
  EXPECT_EQ(DecodeRedriveStep(R::Integer(-3))->kind, RedriveStepResult::Kind::kTargetNotStream);
  EXPECT_THAT(DecodeRedriveStep(R::Integer(0)), StatusIs(absl::StatusCode::kInternal));
  step = DecodeRedriveStep(R::Array({R::Integer(-4), R::Integer(100), R::Integer(150),
                                     R::Integer(40), R::Integer(9), R::Integer(1)}));
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_EQ(step->kind, RedriveStepResult::Kind::kAlreadyDone);
  EXPECT_EQ(step->from, 100);
  EXPECT_EQ(step->to, 150);
  EXPECT_EQ(step->moved, 40);
  EXPECT_EQ(step->skipped, 9);
  EXPECT_EQ(step->failed, 1);
  EXPECT_THAT(DecodeRedriveStep(R::Array({R::Integer(-5), R::Integer(1), R::Integer(2),
                                          R::Integer(3), R::Integer(4), R::Integer(5)})),
              StatusIs(absl::StatusCode::kInternal));
}

TEST(ScriptResultsTest, JobTransition) {
  EXPECT_EQ(*DecodeJobTransition(R::Integer(1)), JobTransitionResult::kDone);
  EXPECT_EQ(*DecodeJobTransition(R::Integer(0)), JobTransitionResult::kNotApplicable);
  EXPECT_EQ(*DecodeJobTransition(R::Integer(-1)), JobTransitionResult::kNoSuchJob);
  EXPECT_EQ(*DecodeJobTransition(R::Integer(-2)), JobTransitionResult::kCursorMoved);
  EXPECT_THAT(DecodeJobTransition(R::Integer(2)), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodeJobTransition(R::String("1")), StatusIs(absl::StatusCode::kInternal));
}

TEST(ScriptResultsTest, DeleteHandler) {
  auto deleted =
      DecodeDeleteHandler(R::Array({R::Integer(1), R::Integer(0), R::Integer(2), R::Integer(1),
                                    R::Integer(0), R::String("orders.h.dlq")}));
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->kind, DeleteHandlerResult::Kind::kDeleted);
  EXPECT_EQ(deleted->dead_letters, 2);
  EXPECT_TRUE(deleted->group_destroyed);
  EXPECT_FALSE(deleted->retry_group_existed);
  EXPECT_THAT(deleted->deleted_keys, ::testing::ElementsAre("orders.h.dlq"));
  auto remain = DecodeDeleteHandler(R::Array({R::Integer(-1), R::Integer(3), R::Integer(1)}));
  ASSERT_TRUE(remain.ok());
  EXPECT_EQ(remain->kind, DeleteHandlerResult::Kind::kEntriesRemain);
  EXPECT_EQ(remain->retry_entries, 3);
  EXPECT_EQ(DecodeDeleteHandler(R::Array({R::Integer(-2), R::Integer(0), R::Integer(0)}))->kind,
            DeleteHandlerResult::Kind::kCountMismatch);
  EXPECT_THAT(DecodeDeleteHandler(R::Array({R::Integer(1), R::Integer(0), R::Integer(0)})),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodeDeleteHandler(R::Array({R::Integer(-3), R::Integer(0), R::Integer(0)})),
              StatusIs(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace redrive
