// Unit tests of daemon/redis/cluster_slots.h: the key -> slot function, the
// CLUSTER SLOTS parser and the MOVED/ASK parser.
#include "daemon/redis/cluster_slots.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(KeySlotTest, Crc16IsXmodem) {
  EXPECT_EQ(Crc16Xmodem("123456789"), 0x31C3);  // the specification's check value
  EXPECT_EQ(Crc16Xmodem(""), 0);
}

TEST(KeySlotTest, KnownSlots) {
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("hello"), 866);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot(""), 0);
  EXPECT_EQ(KeySlot(std::string("\xff\x00k", 3)), 4782);  // binary-safe
}

TEST(KeySlotTest, HashTags) {
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("{user1000}.following"), 3443);
  // An empty tag: the whole key is hashed.
  EXPECT_EQ(HashTagOf("foo{}{bar}"), "foo{}{bar}");
  EXPECT_EQ(KeySlot("foo{}{bar}"), 8363);
  // The first '{' and the first '}' after it.
  EXPECT_EQ(HashTagOf("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(HashTagOf("foo{bar}{zap}"), "bar");
  EXPECT_EQ(HashTagOf("foo{bar"), "foo{bar");
  EXPECT_EQ(HashTagOf("foo}bar{"), "foo}bar{");
  EXPECT_EQ(HashTagOf("}{x}"), "x");
}

RedisReply Node(const std::string& ip, int64_t port, const std::string& id) {
  return RedisReply::Array({RedisReply::String(ip), RedisReply::Integer(port),
                            RedisReply::String(id), RedisReply::Array({})});
}

RedisReply Range(int64_t start, int64_t end, std::vector<RedisReply> nodes) {
  std::vector<RedisReply> e = {RedisReply::Integer(start), RedisReply::Integer(end)};
  for (RedisReply& n : nodes) e.push_back(std::move(n));
  return RedisReply::Array(std::move(e));
}

RedisReply ThreeMasters() {
  return RedisReply::Array({
      Range(0, 5460, {Node("127.0.0.1", 7000, "a"), Node("127.0.0.1", 7004, "ar")}),
      Range(5461, 10922, {Node("127.0.0.1", 7001, "b"), Node("127.0.0.1", 7005, "br")}),
      Range(10923, 16383, {Node("127.0.0.1", 7002, "c"), Node("127.0.0.1", 7003, "cr")}),
  });
}

std::vector<std::string> HostPorts(const std::vector<ClusterNode>& nodes) {
  std::vector<std::string> out;
  for (const ClusterNode& n : nodes) out.push_back(n.HostPort());
  return out;
}

TEST(ClusterSlotMapTest, ParsesClusterSlots) {
  absl::StatusOr<ClusterSlotMap> map = ClusterSlotMap::FromClusterSlots(ThreeMasters(), "seed");
  ASSERT_THAT(map.status(), IsOk());
  EXPECT_EQ(map->UnassignedSlots(), 0);
  ASSERT_NE(map->MasterOf(0), nullptr);
  EXPECT_EQ(map->MasterOf(0)->HostPort(), "127.0.0.1:7000");
  EXPECT_EQ(map->MasterOf(0)->id, "a");
  EXPECT_EQ(map->MasterOf(5460)->HostPort(), "127.0.0.1:7000");
  EXPECT_EQ(map->MasterOf(5461)->HostPort(), "127.0.0.1:7001");
  EXPECT_EQ(map->MasterOf(16383)->HostPort(), "127.0.0.1:7002");
  EXPECT_EQ(map->MasterOf(KeySlot("foo"))->HostPort(), "127.0.0.1:7002");
  EXPECT_EQ(map->MasterOf(16384), nullptr);
  EXPECT_EQ(map->MasterOf(-1), nullptr);
  EXPECT_THAT(HostPorts(map->ReplicasOf(100)), ElementsAre("127.0.0.1:7004"));
  EXPECT_THAT(HostPorts(map->Masters()),
              ElementsAre("127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"));
  EXPECT_THAT(HostPorts(map->Nodes()),
              ElementsAre("127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003",
                          "127.0.0.1:7004", "127.0.0.1:7005"));
}

TEST(ClusterSlotMapTest, SeveralRangesOfOneMasterAndGaps) {
  const RedisReply reply = RedisReply::Array({
      Range(0, 99, {Node("10.0.0.1", 6379, "a")}), Range(200, 299, {Node("10.0.0.1", 6379, "a")}),
      Range(100, 100, {Node("", 6380, "b")}),   // empty ip: the node that replied
      Range(101, 101, {Node("?", 6381, "c")}),  // unknown endpoint: unassigned
  });
  absl::StatusOr<ClusterSlotMap> map = ClusterSlotMap::FromClusterSlots(reply, "10.0.0.9");
  ASSERT_THAT(map.status(), IsOk());
  EXPECT_EQ(map->UnassignedSlots(), kClusterSlots - 201);
  EXPECT_EQ(map->MasterOf(250)->HostPort(), "10.0.0.1:6379");
  EXPECT_EQ(map->MasterOf(100)->HostPort(), "10.0.0.9:6380");
  EXPECT_EQ(map->MasterOf(101), nullptr);
  EXPECT_EQ(map->MasterOf(150), nullptr);
  EXPECT_TRUE(map->ReplicasOf(150).empty());
  EXPECT_THAT(HostPorts(map->Masters()), ElementsAre("10.0.0.1:6379", "10.0.0.9:6380"));
}

TEST(ClusterSlotMapTest, Ipv6HostPort) {
  const RedisReply reply = RedisReply::Array({Range(0, 16383, {Node("::1", 7000, "a")})});
  absl::StatusOr<ClusterSlotMap> map = ClusterSlotMap::FromClusterSlots(reply, "x");
  ASSERT_THAT(map.status(), IsOk());
  EXPECT_EQ(map->MasterOf(5)->HostPort(), "[::1]:7000");
}

TEST(ClusterSlotMapTest, SetMasterMovesOneSlot) {
  absl::StatusOr<ClusterSlotMap> map = ClusterSlotMap::FromClusterSlots(ThreeMasters(), "seed");
  ASSERT_THAT(map.status(), IsOk());
  ClusterNode moved_to;
  moved_to.host = "127.0.0.1";
  moved_to.port = 7001;
  map->SetMaster(12182, moved_to);
  EXPECT_EQ(map->MasterOf(12182)->HostPort(), "127.0.0.1:7001");
  EXPECT_EQ(map->MasterOf(12182)->id, "b");
  EXPECT_EQ(map->MasterOf(12181)->HostPort(), "127.0.0.1:7002");
  ClusterNode new_node;
  new_node.host = "127.0.0.1";
  new_node.port = 7010;
  map->SetMaster(0, new_node);
  EXPECT_EQ(map->MasterOf(0)->HostPort(), "127.0.0.1:7010");
  EXPECT_TRUE(map->ReplicasOf(0).empty());
  EXPECT_EQ(map->Masters().size(), 4u);
}

TEST(ClusterSlotMapTest, MalformedRepliesAreInternalWithTheReason) {
  auto parse = [](const RedisReply& r) {
    return ClusterSlotMap::FromClusterSlots(r, "seed").status();
  };
  EXPECT_THAT(parse(RedisReply::Status("OK")),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("(not an array)")));
  EXPECT_THAT(
      parse(RedisReply::Array({RedisReply::Integer(1)})),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("a range is not [start, end, master, ...]")));
  EXPECT_THAT(
      parse(RedisReply::Array({Range(0, 16384, {Node("h", 1, "a")})})),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("slot range 0-16384 is not within 0-16383")));
  EXPECT_THAT(
      parse(RedisReply::Array({Range(10, 9, {Node("h", 1, "a")})})),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("slot range 10-9 is not within 0-16383")));
  EXPECT_THAT(parse(RedisReply::Array({Range(0, 1, {RedisReply::Array({})})})),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("a node is not [ip, port, ...]")));
  EXPECT_THAT(parse(RedisReply::Array({Range(
                  0, 1, {RedisReply::Array({RedisReply::String("h"), RedisReply::String("1")})})})),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("a node's ip is not a string or its port not an integer")));
  EXPECT_THAT(
      parse(RedisReply::Array({Range(0, 1, {Node("h", 70000, "a")})})),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("a node's port is outside 1..65535")));
  EXPECT_THAT(
      parse(RedisReply::Array({Range(0, 1, {Node("h", 1, "a"), Node("r", 0, "b")})})),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("a node's port is outside 1..65535")));
  EXPECT_THAT(parse(RedisReply::Array(
                  {Range(0, 10, {Node("h", 1, "a")}), Range(10, 20, {Node("h", 2, "b")})})),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("slot 10 is listed twice")));
}

TEST(ParseHostPortTest, FormsAndErrors) {
  absl::StatusOr<ClusterNode> n = ParseHostPort("127.0.0.1:6381");
  ASSERT_THAT(n.status(), IsOk());
  EXPECT_EQ(n->host, "127.0.0.1");
  EXPECT_EQ(n->port, 6381);
  n = ParseHostPort("[::1]:7000");
  ASSERT_THAT(n.status(), IsOk());
  EXPECT_EQ(n->host, "::1");
  EXPECT_EQ(n->HostPort(), "[::1]:7000");
  EXPECT_THAT(ParseHostPort("localhost").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cluster node address \"localhost\" is not host:port")));
  EXPECT_THAT(ParseHostPort("h:0").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port is not in 1..65535")));
  EXPECT_THAT(ParseHostPort("h:x").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port is not in 1..65535")));
  EXPECT_THAT(ParseHostPort(":1").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not host:port")));
  EXPECT_THAT(ParseHostPort("[]:1").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty host")));
}

TEST(ParseRedirectTest, MovedAskAndOthers) {
  absl::StatusOr<std::optional<ClusterRedirect>> r = ParseRedirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_THAT(r.status(), IsOk());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->kind, ClusterRedirect::Kind::kMoved);
  EXPECT_EQ((*r)->slot, 3999);
  EXPECT_EQ((*r)->target.HostPort(), "127.0.0.1:6381");
  r = ParseRedirect("ASK 0 10.1.2.3:7000");
  ASSERT_THAT(r.status(), IsOk());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->kind, ClusterRedirect::Kind::kAsk);
  EXPECT_EQ((*r)->slot, 0);
  r = ParseRedirect("ERR unknown command 'MOVED'");
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_FALSE(r->has_value());
  r = ParseRedirect("ASKING not allowed");
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_FALSE(r->has_value());
  EXPECT_THAT(
      ParseRedirect("MOVED 16384 h:1").status(),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("malformed redirect \"MOVED 16384 h:1\"")));
  EXPECT_THAT(ParseRedirect("MOVED 1").status(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("malformed redirect")));
  EXPECT_THAT(ParseRedirect("ASK 1 nohost").status(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("is not host:port")));
}

TEST(ClassifyClusterReplyTest, EveryKind) {
  using Kind = ClusterReplyAction::Kind;
  auto kind_of = [](const RedisReply& reply) {
    absl::StatusOr<ClusterReplyAction> action = ClassifyClusterReply(reply);
    EXPECT_THAT(action.status(), IsOk()) << reply.DebugString();
    return action.ok() ? action->kind : Kind::kFinal;
  };
  EXPECT_EQ(kind_of(RedisReply::Status("OK")), Kind::kFinal);
  EXPECT_EQ(kind_of(RedisReply::String("MOVED 1 h:1")), Kind::kFinal);  // a value, not an error
  EXPECT_EQ(kind_of(RedisReply::Error("ERR wrong number of arguments")), Kind::kFinal);
  EXPECT_EQ(kind_of(RedisReply::Error("EXECABORT Transaction discarded")), Kind::kFinal);
  EXPECT_EQ(kind_of(RedisReply::Error("TRYAGAIN Multiple keys request during rehashing of slot")),
            Kind::kTryAgain);
  EXPECT_EQ(kind_of(RedisReply::Error("CLUSTERDOWN The cluster is down")), Kind::kClusterDown);
  absl::StatusOr<ClusterReplyAction> moved =
      ClassifyClusterReply(RedisReply::Error("MOVED 3999 127.0.0.1:6381"));
  ASSERT_THAT(moved.status(), IsOk());
  EXPECT_EQ(moved->kind, Kind::kMoved);
  EXPECT_EQ(moved->redirect.slot, 3999);
  EXPECT_EQ(moved->redirect.target.HostPort(), "127.0.0.1:6381");
  absl::StatusOr<ClusterReplyAction> ask =
      ClassifyClusterReply(RedisReply::Error("ASK 12 [::1]:7000"));
  ASSERT_THAT(ask.status(), IsOk());
  EXPECT_EQ(ask->kind, Kind::kAsk);
  EXPECT_EQ(ask->redirect.slot, 12);
  EXPECT_EQ(ask->redirect.target.HostPort(), "[::1]:7000");
  EXPECT_THAT(ClassifyClusterReply(RedisReply::Error("MOVED x h:1")).status(),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("malformed redirect")));
}

}  // namespace
}  // namespace redrive
