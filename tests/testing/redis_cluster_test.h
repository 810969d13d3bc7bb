// RedisClusterTest: the gtest fixture base of the cluster client tests
// (cluster_async_test, cluster_connection_test). One TestRedisCluster for
// the whole binary (SetUpTestSuite); before each test the cluster is healthy
// and its three masters are empty. Helpers read a node directly and pick
// keys by the master serving them.
//
// Thread-compatible (the test thread).
#ifndef REDRIVE_TESTS_TESTING_REDIS_CLUSTER_TEST_H_
#define REDRIVE_TESTS_TESTING_REDIS_CLUSTER_TEST_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/redis/cluster_options.h"
#include "daemon/redis/cluster_slots.h"
#include "tests/testing/redis_cluster.h"
#include "tests/testing/status_matchers.h"

namespace redrive::testing {

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = TestRedisCluster::Start().release(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Derived fixtures call it first and stop on HasFatalFailure().
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    ASSERT_THAT(cluster_->WaitHealthy(), IsOk());
    masters_ = cluster_->MasterPorts();
    ASSERT_EQ(masters_.size(), 3u);
    for (int port : masters_) Direct(port, {"FLUSHALL"});
  }

  // Options whose seeds are every live node.
  static ClusterOptions SeedOptions() {
    ClusterOptions options;
    for (int port : cluster_->live_ports()) {
      options.seeds.push_back(TestRedisCluster::AddressOf(port));
    }
    return options;
  }

  // The reply to `command`, which must not have failed (an error reply
  // "failed" stands in for a failure).
  static RedisReply Answered(absl::StatusOr<RedisReply> reply, absl::string_view command) {
    EXPECT_THAT(reply, IsOk()) << command;
    return reply.ok() ? *std::move(reply) : RedisReply::Error("failed");
  }

  // A command on one node over a direct connection.
  static RedisReply Direct(int port, const RedisArgv& argv) {
    return Answered(TestRedisCluster::Connect(port)->Command(argv), argv[0]);
  }

  // A key "<prefix>N" whose slot `port` serves.
  static std::string KeyOn(int port, const std::string& prefix) {
    for (int i = 0; i < 10000; ++i) {
      std::string key = absl::StrCat(prefix, i);
      if (cluster_->MasterOf(KeySlot(key)) == port) return key;
    }
    ADD_FAILURE() << "no key for " << port;
    return prefix;
  }

  // Two keys of one slot served by `from`, "{tag}a" and "{tag}b" (both "1"),
  // the slot migrating to `to` with only "{tag}a" moved: a command on both
  // keys is TRYAGAIN on `from` until the migration ends.
  struct SplitSlot {
    std::string a;
    std::string b;
    int slot = 0;
  };
  static SplitSlot SplitASlot(int from, int to) {
    const std::string tag = KeyOn(from, "t");
    SplitSlot split{absl::StrCat("{", tag, "}a"), absl::StrCat("{", tag, "}b"), KeySlot(tag)};
    EXPECT_EQ(Direct(from, {"MSET", split.a, "1", split.b, "1"}).str, "OK");
    EXPECT_THAT(cluster_->BeginMigration(split.slot, to), IsOk());
    EXPECT_EQ(Direct(from, {"MIGRATE", "127.0.0.1", absl::StrCat(to), split.a, "0", "5000"}).str,
              "OK");
    return split;
  }

  // masters_[1] after `send` (the client under test) wrote "kept" to one of
  // its keys and its replica got it, SIGKILLed.
  struct KilledMaster {
    int port = 0;
    int replica = 0;
    std::string key;
  };
  KilledMaster WriteThenKillAMaster(const std::function<RedisReply(const RedisArgv&)>& send) {
    KilledMaster killed{masters_[1], cluster_->ReplicaOf(masters_[1]), KeyOn(masters_[1], "k")};
    EXPECT_NE(killed.replica, 0);
    EXPECT_EQ(send({"SET", killed.key, "kept"}).str, "OK");
    EXPECT_EQ(Direct(killed.port, {"WAIT", "1", "2000"}).integer, 1);  // the replica has it
    cluster_->Kill(killed.port);
    return killed;
  }
  // The client's `masters` after the failover: the replica, not the killed
  // master.
  static void ExpectReplaced(const KilledMaster& killed, const std::vector<RedisAddress>& masters) {
    std::vector<int> ports;
    for (const RedisAddress& a : masters) ports.push_back(a.port);
    EXPECT_THAT(ports, ::testing::Not(::testing::Contains(killed.port)));
    EXPECT_THAT(ports, ::testing::Contains(killed.replica));
  }

  // Another master than `port`.
  int OtherMaster(int port) const { return masters_[0] == port ? masters_[1] : masters_[0]; }

  inline static TestRedisCluster* cluster_ = nullptr;
  std::vector<int> masters_;
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_REDIS_CLUSTER_TEST_H_
