#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "daemon/redis/url.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;

TEST(RedisUrlTest, HostPortDb) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl("redis://redis.local:6380/3");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "redis.local");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 3);
  EXPECT_FALSE(a->is_unix());
  EXPECT_EQ(a->user, "");
  EXPECT_EQ(a->password, "");
}

TEST(RedisUrlTest, DefaultsPortAndDb) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl("redis://127.0.0.1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->port, 6379);
  EXPECT_EQ(a->db, 0);
}

TEST(RedisUrlTest, UserAndPasswordArePercentDecodedAndNeverInRedacted) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl("redis://app:p%40ss%3Aw0rd@10.0.0.1:6379/0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->user, "app");
  EXPECT_EQ(a->password, "p@ss:w0rd");
  EXPECT_EQ(a->Redacted(), "redis://10.0.0.1:6379/0");
}

TEST(RedisUrlTest, PasswordOnly) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl("redis://:secret@h:1/0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->user, "");
  EXPECT_EQ(a->password, "secret");
  a = ParseRedisUrl("redis://secret@h:1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->password, "secret");
}

TEST(RedisUrlTest, Ipv6) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl("redis://[::1]:7000/2");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 7000);
  EXPECT_EQ(a->Redacted(), "redis://[::1]:7000/2");
}

TEST(RedisUrlTest, UnixSockets) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl("unix:///run/redis.sock?db=4");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->unix_path, "/run/redis.sock");
  EXPECT_EQ(a->db, 4);
  a = ParseRedisUrl("unix:/tmp/r.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->unix_path, "/tmp/r.sock");
  a = ParseRedisUrl("unix://:pw@/tmp/r.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->password, "pw");
  EXPECT_EQ(a->unix_path, "/tmp/r.sock");
}

TEST(RedisUrlTest, RejectsMalformed) {
  EXPECT_THAT(ParseRedisUrl("http://h:1"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRedisUrl("redis://h:0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
  EXPECT_THAT(ParseRedisUrl("redis://h:65536"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRedisUrl("redis://h:x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRedisUrl("redis://h:1/-1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("database")));
  EXPECT_THAT(ParseRedisUrl("redis://h:1/16000"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRedisUrl("redis://:1"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRedisUrl("unix:relative.sock"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(ParseRedisUrl("redis://[::1"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRedisUrl("redis://:p%4@h"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRedisUrl("redis://:p%zz@h"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RedisUrlTest, RejectsRedissPointingAtTheTunnel) {
  for (const char* url : {"rediss://redis.example.com:6380/0", "REDISS://:pw@h:6380"}) {
    absl::StatusOr<RedisAddress> a = ParseRedisUrl(url);
    EXPECT_THAT(a, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("rediss:// (Redis over TLS) is not supported: hiredis "
                                      "0.14, the version Debian 12 ships, has no TLS")))
        << url;
    EXPECT_THAT(a, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("deploy/stunnel/redis-tls-client.conf")));
  }
}

TEST(RedisUrlTest, SentinelListMasterAndDefaults) {
  absl::StatusOr<RedisAddress> a =
      ParseRedisUrl("redis-sentinel://10.0.0.1:26380,sentinel-b,[::1]:5000/mymaster");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(a->is_sentinel());
  EXPECT_FALSE(a->is_unix());
  EXPECT_EQ(a->sentinel.sentinels,
            (std::vector<HostPort>{{"10.0.0.1", 26380}, {"sentinel-b", 26379}, {"::1", 5000}}));
  EXPECT_EQ(a->sentinel.master_name, "mymaster");
  EXPECT_EQ(a->db, 0);
  EXPECT_EQ(a->user, "");
  EXPECT_EQ(a->password, "");
  EXPECT_EQ(a->sentinel.user, "");
  EXPECT_EQ(a->sentinel.password, "");
  EXPECT_EQ(a->Redacted(),
            "redis-sentinel://10.0.0.1:26380,sentinel-b:26379,[::1]:5000/mymaster/0");
}

TEST(RedisUrlTest, SentinelDataCredentialsDbAndSentinelAuth) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl(
      "redis-sentinel://app:da%40ta@127.0.0.1:1,127.0.0.1:2/orders-primary/7"
      "?sentinel_user=watch&sentinel_password=s%26cret");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->user, "app");
  EXPECT_EQ(a->password, "da@ta");
  EXPECT_EQ(a->db, 7);
  EXPECT_EQ(a->sentinel.master_name, "orders-primary");
  EXPECT_EQ(a->sentinel.user, "watch");
  EXPECT_EQ(a->sentinel.password, "s&cret");
  EXPECT_EQ(a->Redacted(), "redis-sentinel://127.0.0.1:1,127.0.0.1:2/orders-primary/7");
  a = ParseRedisUrl("redis-sentinel://h/m?sentinel_password=only");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->sentinel.user, "");
  EXPECT_EQ(a->sentinel.password, "only");
}

TEST(RedisUrlTest, SentinelRejectsMalformedWithPreciseMessages) {
  const std::pair<const char*, const char*> cases[] = {
      {"redis-sentinel:///m", "needs at least one sentinel host[:port]"},
      {"redis-sentinel://h:1", "needs the master name Sentinel monitors"},
      {"redis-sentinel://h:1/", "needs the master name Sentinel monitors"},
      {"redis-sentinel://h:1//0", "needs the master name Sentinel monitors"},
      {"redis-sentinel://h:1,,h:2/m", "empty sentinel address in 'h:1,,h:2'"},
      {"redis-sentinel://h:1,/m", "empty sentinel address in 'h:1,'"},
      {"redis-sentinel://h:0/m", "port must be 1..65535, got '0'"},
      {"redis-sentinel://h:1,h:x/m", "port must be 1..65535, got 'x'"},
      {"redis-sentinel://h:/m", "port must be 1..65535, got ''"},
      {"redis-sentinel://[::1/m", "unterminated [IPv6] host"},
      {"redis-sentinel://[::1]x/m", "junk after [IPv6] host"},
      {"redis-sentinel://:1/m", "host is required"},
      {"redis-sentinel://h/m/16000", "database must be 0..15999, got '16000'"},
      {"redis-sentinel://h/m/x", "database must be 0..15999, got 'x'"},
      {"redis-sentinel://h/m%20x", "master name must be printable ASCII without spaces"},
      {"redis-sentinel://h/m?db=1", "unknown query parameter 'db'"},
      {"redis-sentinel://h/m?sentinel_password=", "sentinel_password needs a value"},
      {"redis-sentinel://h/m?sentinel_password", "sentinel_password needs a value"},
      {"redis-sentinel://h/m?sentinel_password=a&sentinel_password=b",
       "sentinel_password is given twice"},
      {"redis-sentinel://h/m?sentinel_user=u", "sentinel_user needs sentinel_password"},
      {"redis-sentinel://h/m?sentinel_password=%zz", "bad %-escape"},
      {"redis-sentinel://:p%4@h/m", "truncated %-escape"},
  };
  for (const auto& [url, message] : cases) {
    EXPECT_THAT(ParseRedisUrl(url),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << url;
  }
}

TEST(RedisUrlTest, ClusterSeedsCredentialsAndDefaults) {
  absl::StatusOr<RedisAddress> a =
      ParseRedisUrl("redis-cluster://app:p%2Cw@10.0.0.1:7000,node-b,[::1]:7002");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(a->is_cluster());
  EXPECT_FALSE(a->is_sentinel());
  EXPECT_FALSE(a->is_unix());
  EXPECT_EQ(a->cluster_seeds,
            (std::vector<HostPort>{{"10.0.0.1", 7000}, {"node-b", 6379}, {"::1", 7002}}));
  EXPECT_EQ(a->host, "10.0.0.1");
  EXPECT_EQ(a->port, 7000);
  EXPECT_EQ(a->user, "app");
  EXPECT_EQ(a->password, "p,w");
  EXPECT_EQ(a->db, 0);
  EXPECT_EQ(a->Redacted(), "redis-cluster://10.0.0.1:7000,node-b:6379,[::1]:7002");
  // One seed, db 0 spelled out.
  a = ParseRedisUrl("redis-cluster://127.0.0.1:7000/0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->cluster_seeds, (std::vector<HostPort>{{"127.0.0.1", 7000}}));
  // redis:// with several hosts is the same form; a comma in the password
  // is not a host separator.
  a = ParseRedisUrl("redis://:x,y@127.0.0.1:7000,127.0.0.1:7001/0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->password, "x,y");
  EXPECT_EQ(a->cluster_seeds, (std::vector<HostPort>{{"127.0.0.1", 7000}, {"127.0.0.1", 7001}}));
  a = ParseRedisUrl("redis://:x,y@127.0.0.1:7000/3");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->is_cluster());
  EXPECT_EQ(a->db, 3);
}

TEST(RedisUrlTest, ClusterRejectsMalformedWithPreciseMessages) {
  const std::pair<const char*, const char*> cases[] = {
      {"redis-cluster://", "redis-cluster:// needs at least one cluster node host[:port]"},
      {"redis-cluster:///0", "redis-cluster:// needs at least one cluster node host[:port]"},
      {"redis-cluster://h:1,,h:2", "empty cluster node address in 'h:1,,h:2'"},
      {"redis-cluster://h:1,", "empty cluster node address in 'h:1,'"},
      {"redis-cluster://h:1/1", "redis-cluster:// is a Redis Cluster, which has only database 0"},
      {"redis://h:1,h:2/5", "redis:// with several hosts is a Redis Cluster, which has only"},
      {"redis-cluster://h:1/x", "database must be 0..15999, got 'x'"},
      {"redis-cluster://h:0", "port must be 1..65535, got '0'"},
      {"redis-cluster://h:1,h:1", "cluster node h:1 is listed twice"},
      {"redis-cluster://[::1", "unterminated [IPv6] host"},
      {"redis-cluster://:1", "host is required"},
  };
  for (const auto& [url, message] : cases) {
    EXPECT_THAT(ParseRedisUrl(url),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << url;
  }
}

TEST(RedisUrlTest, UnknownSchemeNamesTheSentinelForm) {
  EXPECT_THAT(ParseRedisUrl("sentinel://h/m"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("redis-sentinel://host:port[,host:port]/master")));
}

TEST(RedisUrlTest, PlainUrlsAreNotSentinel) {
  absl::StatusOr<RedisAddress> a = ParseRedisUrl("redis://h:1/0");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->is_sentinel());
}

}  // namespace
}  // namespace redrive
