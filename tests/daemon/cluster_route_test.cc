// Unit tests of daemon/redis/cluster_route.h: the keys of every command the
// daemon sends, and the slot they route to.
#include "daemon/redis/cluster_route.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "daemon/redis/cluster_slots.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Keys(const RedisArgv& argv) {
  absl::StatusOr<std::vector<absl::string_view>> keys = CommandKeys(argv);
  EXPECT_THAT(keys.status(), IsOk()) << argv[0];
  if (!keys.ok()) return {"<error>"};
  return std::vector<std::string>(keys->begin(), keys->end());
}

TEST(CommandKeysTest, FirstArgumentCommands) {
  EXPECT_THAT(Keys({"XADD", "s", "MAXLEN", "~", "10", "*", "f", "v"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XACK", "s", "g", "1-0", "2-0"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XCLAIM", "s", "g", "c", "1000", "1-0"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XAUTOCLAIM", "s", "g", "c", "1000", "0-0"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XPENDING", "s", "g", "IDLE", "5", "-", "+", "10", "c"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XRANGE", "s", "-", "+"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XREVRANGE", "s", "+", "-", "COUNT", "1"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XDEL", "s", "1-0"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XLEN", "s"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"ZADD", "z", "1", "m"}), ElementsAre("z"));
  EXPECT_THAT(Keys({"ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "0", "5", "WITHSCORES"}),
              ElementsAre("z"));
  EXPECT_THAT(Keys({"ZRANGEBYSCORE", "z", "0", "1"}), ElementsAre("z"));
  EXPECT_THAT(Keys({"ZREM", "z", "m"}), ElementsAre("z"));
  EXPECT_THAT(Keys({"ZCARD", "z"}), ElementsAre("z"));
  EXPECT_THAT(Keys({"HSET", "h", "f", "v"}), ElementsAre("h"));
  EXPECT_THAT(Keys({"HGET", "h", "f"}), ElementsAre("h"));
  EXPECT_THAT(Keys({"HGETALL", "h"}), ElementsAre("h"));
  EXPECT_THAT(Keys({"HDEL", "h", "f"}), ElementsAre("h"));
  EXPECT_THAT(Keys({"HEXISTS", "h", "f"}), ElementsAre("h"));
  EXPECT_THAT(Keys({"HSCAN", "h", "0", "MATCH", "*", "COUNT", "10"}), ElementsAre("h"));
  EXPECT_THAT(Keys({"RPUSH", "l", "a"}), ElementsAre("l"));
  EXPECT_THAT(Keys({"TYPE", "k"}), ElementsAre("k"));
  EXPECT_THAT(Keys({"get", "k"}), ElementsAre("k"));  // case-insensitive
}

TEST(CommandKeysTest, EveryArgumentCommands) {
  EXPECT_THAT(Keys({"DEL", "a", "b"}), ElementsAre("a", "b"));
  EXPECT_THAT(Keys({"EXISTS", "a"}), ElementsAre("a"));
  EXPECT_THAT(Keys({"UNLINK", "a", "b", "c"}), ElementsAre("a", "b", "c"));
}

TEST(CommandKeysTest, SubcommandThenKey) {
  EXPECT_THAT(Keys({"XINFO", "STREAM", "s"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XINFO", "GROUPS", "s"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XINFO", "consumers", "s", "g"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XGROUP", "DESTROY", "s", "g"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XGROUP", "CREATECONSUMER", "s", "g", "c"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XGROUP", "DELCONSUMER", "s", "g", "c"}), ElementsAre("s"));
  EXPECT_THAT(Keys({"XGROUP", "SETID", "s", "g", "$"}), ElementsAre("s"));
}

TEST(CommandKeysTest, StreamsLists) {
  EXPECT_THAT(Keys({"XREAD", "COUNT", "1", "BLOCK", "100", "STREAMS", "a", "b", "$", "$"}),
              ElementsAre("a", "b"));
  EXPECT_THAT(Keys({"XREAD", "streams", "a", "0"}), ElementsAre("a"));
  // A group or consumer named STREAMS is an option's value, not the keyword.
  EXPECT_THAT(Keys({"XREADGROUP", "GROUP", "STREAMS", "STREAMS", "COUNT", "5", "NOACK", "STREAMS",
                    "s", ">"}),
              ElementsAre("s"));
}

TEST(CommandKeysTest, ScriptKeys) {
  EXPECT_THAT(Keys({"EVALSHA", "sha", "2", "{t}a", "{t}b", "arg"}), ElementsAre("{t}a", "{t}b"));
  EXPECT_THAT(Keys({"EVAL", "return 1", "0", "arg"}), IsEmpty());
  EXPECT_THAT(Keys({"FCALL", "f", "1", "k"}), ElementsAre("k"));
}

TEST(CommandKeysTest, MalformedCommandsAreInvalidArgument) {
  auto keys = [](const RedisArgv& argv) { return CommandKeys(argv).status(); };
  EXPECT_THAT(keys({}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty command")));
  EXPECT_THAT(keys({"XADD"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("XADD: no key argument")));
  EXPECT_THAT(keys({"DEL"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DEL: no key argument")));
  EXPECT_THAT(keys({"XINFO", "HELP"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("XINFO: no key rule for subcommand \"HELP\"")));
  EXPECT_THAT(keys({"XGROUP", "CREATE"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("XGROUP: CREATE without a key")));
  EXPECT_THAT(keys({"XREAD", "COUNT", "1"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                                      HasSubstr("XREAD: no STREAMS argument")));
  EXPECT_THAT(
      keys({"XREAD", "STREAMS", "a", "b", "0"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("STREAMS needs as many ids as keys")));
  EXPECT_THAT(keys({"XREAD", "STREAMS"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("STREAMS needs as many ids")));
  EXPECT_THAT(keys({"XREAD", "NOACK", "STREAMS", "a", "0"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("XREAD: unknown option \"NOACK\" before STREAMS")));
  EXPECT_THAT(keys({"EVALSHA", "sha"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("numkeys (the third argument) is not a non-negative integer")));
  EXPECT_THAT(keys({"EVALSHA", "sha", "-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a non-negative")));
  EXPECT_THAT(keys({"EVALSHA", "sha", "3", "a", "b"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("numkeys is 3 but only 2 arguments follow")));
  EXPECT_THAT(keys({"SCRIPT", "KILL"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("SCRIPT: no rule for subcommand \"KILL\"")));
  EXPECT_THAT(
      keys({"OBJECT", "ENCODING", "k"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no key rule for command OBJECT")));
}

TEST(RouteCommandTest, PerNodeCommandsAreRefused) {
  for (const RedisArgv& argv : std::vector<RedisArgv>{{"SCAN", "0"},
                                                      {"CLIENT", "UNBLOCK", "5"},
                                                      {"MULTI"},
                                                      {"EXEC"},
                                                      {"KEYS", "*"},
                                                      {"SELECT", "1"}}) {
    EXPECT_THAT(RouteCommand(argv).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("acts on one node or connection: send it on "
                                   "the cluster client's ForNode (ClusterAsync, "
                                   "ClusterConnection)")))
        << argv[0];
  }
}

TEST(RouteCommandTest, Kinds) {
  absl::StatusOr<ClusterRoute> r = RouteCommand({"GET", "foo"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->kind, ClusterRoute::Kind::kSlot);
  EXPECT_EQ(r->slot, 12182);
  r = RouteCommand({"PING"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->kind, ClusterRoute::Kind::kAnyMaster);
  r = RouteCommand({"TIME"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->kind, ClusterRoute::Kind::kAnyMaster);
  r = RouteCommand({"EVALSHA", "sha", "0"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->kind, ClusterRoute::Kind::kAnyMaster);
  r = RouteCommand({"SCRIPT", "LOAD", "return 1"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->kind, ClusterRoute::Kind::kAllMasters);
  r = RouteCommand({"script", "exists", "sha"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->kind, ClusterRoute::Kind::kAllMasters);
}

TEST(RouteCommandTest, HashTaggedKeysShareASlot) {
  absl::StatusOr<ClusterRoute> r =
      RouteCommand({"EVALSHA", "sha", "3", "{orders}:s", "{orders}:r", "{orders}:due", "x"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->slot, KeySlot("orders"));
  r = RouteCommand({"XREAD", "STREAMS", "{o}a", "{o}b", "0", "0"});
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->slot, KeySlot("o"));
}

TEST(RouteCommandTest, CrossSlotIsRefusedBeforeSending) {
  EXPECT_THAT(
      RouteCommand({"DEL", "foo", "bar"}).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("CROSSSLOT: DEL keys \"foo\" (slot 12182) and \"bar\" (slot 5061) are "
                         "in different cluster slots; give them a common {hash tag}")));
  EXPECT_THAT(RouteCommand({"evalsha", "sha", "2", "{a}x", "foo"}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("CROSSSLOT: EVALSHA keys \"{a}x\"")));
  EXPECT_THAT(RouteCommand({"XREAD", "STREAMS", "foo", "bar", "0", "0"}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CROSSSLOT: XREAD")));
}

}  // namespace
}  // namespace redrive
