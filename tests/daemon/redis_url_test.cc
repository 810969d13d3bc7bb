#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace redrive
