// Unit tests of daemon/redis/cluster_options.h: what ClusterAsync and
// ClusterConnection share (validation, node addresses, refresh candidates,
// CLUSTER SLOTS answers, the all-masters reply).
#include "daemon/redis/cluster_options.h"

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

RedisAddress Seed(const std::string& host, int port) {
  RedisAddress a;
  a.host = host;
  a.port = port;
  return a;
}

TEST(ClusterOptionsTest, ValidateChecksCountsAndDelays) {
  ClusterOptions o;
  o.seeds = {Seed("127.0.0.1", 7000)};
  EXPECT_THAT(ValidateClusterOptions(o), IsOk());
  o.max_retries = -1;
  EXPECT_THAT(ValidateClusterOptions(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("max_retries, retry_delay and min_refresh_interval must not be "
                                 "negative")));
  o.max_retries = 0;
  o.min_refresh_interval = absl::Milliseconds(-1);
  EXPECT_THAT(ValidateClusterOptions(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ClusterOptionsTest, NodesGetTheFirstSeedsCredentials) {
  ClusterOptions o;
  o.seeds = {Seed("10.0.0.1", 7000), Seed("10.0.0.2", 7001)};
  o.seeds[0].user = "app";
  o.seeds[0].password = "secret";
  o.connection.client_name = "redrive";
  o.connection.command_timeout = absl::Seconds(3);
  ClusterNode node;
  node.host = "10.0.0.9";
  node.port = 7005;
  const RedisConnectionOptions c = ClusterNodeConnection(o, node);
  EXPECT_EQ(c.address.host, "10.0.0.9");
  EXPECT_EQ(c.address.port, 7005);
  EXPECT_EQ(c.address.user, "app");
  EXPECT_EQ(c.address.password, "secret");
  EXPECT_EQ(c.address.db, 0);
  EXPECT_EQ(c.client_name, "redrive");
  EXPECT_EQ(c.command_timeout, absl::Seconds(3));
  EXPECT_EQ(c.sentinel, nullptr);
  EXPECT_EQ(ClusterNodeOf(o.seeds[1]).HostPort(), "10.0.0.2:7001");
}

TEST(ClusterOptionsTest, RefreshAsksTheMastersThenTheOtherSeeds) {
  ClusterOptions o;
  o.seeds = {Seed("127.0.0.1", 7001), Seed("127.0.0.1", 7009)};
  std::vector<std::string> names;
  for (const ClusterNode& n : RefreshCandidates(ClusterSlotMap(), o)) names.push_back(n.HostPort());
  EXPECT_THAT(names, ElementsAre("127.0.0.1:7001", "127.0.0.1:7009"));
  ClusterSlotMap map;
  ClusterNode a;
  a.host = "127.0.0.1";
  a.port = 7002;
  ClusterNode b = a;
  b.port = 7001;
  map.SetMaster(0, a);
  map.SetMaster(1, b);
  names.clear();
  for (const ClusterNode& n : RefreshCandidates(map, o)) names.push_back(n.HostPort());
  EXPECT_THAT(names, ElementsAre("127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7009"));
  EXPECT_THAT(NoNodeAnswered(RefreshCandidates(map, o)),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("redis cluster: no node answered CLUSTER SLOTS (tried "
                                 "127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7009)")));
}

TEST(ClusterOptionsTest, SlotMapFromReply) {
  ClusterNode node;
  node.host = "10.0.0.3";
  node.port = 7000;
  EXPECT_THAT(SlotMapFromReply(absl::UnavailableError("down"), node).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("down")));
  EXPECT_THAT(
      SlotMapFromReply(RedisReply::Error("ERR This instance has cluster support disabled"), node)
          .status(),
      StatusIs(absl::StatusCode::kInternal, HasSubstr("cluster support disabled")));
  EXPECT_THAT(SlotMapFromReply(RedisReply::Array({}), node).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("serves no slot")));
  const RedisReply one = RedisReply::Array({RedisReply::Array(
      {RedisReply::Integer(0), RedisReply::Integer(16383),
       RedisReply::Array({RedisReply::String(""), RedisReply::Integer(7000)})})});
  absl::StatusOr<ClusterSlotMap> map = SlotMapFromReply(one, node);
  ASSERT_THAT(map.status(), IsOk());
  ASSERT_NE(map->MasterOf(16383), nullptr);
  EXPECT_EQ(map->MasterOf(16383)->HostPort(), "10.0.0.3:7000");  // "" is the node asked
}

TEST(ClusterOptionsTest, CombineAllMastersGivesTheFirstFailureElseTheFirstReply) {
  std::vector<absl::StatusOr<RedisReply>> replies = {RedisReply::String("sha-a"),
                                                     RedisReply::String("sha-b")};
  EXPECT_EQ(CombineAllMasters(replies)->str, "sha-a");
  replies = {RedisReply::String("sha-a"), RedisReply::Error("ERR oom"),
             absl::UnavailableError("gone")};
  EXPECT_EQ(CombineAllMasters(replies)->str, "ERR oom");
  replies = {RedisReply::String("sha-a"), absl::UnavailableError("gone"),
             RedisReply::Error("ERR oom")};
  EXPECT_THAT(CombineAllMasters(replies).status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("gone")));
}

}  // namespace
}  // namespace redrive
