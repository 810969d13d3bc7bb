// RedisConnection and RedisExecutor against a real redis-server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"
#include "daemon/redis/executor.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TestRedisServer;
using ::testing::HasSubstr;

TEST(RedisConnectionTest, BinarySafeRoundTrip) {
  auto server = TestRedisServer::Start();
  ASSERT_NE(server, nullptr);
  auto conn = server->Connect();
  const std::string value("a\0b\r\n\xff", 6);
  ASSERT_THAT(conn->Command({"SET", "k", value}), IsOk());
  absl::StatusOr<RedisReply> r = conn->Command({"GET", "k"});
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->is_string());
  EXPECT_EQ(r->str, value);
}

TEST(RedisConnectionTest, PipelineReturnsRepliesInOrderWithErrorsInline) {
  auto server = TestRedisServer::Start();
  ASSERT_NE(server, nullptr);
  auto conn = server->Connect();
  std::vector<RedisArgv> cmds = {{"INCR", "n"}, {"INCR", "n"}, {"NOSUCHCOMMAND"}, {"GET", "n"}};
  absl::StatusOr<std::vector<RedisReply>> r = conn->Pipeline(cmds);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].integer, 1);
  EXPECT_EQ((*r)[1].integer, 2);
  EXPECT_TRUE((*r)[2].is_error());
  EXPECT_EQ((*r)[3].str, "2");
}

TEST(RedisConnectionTest, AuthenticatesWithPassword) {
  TestRedisServer::Options o;
  o.password = "pw-123";
  auto server = TestRedisServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto conn = server->Connect();
  absl::StatusOr<RedisReply> r = conn->Command({"PING"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->str, "PONG");

  RedisConnectionOptions wrong;
  wrong.address = server->address();
  wrong.address.password = "wrong";
  RedisConnection bad(wrong);
  absl::StatusOr<RedisReply> denied = bad.Command({"PING"});
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("AUTH")));
  EXPECT_THAT(std::string(denied.status().message()), ::testing::Not(HasSubstr("wrong")));

  RedisConnectionOptions none;
  none.address = server->address();
  none.address.password.clear();
  RedisConnection anonymous(none);
  absl::StatusOr<RedisReply> noauth = anonymous.Command({"PING"});
  ASSERT_THAT(noauth, IsOk());
  EXPECT_TRUE(noauth->is_error());
  EXPECT_THAT(noauth->str, HasSubstr("NOAUTH"));
}

TEST(RedisConnectionTest, SelectsDatabase) {
  auto server = TestRedisServer::Start();
  ASSERT_NE(server, nullptr);
  RedisConnectionOptions o;
  o.address = server->address();
  o.address.db = 5;
  RedisConnection db5(o);
  ASSERT_THAT(db5.Command({"SET", "only-in-5", "1"}), IsOk());
  auto db0 = server->Connect();
  absl::StatusOr<RedisReply> r = db0->Command({"EXISTS", "only-in-5"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, 0);
  r = db5.Command({"EXISTS", "only-in-5"});
  EXPECT_EQ(r->integer, 1);
}

TEST(RedisConnectionTest, UnavailableWhileDownThenReconnects) {
  auto server = TestRedisServer::Start();
  ASSERT_NE(server, nullptr);
  RedisConnectionOptions o;
  o.address = server->address();
  o.connect_timeout = absl::Milliseconds(300);
  o.command_timeout = absl::Milliseconds(500);
  o.min_backoff = absl::Milliseconds(10);
  o.max_backoff = absl::Milliseconds(40);
  RedisConnection conn(o);
  ASSERT_THAT(conn.Command({"PING"}), IsOk());
  server->Kill();
  EXPECT_THAT(conn.Command({"PING"}), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(conn.connected());
  // While in backoff it fails fast, naming the reconnect.
  EXPECT_THAT(conn.Command({"PING"}), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_TRUE(server->Restart());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  absl::StatusOr<RedisReply> r = absl::UnavailableError("not tried");
  while (absl::Now() < deadline) {
    r = conn.Command({"PING"});
    if (r.ok()) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->str, "PONG");
}

TEST(RedisConnectionTest, CommandTimeoutIsUnavailableNotAHang) {
  auto server = TestRedisServer::Start();
  ASSERT_NE(server, nullptr);
  RedisConnectionOptions o;
  o.address = server->address();
  o.command_timeout = absl::Milliseconds(200);
  RedisConnection conn(o);
  const absl::Time start = absl::Now();
  // BLPOP blocks for 5 s on the server; the client gives up after 200 ms.
  EXPECT_THAT(conn.Command({"BLPOP", "never", "5"}), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
}

TEST(RedisExecutorTest, RunsTasksOnPooledConnectionsAndRefusesWhenStopped) {
  auto server = TestRedisServer::Start();
  ASSERT_NE(server, nullptr);
  RedisExecutor::Options o;
  o.connection.address = server->address();
  o.threads = 3;
  RedisExecutor executor(o);
  constexpr int kTasks = 200;
  std::atomic<int> ok{0};
  absl::Notification done;
  std::atomic<int> remaining{kTasks};
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(executor.Submit([&](RedisCommander& redis) {
      if (redis.Command({"INCR", "counter"}).ok()) ok.fetch_add(1);
      if (remaining.fetch_sub(1) == 1) done.Notify();
    }));
  }
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(ok.load(), kTasks);
  auto conn = server->Connect();
  EXPECT_EQ(conn->Command({"GET", "counter"})->str, "200");
  executor.Stop();
  EXPECT_FALSE(executor.Submit([](RedisCommander&) {}));
}

TEST(RedisExecutorTest, FullQueueRefusesInsteadOfBlocking) {
  RedisExecutor::Options o;
  o.connection.address.host = "127.0.0.1";
  o.connection.address.port = 1;  // nothing listens there
  o.threads = 1;
  o.max_queue = 2;
  RedisExecutor executor(o);
  absl::Notification release;
  ASSERT_TRUE(executor.Submit([&](RedisCommander&) { release.WaitForNotification(); }));
  // The worker may or may not have taken the first task yet: fill up.
  int accepted = 0;
  for (int i = 0; i < 5; ++i) accepted += executor.Submit([](RedisCommander&) {}) ? 1 : 0;
  EXPECT_GE(accepted, 1);
  EXPECT_LE(accepted, 2);
  release.Notify();
}

}  // namespace
}  // namespace redrive
