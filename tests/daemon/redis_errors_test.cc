// Unit tests of daemon/redis/errors.h: the one place error replies become
// statuses, and their kinds.
#include <gtest/gtest.h>

#include <vector>

#include "daemon/redis/errors.h"

namespace redrive {
namespace {

TEST(RedisErrorsTest, ClassifiesEveryKindTheDaemonActsOn) {
  EXPECT_EQ(ClassifyRedisError("NOGROUP No such key 'orders' or consumer group 'b'"),
            RedisError::kNoGroup);
  EXPECT_EQ(ClassifyRedisError("NOSCRIPT No matching script."), RedisError::kNoScript);
  EXPECT_EQ(ClassifyRedisError("BUSYGROUP Consumer Group name already exists"),
            RedisError::kBusyGroup);
  EXPECT_EQ(ClassifyRedisError("WRONGTYPE Operation against a key holding the wrong kind"),
            RedisError::kWrongType);
  EXPECT_EQ(ClassifyRedisError("MOVED 3999 127.0.0.1:6381"), RedisError::kMoved);
  EXPECT_EQ(ClassifyRedisError("ASK 3999 127.0.0.1:6381"), RedisError::kAsk);
  EXPECT_EQ(ClassifyRedisError("LOADING Redis is loading the dataset in memory"),
            RedisError::kTransient);
  EXPECT_EQ(ClassifyRedisError("BUSY Redis is busy running a script."), RedisError::kTransient);
  EXPECT_EQ(ClassifyRedisError("ERR no such key"), RedisError::kNoSuchKey);
  EXPECT_EQ(ClassifyRedisError("ERR unknown command"), RedisError::kOther);
  // A prefix must be the whole first word.
  EXPECT_EQ(ClassifyRedisError("BUSYKEY Target key name already exists."), RedisError::kOther);
  EXPECT_EQ(ClassifyRedisError("ASKING is not allowed"), RedisError::kOther);
}

TEST(RedisErrorsTest, StatusCarriesTheKindAndTheText) {
  const absl::Status s = RedisErrorStatus(RedisReply::Error("NOGROUP No such key"));
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message(), "redis: NOGROUP No such key");
  EXPECT_EQ(RedisErrorOf(s), RedisError::kNoGroup);

  const absl::Status t = RedisErrorStatus(RedisReply::Error("TRYAGAIN Multiple keys"));
  EXPECT_EQ(t.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RedisErrorOf(t), RedisError::kTransient);

  EXPECT_TRUE(RedisErrorStatus(RedisReply::Integer(1)).ok());
  EXPECT_EQ(RedisErrorOf(absl::UnavailableError("connection lost")), RedisError::kNone);
  EXPECT_EQ(RedisErrorOf(absl::OkStatus()), RedisError::kNone);
}

TEST(RedisErrorsTest, CheckReplyTurnsOnlyErrorRepliesIntoStatuses) {
  absl::StatusOr<RedisReply> ok = CheckReply(RedisReply::String("1-0"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->str, "1-0");
  absl::StatusOr<RedisReply> err = CheckReply(RedisReply::Error("WRONGTYPE x"));
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(RedisErrorOf(err.status()), RedisError::kWrongType);
  absl::StatusOr<RedisReply> down = CheckReply(absl::UnavailableError("down"));
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);

  EXPECT_TRUE(FirstRedisError({RedisReply::Integer(1), RedisReply::Status("OK")}).ok());
  EXPECT_EQ(RedisErrorOf(FirstRedisError({RedisReply::Integer(1), RedisReply::Error("BUSYGROUP g"),
                                          RedisReply::Error("NOGROUP g")})),
            RedisError::kBusyGroup);
}

}  // namespace
}  // namespace redrive
