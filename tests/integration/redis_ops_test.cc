// The typed synchronous Redis operations of daemon/redis/ (streams.h,
// keyspace.h, handler_store.h, job_store.h) against a real redis-server:
// exact replies, exact keys written, and Redis errors as statuses of the
// right kind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/keys.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/handler_store.h"
#include "daemon/redis/job_store.h"
#include "daemon/redis/keyspace.h"
#include "daemon/redis/streams.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TakeOk;
using ::redrive::testing::TestRedisServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

class RedisOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestRedisServer::Start();
    ASSERT_NE(server_, nullptr);
    redis_ = server_->Connect();
  }

  // Appends {"n": value} entries with explicit ids.
  void Add(const std::string& key, const std::string& id, const std::string& value) {
    ASSERT_THAT(CheckReply(redis_->Command({"XADD", key, id, "n", value})), IsOk());
  }

  static std::vector<std::string> Ids(const std::vector<StreamEntry>& entries) {
    std::vector<std::string> out;
    for (const StreamEntry& e : entries) out.push_back(e.id);
    return out;
  }

  std::unique_ptr<TestRedisServer> server_;
  std::unique_ptr<RedisConnection> redis_;
};

TEST_F(RedisOpsTest, RangesReadExactEntriesInBothDirectionsWithExclusiveBounds) {
  Add("s", "1-1", "a");
  Add("s", "2-0", "b");
  Add("s", "3-5", "c");
  EXPECT_EQ(TakeOk(XLen(*redis_, "s")), 3);
  EXPECT_EQ(TakeOk(XLen(*redis_, "missing")), 0);

  std::vector<StreamEntry> all = TakeOk(XRange(*redis_, "s", "-", "+"));
  EXPECT_THAT(Ids(all), ElementsAre("1-1", "2-0", "3-5"));
  EXPECT_THAT(all[1].fields, ElementsAre(Pair("n", "b")));
  EXPECT_THAT(Ids(TakeOk(XRange(*redis_, "s", "(1-1", "+", 1))), ElementsAre("2-0"));
  EXPECT_THAT(Ids(TakeOk(XRevRange(*redis_, "s", "+", "-", 2))), ElementsAre("3-5", "2-0"));
  EXPECT_THAT(Ids(TakeOk(XRevRange(*redis_, "s", "(3-5", "-"))), ElementsAre("2-0", "1-1"));
  EXPECT_TRUE(TakeOk(XRange(*redis_, "missing", "-", "+")).empty());

  std::vector<std::optional<StreamEntry>> each =
      TakeOk(XRangeEach(*redis_, "s", {"3-5", "9-9", "1-1"}));
  ASSERT_EQ(each.size(), 3u);
  ASSERT_TRUE(each[0].has_value());
  EXPECT_EQ(each[0]->id, "3-5");
  EXPECT_THAT(each[0]->fields, ElementsAre(Pair("n", "c")));
  EXPECT_FALSE(each[1].has_value());
  ASSERT_TRUE(each[2].has_value());
  EXPECT_EQ(each[2]->id, "1-1");
}

TEST_F(RedisOpsTest, XDelEachTellsWhichIdsExisted) {
  Add("s", "1-0", "a");
  Add("s", "2-0", "b");
  EXPECT_THAT(TakeOk(XDelEach(*redis_, "s", {"2-0", "5-0", "1-0"})),
              ElementsAre(true, false, true));
  EXPECT_EQ(TakeOk(XLen(*redis_, "s")), 0);
  EXPECT_TRUE(TakeOk(XDelEach(*redis_, "s", {})).empty());
}

TEST_F(RedisOpsTest, XReadReturnsOnlyEntriesAfterTheIdUpToCount) {
  Add("s", "1-0", "a");
  Add("s", "2-0", "b");
  Add("s", "3-0", "c");
  EXPECT_THAT(Ids(TakeOk(XRead(*redis_, "s", "1-0", 10))), ElementsAre("2-0", "3-0"));
  EXPECT_THAT(Ids(TakeOk(XRead(*redis_, "s", "0-0", 2))), ElementsAre("1-0", "2-0"));
  EXPECT_TRUE(TakeOk(XRead(*redis_, "s", "3-0", 10)).empty());
  EXPECT_TRUE(TakeOk(XRead(*redis_, "missing", "0-0", 10)).empty());
}

TEST_F(RedisOpsTest, XAddWritesOneOrAllEntriesAndTrims) {
  std::vector<std::string> one = TakeOk(XAdd(*redis_, "s", {{{"__data__", "x"}}}));
  ASSERT_EQ(one.size(), 1u);
  std::vector<std::string> two =
      TakeOk(XAdd(*redis_, "s", {{{"a", "1"}, {"b", "2"}}, {{"c", "3"}}}));
  ASSERT_EQ(two.size(), 2u);
  std::vector<StreamEntry> all = TakeOk(XRange(*redis_, "s", "-", "+"));
  EXPECT_EQ(Ids(all), (std::vector<std::string>{one[0], two[0], two[1]}));
  EXPECT_THAT(all[0].fields, ElementsAre(Pair("__data__", "x")));
  EXPECT_THAT(all[1].fields, ElementsAre(Pair("a", "1"), Pair("b", "2")));
  EXPECT_THAT(all[2].fields, ElementsAre(Pair("c", "3")));

  // MAXLEN ~ trims whole nodes only: 500 entries with a cap of 10 keep fewer
  // than 500 and at least 10.
  std::vector<FieldList> many(500, FieldList{{"n", "v"}});
  ASSERT_THAT(XAdd(*redis_, "t", many, 10), IsOk());
  const int64_t left = TakeOk(XLen(*redis_, "t"));
  EXPECT_GE(left, 10);
  EXPECT_LT(left, 500);
}

TEST_F(RedisOpsTest, XAddToAKeyOfAnotherTypeIsWrongTypeAndWritesNothing) {
  ASSERT_THAT(HSet(*redis_, "h", "f", "v"), IsOk());
  absl::StatusOr<std::vector<std::string>> single = XAdd(*redis_, "h", {{{"a", "1"}}});
  EXPECT_EQ(RedisErrorOf(single.status()), RedisError::kWrongType);
  absl::StatusOr<std::vector<std::string>> batch = XAdd(*redis_, "h", {{{"a", "1"}}, {{"b", "2"}}});
  EXPECT_EQ(RedisErrorOf(batch.status()), RedisError::kWrongType);
  EXPECT_THAT(TakeOk(HGetAll(*redis_, "h")), ElementsAre(Pair("f", "v")));
  EXPECT_EQ(RedisErrorOf(XLen(*redis_, "h").status()), RedisError::kWrongType);
  EXPECT_EQ(RedisErrorOf(XRange(*redis_, "h", "-", "+").status()), RedisError::kWrongType);
  EXPECT_EQ(RedisErrorOf(XRead(*redis_, "h", "0-0", 1).status()), RedisError::kWrongType);
}

TEST_F(RedisOpsTest, GroupsConsumersPendingAndAcks) {
  Add("s", "1-0", "a");
  Add("s", "2-0", "b");
  Add("s", "3-0", "c");
  EXPECT_TRUE(TakeOk(XInfoGroups(*redis_, "missing")).empty());
  ASSERT_THAT(CheckReply(redis_->Command({"XGROUP", "CREATE", "s", "g", "0"})), IsOk());
  ASSERT_THAT(CheckReply(redis_->Command({"XGROUP", "CREATE", "s", "late", "$"})), IsOk());
  ASSERT_THAT(CheckReply(redis_->Command(
                  {"XREADGROUP", "GROUP", "g", "c1", "COUNT", "2", "STREAMS", "s", ">"})),
              IsOk());

  std::vector<StreamGroupInfo> groups = TakeOk(XInfoGroups(*redis_, "s"));
  ASSERT_EQ(groups.size(), 2u);
  std::optional<StreamGroupInfo> g = FindGroup(groups, "g");
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->consumers, 1);
  EXPECT_EQ(g->pending, 2);
  EXPECT_EQ(g->last_delivered_id, "2-0");
  EXPECT_EQ(g->lag, 1);
  std::optional<StreamGroupInfo> late = FindGroup(groups, "late");
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->pending, 0);
  EXPECT_EQ(late->lag, 0);
  EXPECT_FALSE(FindGroup(groups, "none").has_value());

  std::vector<StreamConsumerInfo> consumers = TakeOk(XInfoConsumers(*redis_, "s", "g"));
  ASSERT_EQ(consumers.size(), 1u);
  EXPECT_EQ(consumers[0].name, "c1");
  EXPECT_EQ(consumers[0].pending, 2);
  EXPECT_GE(consumers[0].idle_ms, 0);
  EXPECT_EQ(RedisErrorOf(XInfoConsumers(*redis_, "s", "nope").status()), RedisError::kNoGroup);

  EXPECT_THAT(TakeOk(XPendingIds(*redis_, "s", "g", "-", 10)), ElementsAre("1-0", "2-0"));
  EXPECT_THAT(TakeOk(XPendingIds(*redis_, "s", "g", "(1-0", 10)), ElementsAre("2-0"));
  EXPECT_THAT(TakeOk(XPendingIds(*redis_, "s", "g", "-", 1)), ElementsAre("1-0"));
  EXPECT_TRUE(TakeOk(XAck(*redis_, "s", "g", "1-0")));
  EXPECT_FALSE(TakeOk(XAck(*redis_, "s", "g", "1-0")));
  EXPECT_THAT(TakeOk(XPendingIds(*redis_, "s", "g", "-", 10)), ElementsAre("2-0"));
  EXPECT_EQ(RedisErrorOf(XPendingIds(*redis_, "s", "nope", "-", 10).status()),
            RedisError::kNoGroup);

  ASSERT_THAT(HSet(*redis_, "h", "f", "v"), IsOk());
  EXPECT_EQ(RedisErrorOf(XInfoGroups(*redis_, "h").status()), RedisError::kWrongType);
}

TEST_F(RedisOpsTest, HashesSortedSetsListsAndTheServer) {
  EXPECT_THAT(Ping(*redis_), IsOk());
  const absl::Time now = TakeOk(ServerTime(*redis_));
  EXPECT_LT(absl::AbsDuration(now - absl::Now()), absl::Seconds(5));
  EXPECT_EQ(TakeOk(KeyType(*redis_, "h")), "none");

  EXPECT_TRUE(TakeOk(HGetAll(*redis_, "h")).empty());
  ASSERT_THAT(HSet(*redis_, "h", "a", "1"), IsOk());
  ASSERT_THAT(HSet(*redis_, "h", "b", std::string("\0x", 2)), IsOk());
  ASSERT_THAT(HSet(*redis_, "h", "a", "3"), IsOk());
  EXPECT_THAT(TakeOk(HGetAll(*redis_, "h")),
              ElementsAre(Pair("a", "3"), Pair("b", std::string("\0x", 2))));
  EXPECT_EQ(TakeOk(HGet(*redis_, "h", "a")), std::optional<std::string>("3"));
  EXPECT_EQ(TakeOk(HGet(*redis_, "h", "zz")), std::nullopt);
  EXPECT_EQ(TakeOk(HGet(*redis_, "nohash", "a")), std::nullopt);
  EXPECT_EQ(TakeOk(KeyType(*redis_, "h")), "hash");
  EXPECT_EQ(TakeOk(HDel(*redis_, "h", {"a", "zz"})), 1);
  EXPECT_EQ(TakeOk(HDel(*redis_, "h", {})), 0);

  for (int i = 0; i < 30; ++i) {
    ASSERT_THAT(HSet(*redis_, "scan", absl::StrCat(i % 2 == 0 ? "even " : "odd ", i), "v"), IsOk());
  }
  std::vector<std::string> even;
  std::string cursor = "0";
  do {
    HashScanPage page = TakeOk(HScan(*redis_, "scan", cursor, "even *", 5));
    for (const auto& [f, v] : page.fields) even.push_back(f);
    cursor = page.cursor;
  } while (cursor != "0");
  std::sort(even.begin(), even.end());
  EXPECT_EQ(even.size(), 15u);
  EXPECT_EQ(even.front(), "even 0");

  ASSERT_THAT(CheckReply(redis_->Command({"ZADD", "z", "2", "b", "1", "a"})), IsOk());
  EXPECT_THAT(TakeOk(ZMembers(*redis_, "z")), ElementsAre("a", "b"));
  EXPECT_TRUE(TakeOk(ZRem(*redis_, "z", "a")));
  EXPECT_FALSE(TakeOk(ZRem(*redis_, "z", "a")));
  EXPECT_THAT(TakeOk(ZMembers(*redis_, "z")), ElementsAre("b"));

  ASSERT_THAT(CheckReply(redis_->Command({"RPUSH", "l", "x", "y", "z"})), IsOk());
  EXPECT_THAT(TakeOk(LRange(*redis_, "l", 1, 5)), ElementsAre("y", "z"));
  EXPECT_TRUE(TakeOk(LRange(*redis_, "l", 3, 5)).empty());
  EXPECT_EQ(RedisErrorOf(LRange(*redis_, "h", 0, 1).status()), RedisError::kWrongType);
}

TEST_F(RedisOpsTest, OperationsOnADownServerAreUnavailable) {
  server_->Kill();
  EXPECT_THAT(XLen(*redis_, "s"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Ping(*redis_), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(XRangeEach(*redis_, "s", {"1-0"}), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RedisOpsTest, HandlerTracesAndStateReadEveryPartInOneRoundTrip) {
  const HandlerKeys keys = MakeHandlerKeys("orders", "billing", KeyStyle::kEggAI);
  const std::string field = RegistryField("orders", "billing");
  HandlerTraces none = TakeOk(ReadHandlerTraces(*redis_, keys, field));
  EXPECT_FALSE(none.registered);
  EXPECT_EQ(none.own_keys, 0);
  EXPECT_TRUE(none.channel_groups.empty());
  HandlerRedisState empty = TakeOk(ReadHandlerState(*redis_, keys, field));
  EXPECT_FALSE(empty.group.has_value());
  EXPECT_FALSE(empty.retry_group.has_value());
  EXPECT_TRUE(empty.consumers.empty());
  EXPECT_EQ(empty.due, 0);
  EXPECT_EQ(empty.dead_letters, 0);
  EXPECT_FALSE(empty.oldest_dead_letter_id.has_value());
  EXPECT_FALSE(empty.paused);
  EXPECT_TRUE(empty.redis_now.has_value());

  Add(keys.stream, "1-0", "a");
  Add(keys.stream, "2-0", "b");
  ASSERT_THAT(CheckReply(redis_->Command({"XGROUP", "CREATE", keys.stream, keys.group, "0"})),
              IsOk());
  ASSERT_THAT(CheckReply(redis_->Command({"XREADGROUP", "GROUP", keys.group, "c", "COUNT", "1",
                                          "STREAMS", keys.stream, ">"})),
              IsOk());
  Add(keys.dlq_stream, "5-0", "dead");
  Add(keys.dlq_stream, "6-0", "dead");
  ASSERT_THAT(CheckReply(redis_->Command({"ZADD", keys.due_zset, "1", "m1", "2", "m2"})), IsOk());
  ASSERT_THAT(HSet(*redis_, kPausedHandlersKey, field, "123"), IsOk());
  ASSERT_THAT(HSet(*redis_, kHandlersRegistryKey, field, "reg"), IsOk());

  HandlerTraces traces = TakeOk(ReadHandlerTraces(*redis_, keys, field));
  EXPECT_TRUE(traces.registered);
  EXPECT_EQ(traces.own_keys, 1);  // the DLQ; no retry stream
  ASSERT_EQ(traces.channel_groups.size(), 1u);
  EXPECT_EQ(traces.channel_groups[0].name, keys.group);

  HandlerRedisState state = TakeOk(ReadHandlerState(*redis_, keys, field));
  ASSERT_TRUE(state.group.has_value());
  EXPECT_EQ(state.group->pending, 1);
  EXPECT_EQ(state.group->lag, 1);
  EXPECT_FALSE(state.retry_group.has_value());
  ASSERT_EQ(state.consumers.size(), 1u);
  EXPECT_EQ(state.consumers[0].name, "c");
  EXPECT_EQ(state.consumers[0].pending, 1);
  EXPECT_EQ(state.due, 2);
  EXPECT_EQ(state.dead_letters, 2);
  EXPECT_EQ(state.oldest_dead_letter_id, std::optional<std::string>("5-0"));
  EXPECT_TRUE(state.paused);

  const std::string presence = absl::StrCat(field, " other-daemon");
  ASSERT_THAT(HSet(*redis_, kHandlersRegistryKey, presence, "1"), IsOk());
  ForgottenHandler forgotten = TakeOk(ForgetHandler(*redis_, field, {presence}));
  EXPECT_TRUE(forgotten.unregistered);
  EXPECT_TRUE(forgotten.unpaused);
  EXPECT_TRUE(TakeOk(HGetAll(*redis_, kHandlersRegistryKey)).empty());
  EXPECT_TRUE(TakeOk(HGetAll(*redis_, kPausedHandlersKey)).empty());
  ForgottenHandler again = TakeOk(ForgetHandler(*redis_, field, {}));
  EXPECT_FALSE(again.unregistered);
  EXPECT_FALSE(again.unpaused);
}

TEST_F(RedisOpsTest, JobRecordIsWrittenWholeAndItsFieldsReadBack) {
  NewJobRecord record;
  record.job_id = "00000000000000aa";
  record.hash_key = RedriveJobKey(record.job_id);
  record.ids_key = RedriveJobIdsKey(record.job_id);
  record.index_key = std::string(kRedriveJobsKey);
  record.created_ms = 1700000000000;
  record.fields = {{"state", "RUNNING"}, {"total", "2500"}};
  for (int i = 0; i < 2500; ++i) record.ids.push_back(absl::StrCat(i, "-0"));
  ASSERT_THAT(CreateJobRecord(*redis_, record), IsOk());

  EXPECT_THAT(TakeOk(HGetAll(*redis_, record.hash_key)),
              ElementsAre(Pair("state", "RUNNING"), Pair("total", "2500")));
  EXPECT_THAT(TakeOk(LRange(*redis_, record.ids_key, 0, 1)), ElementsAre("0-0", "1-0"));
  EXPECT_THAT(TakeOk(LRange(*redis_, record.ids_key, 2499, 2600)), ElementsAre("2499-0"));
  EXPECT_THAT(TakeOk(ZMembers(*redis_, record.index_key)), ElementsAre(record.job_id));
  EXPECT_THAT(::redrive::testing::SortedKeys(*redis_),
              ElementsAre(record.hash_key, record.ids_key, record.index_key));

  EXPECT_THAT(TakeOk(ReadJobField(*redis_, {record.hash_key, RedriveJobKey("gone")}, "state")),
              ElementsAre(std::optional<std::string>("RUNNING"), std::nullopt));
}

}  // namespace
}  // namespace redrive
