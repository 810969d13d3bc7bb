// RedisStreamOps over the argv-level fake: the exact command of each
// operation, and what becomes of malformed, error and missing replies. (The
// real Redis behaviour is in tests/integration/redis_stream_ops_test.cc.)
#include "daemon/redis/redis_stream_ops.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "daemon/redis/errors.h"
#include "daemon/redis/scripts.h"
#include "tests/fakes/fake_async_redis.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::FakeAsyncCommander;
using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Command = FakeAsyncCommander::Command;

class RedisStreamOpsUnitTest : public ::testing::Test {
 protected:
  RedisStreamOpsUnitTest() {
    loop_.RunSync([this] {
      redis_ = std::make_unique<FakeAsyncCommander>(loop_);
      ops_ = std::make_unique<RedisStreamOps>(*redis_);
    });
  }
  ~RedisStreamOpsUnitTest() override {
    loop_.RunSync([this] {
      ops_.reset();
      redis_.reset();
    });
  }

  // Runs `calls` on the loop, then waits until every reply was delivered;
  // returns the status each named callback got.
  std::map<std::string, absl::Status> Run(
      const std::function<void(RedisStreamOps&, std::map<std::string, absl::Status>&)>& calls) {
    std::map<std::string, absl::Status> got;
    loop_.RunSync([&] {
      calls(*ops_, got);
      EXPECT_TRUE(got.empty()) << "answered inside the call";
    });
    bool idle = false;
    while (!idle) loop_.RunSync([&] { idle = redis_->in_transit() == 0; });
    return got;
  }
  template <typename T>
  static OpCallback<T> Into(std::map<std::string, absl::Status>& got, const std::string& name) {
    return [&got, name](absl::StatusOr<T> r) { got[name] = r.status(); };
  }
  static DoneCallback Done(std::map<std::string, absl::Status>& got, const std::string& name) {
    return [&got, name](absl::Status s) { got[name] = s; };
  }

  EventLoop loop_;
  std::unique_ptr<FakeAsyncCommander> redis_;
  std::unique_ptr<RedisStreamOps> ops_;
};

const GroupRef kRef{"s", "g", "c"};

TEST_F(RedisStreamOpsUnitTest, SendsTheDispatchersArgvForEachOperation) {
  redis_->set_responder([](const Command&) { return RedisReply::Nil(); });
  Run([](RedisStreamOps& ops, std::map<std::string, absl::Status>&) {
    ops.CreateGroup("s", "g", "$", nullptr);
    ops.ReadGroup(kRef, 5, true, [](auto) {});
    ops.ReadGroup(kRef, 6, false, [](auto) {});
    ops.Claim(kRef, absl::Milliseconds(1500), {"1-0", "2-0"}, [](auto) {});
    ops.ReadEntry("s", "1-0", [](auto) {});
    ops.Ack("s", "g", {"1-0"}, nullptr);
    ops.PendingConsumers("s", "g", [](auto) {});
    ops.IdlePending(kRef, absl::Seconds(30), 7, [](auto) {});
    ops.Consumers("s", "g", [](auto) {});
    ops.DeleteIdleConsumer("s", "g", "c", [](auto) {});
    ops.Touch(kRef, {"1-0"}, false, nullptr);
    ops.Touch(kRef, {"2-0"}, true, nullptr);
    ops.EarliestDue("z", [](auto) {});
    ops.DueBatch("z", 11, [](auto) {});
    ops.RemoveDue("z", "m");
    ops.ScheduleRetry({kRef, "z", "1-0", "c:sched", absl::Milliseconds(2500), "m"}, [](auto) {});
    ops.MoveDue({GroupRef{"s", "g", "c:sched"}, "r", "rg", "z", "1-0", "m", {{"f", "v"}}},
                [](auto) {});
    ops.DeadLetter({kRef, "d", "1-0", 10, true, {{"f", "v"}}}, [](auto) {});
    ops.DeadLetter({GroupRef{"s", "g", ""}, "d", "1-0", 0, false, {}}, [](auto) {});
    ops.TrimRetry("r", 100, absl::Hours(1), [](auto) {});
    ops.HashFields("k", [](auto) {});
    ops.HashHas("k", "f", [](auto) {});
    ops.HashSet("k", {{"a", "1"}, {"b", "2"}}, nullptr);
    ops.HashDelete("k", "f", nullptr);
    ops.Barrier(nullptr);
  });
  const std::string idle(DeleteIdleConsumerScript().sha1);
  const std::string touch(TouchScript().sha1);
  const std::string schedule(ScheduleRetryScript().sha1);
  const std::string move(MoveDueScript().sha1);
  const std::string dead(DeadLetterScript().sha1);
  const std::string trim(TrimRetryScript().sha1);
  EXPECT_THAT(
      redis_->commands(),
      ElementsAre(
          Command{"XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"},
          Command{"XREADGROUP", "GROUP", "g", "c", "COUNT", "5", "NOACK", "STREAMS", "s", ">"},
          Command{"XREADGROUP", "GROUP", "g", "c", "COUNT", "6", "STREAMS", "s", ">"},
          Command{"XCLAIM", "s", "g", "c", "1500", "1-0", "2-0"},
          Command{"XRANGE", "s", "1-0", "1-0"}, Command{"XACK", "s", "g", "1-0"},
          Command{"XPENDING", "s", "g"},
          Command{"XPENDING", "s", "g", "IDLE", "30000", "-", "+", "7", "c"},
          Command{"XINFO", "CONSUMERS", "s", "g"}, Command{"EVALSHA", idle, "1", "s", "g", "c"},
          Command{"EVALSHA", touch, "1", "s", "g", "c", "", "1-0"},
          Command{"EVALSHA", touch, "1", "s", "g", "c", "86400001", "2-0"},
          Command{"ZRANGE", "z", "0", "0", "WITHSCORES"},
          Command{"ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "11", "WITHSCORES"},
          Command{"ZREM", "z", "m"},
          Command{"EVALSHA", schedule, "2", "s", "z", "g", "1-0", "c", "c:sched", "2500", "m"},
          Command{"EVALSHA", move, "3", "s", "r", "z", "g", "1-0", "m", "rg", "c:sched", "f", "v"},
          Command{"EVALSHA", dead, "2", "s", "d", "g", "1-0", "c", "10", "hold", "f", "v"},
          Command{"EVALSHA", dead, "2", "s", "d", "g", "1-0", "", "0", "evict"},
          Command{"EVALSHA", trim, "1", "r", "100", "3600000"}, Command{"HGETALL", "k"},
          Command{"HEXISTS", "k", "f"}, Command{"HSET", "k", "a", "1", "b", "2"},
          Command{"HDEL", "k", "f"}, Command{"PING"}));
}

TEST_F(RedisStreamOpsUnitTest, EmptyListsAreAnsweredBehindAPingWithoutTheirCommand) {
  redis_->set_responder([](const Command&) { return RedisReply::Status("PONG"); });
  std::vector<StreamEntry> claimed = {StreamEntry{"x", {}, false}};
  std::map<std::string, absl::Status> got = Run([&](RedisStreamOps& ops, auto& out) {
    ops.Claim(kRef, absl::ZeroDuration(), {}, [&](absl::StatusOr<std::vector<StreamEntry>> r) {
      out["claim"] = r.status();
      if (r.ok()) claimed = *r;
    });
    ops.Ack("s", "g", {}, Done(out, "ack"));
    ops.Touch(kRef, {}, true, Done(out, "touch"));
    ops.HashSet("k", {}, Done(out, "hset"));
  });
  EXPECT_THAT(redis_->commands(),
              ElementsAre(Command{"PING"}, Command{"PING"}, Command{"PING"}, Command{"PING"}));
  EXPECT_EQ(got.size(), 4u);
  for (const auto& [name, status] : got) EXPECT_THAT(status, IsOk()) << name;
  EXPECT_TRUE(claimed.empty());
}

TEST_F(RedisStreamOpsUnitTest, MalformedRepliesAreInternalAndNameTheCommand) {
  // An integer where none of these expects one.
  redis_->set_responder([](const Command&) { return RedisReply::Integer(7); });
  std::map<std::string, absl::Status> got = Run([](RedisStreamOps& ops, auto& out) {
    ops.CreateGroup("s", "g", "$", Done(out, "XGROUP CREATE"));
    ops.ReadGroup(kRef, 1, false, Into<std::vector<StreamEntry>>(out, "XREADGROUP"));
    ops.Claim(kRef, absl::ZeroDuration(), {"1-0"}, Into<std::vector<StreamEntry>>(out, "XCLAIM"));
    ops.ReadEntry("s", "1-0", Into<std::optional<StreamEntry>>(out, "XRANGE"));
    ops.PendingConsumers("s", "g", Into<std::vector<std::string>>(out, "XPENDING"));
    ops.Consumers("s", "g", Into<std::vector<ConsumerInfo>>(out, "XINFO CONSUMERS"));
    ops.EarliestDue("z", Into<std::optional<DueEntry>>(out, "ZRANGE"));
    ops.MoveDue(MoveDueOp{}, Into<MoveDueResult>(out, "move_due"));
    ops.TrimRetry("r", 1, absl::ZeroDuration(), Into<TrimRetryResult>(out, "trim_retry"));
    ops.DeleteIdleConsumer("s", "g", "c", Into<bool>(out, "delete_idle_consumer"));
    ops.HashFields("k", Into<std::vector<std::pair<std::string, std::string>>>(out, "HGETALL"));
    ops.HashHas("k", "f", Into<bool>(out, "HEXISTS"));
    ops.Barrier(Done(out, "PING"));
  });
  EXPECT_EQ(got.size(), 13u);
  for (const auto& [name, status] : got) {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInternal, HasSubstr(name)));
  }
}

TEST_F(RedisStreamOpsUnitTest, ErrorRepliesCarryTheirKindAndTransportFailuresStayUnavailable) {
  redis_->set_responder([](const Command& c) {
    if (c[0] == "XGROUP") return RedisReply::Error("BUSYGROUP Consumer Group name already exists");
    if (c[0] == "XPENDING") return RedisReply::Error("NOGROUP No such key 's' or consumer group");
    return RedisReply::Error("NOGROUP No such key 's' or consumer group 'g'");
  });
  std::map<std::string, absl::Status> got = Run([](RedisStreamOps& ops, auto& out) {
    ops.CreateGroup("s", "g", "$", Done(out, "create"));
    ops.PendingConsumers("s", "g", Into<std::vector<std::string>>(out, "pending"));
    ops.ReadGroup(kRef, 1, false, Into<std::vector<StreamEntry>>(out, "read"));
  });
  EXPECT_THAT(got["create"], IsOk());
  EXPECT_THAT(got["pending"], IsOk());
  EXPECT_EQ(RedisErrorOf(got["read"]), RedisError::kNoGroup);

  loop_.RunSync([this] { redis_->set_connected(false); });
  got = Run([](RedisStreamOps& ops, auto& out) {
    ops.Ack("s", "g", {"1-0"}, Done(out, "ack"));
    ops.ScheduleRetry(ScheduleRetryOp{}, Into<ScheduleRetryResult>(out, "schedule"));
  });
  EXPECT_THAT(got["ack"], StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(got["schedule"], StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(RedisErrorOf(got["ack"]), RedisError::kNone);
}

}  // namespace
}  // namespace redrive
