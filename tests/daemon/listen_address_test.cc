#include "daemon/listen_address.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ListenAddressTest, ParsesHostPortIpv6AndUnix) {
  absl::StatusOr<ListenAddress> a = ParseListenAddress("127.0.0.1:50051");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->is_unix);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 50051);
  a = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  a = ParseListenAddress("localhost:65535");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port, 65535);
  a = ParseListenAddress("unix:/run/redrive/redrive.sock");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->is_unix);
  EXPECT_EQ(a->path, "/run/redrive/redrive.sock");
  a = ParseListenAddress("unix:///run/x.sock");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->path, "/run/x.sock");
}

TEST(ListenAddressTest, RejectsOutOfRangeAndMalformedPorts) {
  using C = absl::StatusCode;
  EXPECT_THAT(ParseListenAddress("127.0.0.1:99999"),
              StatusIs(C::kInvalidArgument, HasSubstr("the port must be a number in 0..65535")));
  EXPECT_THAT(ParseListenAddress("127.0.0.1:65536"), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(ParseListenAddress("127.0.0.1:-1"), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(ParseListenAddress("127.0.0.1:"), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(ParseListenAddress("127.0.0.1:80x"), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(ParseListenAddress("127.0.0.1"), StatusIs(C::kInvalidArgument, HasSubstr("no port")));
  EXPECT_THAT(ParseListenAddress(":50051"), StatusIs(C::kInvalidArgument, HasSubstr("no host")));
  EXPECT_THAT(ParseListenAddress("::1:50051"), StatusIs(C::kInvalidArgument, HasSubstr("[addr]")));
  EXPECT_THAT(ParseListenAddress("[::1:50051"), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(ParseListenAddress("unix:"), StatusIs(C::kInvalidArgument));
}

TEST(ListenAddressTest, LoopbackIsOnlyThisMachine) {
  for (const char* text : {"127.0.0.1:1", "127.1.2.3:1", "[::1]:1", "localhost:1", "LOCALHOST:1",
                           "unix:/tmp/x.sock"}) {
    absl::StatusOr<ListenAddress> a = ParseListenAddress(text);
    ASSERT_TRUE(a.ok()) << text;
    EXPECT_TRUE(IsLoopback(*a)) << text;
    EXPECT_EQ(ExposureWarning(*a, false), "") << text;
  }
  for (const char* text : {"0.0.0.0:1", "[::]:1", "10.0.0.5:1", "127.example.com:1", "pod.local:1",
                           "[::ffff:127.0.0.1]:1"}) {
    absl::StatusOr<ListenAddress> a = ParseListenAddress(text);
    ASSERT_TRUE(a.ok()) << text;
    EXPECT_FALSE(IsLoopback(*a)) << text;
  }
}

TEST(ListenAddressTest, NetworkAddressWarnsThatTheBrokerIsUnauthenticated) {
  absl::StatusOr<ListenAddress> a = ParseListenAddress("0.0.0.0:50051");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(ExposureWarning(*a, false),
            "--grpc-listen=0.0.0.0:50051 is reachable from the network: the Broker (Publish, "
            "Subscribe) is unauthenticated there; use --broker-auth=token, or listen on loopback "
            "or a Unix socket");
  EXPECT_THAT(ExposureWarning(*a, true), HasSubstr("need the broker token"));
}

}  // namespace
}  // namespace redrive
