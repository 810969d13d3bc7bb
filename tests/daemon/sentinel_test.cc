// SentinelWatcher and its helpers without any sentinel answering (the
// failover paths run against real sentinels in tests/e2e/sentinel).
#include "daemon/redis/sentinel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/redis/connection.h"
#include "tests/testing/ports.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::PickFreePort;
using ::redrive::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

SentinelAddress Unreachable(int a, int b) {
  SentinelAddress s;
  s.sentinels = {{"127.0.0.1", a}, {"127.0.0.1", b}};
  s.master_name = "mymaster";
  return s;
}

TEST(SentinelTest, RoleAndReadOnlyRecognised) {
  EXPECT_TRUE(IsMasterRole(RedisReply::Array(
      {RedisReply::String("master"), RedisReply::Integer(0), RedisReply::Array({})})));
  EXPECT_FALSE(IsMasterRole(RedisReply::Array(
      {RedisReply::String("slave"), RedisReply::String("127.0.0.1"), RedisReply::Integer(6379)})));
  EXPECT_FALSE(IsMasterRole(RedisReply::Error("NOAUTH Authentication required.")));
  EXPECT_TRUE(IsReadOnlyError("READONLY You can't write against a read only replica."));
  EXPECT_FALSE(IsReadOnlyError("ERR unknown command"));
}

TEST(SentinelTest, AskSentinelsNamesEverySentinelThatFailed) {
  const int a = PickFreePort();
  const int b = PickFreePort();
  EXPECT_THAT(AskSentinels(Unreachable(a, b), absl::Milliseconds(200)),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("no sentinel named the primary of 'mymaster'"),
                             HasSubstr(absl::StrCat("sentinel 127.0.0.1:", a, ": connect")),
                             HasSubstr(absl::StrCat("sentinel 127.0.0.1:", b, ": connect")))));
}

TEST(SentinelTest, NoPrimaryKnownFailsConnectionsAndStopsPromptly) {
  SentinelWatcher::Options options;
  options.sentinel = Unreachable(PickFreePort(), PickFreePort());
  options.timeout = absl::Milliseconds(200);
  std::shared_ptr<SentinelWatcher> watcher = SentinelWatcher::Start(options);
  EXPECT_THAT(watcher->primary(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("no sentinel has named the primary of 'mymaster' yet")));
  EXPECT_EQ(watcher->generation(), 0u);

  {
    RedisConnectionOptions connection;
    connection.address.sentinel = options.sentinel;
    connection.sentinel = watcher;
    RedisConnection redis(std::move(connection));
    EXPECT_THAT(redis.Command({"PING"}),
                StatusIs(absl::StatusCode::kUnavailable,
                         HasSubstr("no sentinel has named the primary of 'mymaster' yet")));
    EXPECT_FALSE(redis.connected());
  }
  watcher->Refresh();  // the thread asks again (and fails again) meanwhile

  // The last owner stops the thread: it must not hang on the sentinels.
  const absl::Time stopping = absl::Now();
  watcher.reset();
  EXPECT_LT(absl::Now() - stopping, absl::Seconds(2));
}

}  // namespace
}  // namespace redrive
