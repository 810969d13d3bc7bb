// ClusterConnection (the blocking cluster commander) against a real Redis
// Cluster (three masters, three replicas, TestRedisCluster): routing by slot,
// pipelines split per master, MULTI/EXEC blocks on one slot, MOVED, ASK and
// TRYAGAIN, discovery through the seeds, scripts on every master and a
// killed master. Where a command landed is read back on the node itself over
// a direct connection.
//
// One cluster for the whole binary (SetUpTestSuite); the tests run in file
// order and the last one kills a master for good.
#include "daemon/redis/cluster_connection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/errors.h"
#include "tests/testing/ports.h"
#include "tests/testing/redis_cluster.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TestRedisCluster;
using ::testing::HasSubstr;

class ClusterConnectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = TestRedisCluster::Start().release(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    ASSERT_THAT(cluster_->WaitHealthy(), IsOk());
    masters_ = cluster_->MasterPorts();
    ASSERT_EQ(masters_.size(), 3u);
    for (int port : masters_) Direct(port, {"FLUSHALL"});
    StartClient(Options());
  }

  // Seeds: every live node.
  static ClusterOptions Options() {
    ClusterOptions options;
    for (int port : cluster_->live_ports()) {
      options.seeds.push_back(TestRedisCluster::AddressOf(port));
    }
    return options;
  }
  void StartClient(ClusterOptions options) {
    client_ = std::make_unique<ClusterConnection>(std::move(options));
  }

  // Through the cluster client; the reply must not be an error.
  RedisReply Ok(const RedisArgv& argv) {
    absl::StatusOr<RedisReply> r = CheckReply(client_->Command(argv));
    EXPECT_THAT(r, IsOk()) << argv[0];
    return r.ok() ? *r : RedisReply::Error("failed");
  }
  std::vector<RedisReply> Pipe(const std::vector<RedisArgv>& commands) {
    absl::StatusOr<std::vector<RedisReply>> r = client_->Pipeline(commands);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? *r : std::vector<RedisReply>();
  }

  // A command on one node over a direct connection.
  static RedisReply Direct(int port, const RedisArgv& argv) {
    absl::StatusOr<RedisReply> r = TestRedisCluster::Connect(port)->Command(argv);
    EXPECT_THAT(r, IsOk()) << argv[0];
    return r.ok() ? *r : RedisReply::Error("failed");
  }
  // Keys on every master, summed.
  int64_t TotalKeys() const {
    int64_t total = 0;
    for (int port : masters_) total += Direct(port, {"DBSIZE"}).integer;
    return total;
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
  int ClientMasterOf(int slot) const {
    const ClusterNode* m = client_->slot_map().MasterOf(slot);
    return m == nullptr ? 0 : m->port;
  }

  static TestRedisCluster* cluster_;
  std::vector<int> masters_;
  std::unique_ptr<ClusterConnection> client_;
};

TestRedisCluster* ClusterConnectionTest::cluster_ = nullptr;

TEST_F(ClusterConnectionTest, KeysLandOnTheMasterOfTheirSlot) {
  // Nothing happens before the first command.
  EXPECT_EQ(client_->topology_version(), 0u);
  EXPECT_EQ(client_->stats().refreshes, 0);
  std::vector<std::vector<std::string>> keys;
  for (int port : masters_) {
    keys.push_back({KeyOn(port, "a"), KeyOn(port, "b")});
    for (const std::string& key : keys.back()) {
      EXPECT_EQ(Ok({"SET", key, absl::StrCat("v-", key)}).str, "OK");
    }
  }
  EXPECT_EQ(client_->topology_version(), 1u);
  for (size_t i = 0; i < masters_.size(); ++i) {
    EXPECT_EQ(Direct(masters_[i], {"DBSIZE"}).integer, 2) << masters_[i];
    for (const std::string& key : keys[i]) {
      EXPECT_EQ(Direct(masters_[i], {"GET", key}).str, absl::StrCat("v-", key));
      EXPECT_EQ(Ok({"GET", key}).str, absl::StrCat("v-", key));
    }
    // ForNode: that node's own keyspace, not routed.
    RedisCommander* node = client_->ForNode(TestRedisCluster::AddressOf(masters_[i]));
    ASSERT_NE(node, nullptr);
    EXPECT_EQ(node->Command({"DBSIZE"})->integer, 2);
  }
  EXPECT_EQ(client_->stats().moved, 0);
  EXPECT_EQ(client_->stats().ask, 0);
  EXPECT_EQ(client_->stats().refreshes, 1);
  std::vector<int> listed;
  for (const RedisAddress& a : client_->Masters()) listed.push_back(a.port);
  EXPECT_EQ(listed, masters_);
  EXPECT_EQ(Ok({"PING"}).str, "PONG");
}

TEST_F(ClusterConnectionTest, PipelineAcrossMastersAnswersInOrder) {
  const std::string a = KeyOn(masters_[0], "p");
  const std::string b = KeyOn(masters_[1], "p");
  const std::string c = KeyOn(masters_[2], "p");
  const std::vector<RedisReply> replies = Pipe({{"SET", a, "1"},
                                                {"INCR", b},
                                                {"RPUSH", c, "x", "y"},
                                                {"INCRBY", a, "10"},
                                                {"GET", b},
                                                {"PING"},
                                                {"LLEN", c},
                                                {"GET", "missing"}});
  ASSERT_EQ(replies.size(), 8u);
  EXPECT_EQ(replies[0].str, "OK");
  EXPECT_EQ(replies[1].integer, 1);
  EXPECT_EQ(replies[2].integer, 2);
  EXPECT_EQ(replies[3].integer, 11);
  EXPECT_EQ(replies[4].str, "1");
  EXPECT_EQ(replies[5].str, "PONG");
  EXPECT_EQ(replies[6].integer, 2);
  EXPECT_TRUE(replies[7].is_nil());
  EXPECT_EQ(Direct(masters_[0], {"GET", a}).str, "11");
  EXPECT_EQ(Direct(masters_[1], {"GET", b}).str, "1");
  EXPECT_EQ(Direct(masters_[2], {"LLEN", c}).integer, 2);
  EXPECT_EQ(TotalKeys(), 3);
  EXPECT_EQ(client_->stats().moved, 0);  // each command went to its master
}

TEST_F(ClusterConnectionTest, MultiBlockOnOneHashTagRunsOnItsMaster) {
  // The shape of streams.cc AddAll: XADDs to streams of one channel.
  const std::string s1 = "{orders}:h1";
  const std::string s2 = "{orders}:h2";
  const int owner = cluster_->MasterOf(KeySlot("orders"));
  const std::vector<RedisReply> replies = Pipe({{"MULTI"},
                                                {"XADD", s1, "1-1", "__data__", "a"},
                                                {"XADD", s2, "1-2", "__data__", "b"},
                                                {"PING"},
                                                {"EXEC"}});
  ASSERT_EQ(replies.size(), 5u);
  EXPECT_EQ(replies[0].str, "OK");
  EXPECT_EQ(replies[1].str, "QUEUED");
  EXPECT_EQ(replies[3].str, "QUEUED");
  ASSERT_EQ(replies[4].elements.size(), 3u);
  EXPECT_EQ(replies[4].elements[0].str, "1-1");
  EXPECT_EQ(replies[4].elements[1].str, "1-2");
  EXPECT_EQ(replies[4].elements[2].str, "PONG");
  EXPECT_EQ(Direct(owner, {"XLEN", s1}).integer, 1);
  EXPECT_EQ(Direct(owner, {"XLEN", s2}).integer, 1);
  EXPECT_EQ(TotalKeys(), 2);
  EXPECT_EQ(client_->stats().moved, 0);
}

TEST_F(ClusterConnectionTest, RefusedCommandsSendNothing) {
  const std::string x = KeyOn(masters_[0], "x");
  const std::string y = KeyOn(masters_[1], "y");
  // A MULTI block across slots.
  EXPECT_THAT(client_->Pipeline({{"MULTI"}, {"SET", x, "1"}, {"SET", y, "2"}, {"EXEC"}}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("CROSSSLOT: MULTI block keys \"", x, "\" (slot ",
                                              KeySlot(x), ") and \"", y, "\" (slot ", KeySlot(y),
                                              ") are in different cluster slots"))));
  // MULTI anywhere but first, a block without EXEC, SCRIPT LOAD in a block.
  EXPECT_THAT(client_->Pipeline({{"SET", x, "1"}, {"MULTI"}, {"SET", x, "2"}, {"EXEC"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("MULTI at position 1 of 4; a pipeline is either independent "
                                 "commands or one MULTI block")));
  EXPECT_THAT(
      client_->Pipeline({{"MULTI"}, {"SET", x, "1"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a MULTI block must end with EXEC")));
  EXPECT_THAT(client_->Pipeline({{"MULTI"}, {"SCRIPT", "LOAD", "return 1"}, {"EXEC"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("SCRIPT runs on every master; it cannot be part of a MULTI")));
  // An independent pipeline with one unroutable command.
  EXPECT_THAT(client_->Pipeline({{"SET", x, "1"}, {"DEL", x, y}}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CROSSSLOT: DEL keys")));
  EXPECT_THAT(client_->Pipeline({{"SET", x, "1"}, {"SCAN", "0"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("SCAN acts on one node or connection")));
  EXPECT_THAT(client_->Command({"KEYS", "*"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("KEYS acts on one node or connection")));
  EXPECT_EQ(TotalKeys(), 0);
}

TEST_F(ClusterConnectionTest, MovedIsFollowedForCommandsPipelinesAndBlocks) {
  // Without refreshes (but the first), only MOVED teaches the client.
  ClusterOptions options = Options();
  options.min_refresh_interval = absl::Hours(1);
  StartClient(options);
  const int from = masters_[0];
  const int to = masters_[1];
  const std::string tag = KeyOn(from, "m");
  const std::string a = absl::StrCat("{", tag, "}a");
  const std::string b = absl::StrCat("{", tag, "}b");
  const std::string other = KeyOn(masters_[2], "o");
  const int slot = KeySlot(tag);
  EXPECT_EQ(Ok({"INCR", a}).integer, 1);

  ASSERT_THAT(cluster_->MoveSlot(slot, to), IsOk());
  ASSERT_EQ(ClientMasterOf(slot), from);  // the client has not noticed
  // INCR is not idempotent: MOVED means the old owner did not run it.
  EXPECT_EQ(Ok({"INCR", a}).integer, 2);
  EXPECT_EQ(client_->stats().moved, 1);
  EXPECT_EQ(ClientMasterOf(slot), to);

  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());
  std::vector<RedisReply> replies = Pipe({{"INCR", other}, {"INCR", a}, {"INCR", other}});
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].integer, 1);
  EXPECT_EQ(replies[1].integer, 3);
  EXPECT_EQ(replies[2].integer, 2);
  EXPECT_EQ(client_->stats().moved, 2);
  EXPECT_EQ(ClientMasterOf(slot), from);

  ASSERT_THAT(cluster_->MoveSlot(slot, to), IsOk());
  replies = Pipe({{"MULTI"}, {"INCR", a}, {"INCR", b}, {"EXEC"}});
  ASSERT_EQ(replies.size(), 4u);
  ASSERT_EQ(replies[3].elements.size(), 2u) << replies[3].DebugString();
  EXPECT_EQ(replies[3].elements[0].integer, 4);
  EXPECT_EQ(replies[3].elements[1].integer, 1);
  EXPECT_EQ(client_->stats().moved, 3);
  EXPECT_EQ(Direct(to, {"GET", a}).str, "4");
  EXPECT_EQ(Direct(to, {"GET", b}).str, "1");
  EXPECT_EQ(Direct(from, {"DBSIZE"}).integer, 0);
  EXPECT_EQ(client_->stats().refreshes, 1);
  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());  // as it was
}

TEST_F(ClusterConnectionTest, MovedLeadsToARefreshOnceTheIntervalAllows) {
  const int from = masters_[0];
  const std::string key = KeyOn(from, "r");
  const int slot = KeySlot(key);
  EXPECT_EQ(Ok({"SET", key, "v"}).str, "OK");
  const uint64_t version = client_->topology_version();
  ASSERT_THAT(cluster_->MoveSlot(slot, masters_[2]), IsOk());
  EXPECT_EQ(Ok({"GET", key}).str, "v");
  EXPECT_EQ(client_->stats().moved, 1);
  // The refresh runs before a later command, at most 100 ms after the last.
  EXPECT_TRUE(::redrive::testing::WaitFor(
      [&] { return Ok({"PING"}).str == "PONG" && client_->topology_version() > version; },
      absl::Seconds(5)));
  EXPECT_EQ(client_->stats().refreshes, 2);
  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());
}

TEST_F(ClusterConnectionTest, AskDuringAMigration) {
  ClusterOptions options = Options();
  options.max_retries = 2;
  options.retry_delay = absl::Milliseconds(10);
  StartClient(options);
  const int from = masters_[0];
  const int to = masters_[2];
  const std::string tag = KeyOn(from, "asked");
  const std::string key = absl::StrCat("{", tag, "}k");
  const int slot = KeySlot(tag);
  EXPECT_EQ(Ok({"INCR", key}).integer, 1);
  ASSERT_THAT(cluster_->BeginMigration(slot, to), IsOk());
  ASSERT_THAT(cluster_->MigrateKeys(slot, to), IsOk());  // the key is on `to` now
  EXPECT_EQ(Ok({"INCR", key}).integer, 2);
  EXPECT_EQ(client_->stats().ask, 1);
  EXPECT_EQ(client_->stats().moved, 0);
  EXPECT_EQ(ClientMasterOf(slot), from);  // ASK does not change the map
  EXPECT_EQ(Direct(from, {"EXISTS", key}).integer, 0);
  // In a pipeline: the redirected command is re-sent alone, with ASKING.
  std::vector<RedisReply> replies = Pipe({{"INCR", key}, {"PING"}});
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].integer, 3);
  EXPECT_EQ(client_->stats().ask, 2);
  // A block is not split: ASK inside it is waited out, then returned.
  replies = Pipe({{"MULTI"}, {"INCR", key}, {"EXEC"}});
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_THAT(replies[1].str, HasSubstr("ASK"));
  EXPECT_THAT(replies[2].str, HasSubstr("EXECABORT"));
  EXPECT_EQ(client_->stats().retries, 2);
  ASSERT_THAT(cluster_->FinishMigration(slot, to), IsOk());
  replies = Pipe({{"MULTI"}, {"INCR", key}, {"EXEC"}});
  ASSERT_EQ(replies.size(), 3u);
  ASSERT_EQ(replies[2].elements.size(), 1u) << replies[2].DebugString();
  EXPECT_EQ(replies[2].elements[0].integer, 4);  // the block ran once
  EXPECT_EQ(client_->stats().moved, 1);
  EXPECT_EQ(Direct(to, {"GET", key}).str, "4");
  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());
}

TEST_F(ClusterConnectionTest, TryAgainIsRetriedAFewTimesThenReturned) {
  ClusterOptions options = Options();
  options.max_retries = 3;
  options.retry_delay = absl::Milliseconds(10);
  StartClient(options);
  const int from = masters_[0];
  const int to = masters_[1];
  const std::string tag = KeyOn(from, "t");
  const std::string a = absl::StrCat("{", tag, "}a");
  const std::string b = absl::StrCat("{", tag, "}b");
  const int slot = KeySlot(tag);
  EXPECT_EQ(Ok({"SET", a, "1"}).str, "OK");
  EXPECT_EQ(Ok({"SET", b, "1"}).str, "OK");
  ASSERT_THAT(cluster_->BeginMigration(slot, to), IsOk());
  // Only `a` moves: a two-key command on the source is TRYAGAIN.
  Direct(from, {"MIGRATE", "127.0.0.1", absl::StrCat(to), a, "0", "5000"});
  absl::StatusOr<RedisReply> r = client_->Command({"EXISTS", a, b});
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->is_error());
  EXPECT_THAT(r->str, HasSubstr("TRYAGAIN"));
  EXPECT_EQ(client_->stats().retries, 3);
  ASSERT_THAT(cluster_->MigrateKeys(slot, to), IsOk());
  ASSERT_THAT(cluster_->FinishMigration(slot, to), IsOk());
  EXPECT_EQ(Ok({"EXISTS", a, b}).integer, 2);
  EXPECT_EQ(client_->stats().retries, 3);
  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());
}

TEST_F(ClusterConnectionTest, DiscoversThroughTheNextSeedAndFailsWhenNoneAnswers) {
  const int nobody = ::redrive::testing::PickFreePort();
  ClusterOptions options;
  options.seeds = {TestRedisCluster::AddressOf(nobody),
                   TestRedisCluster::AddressOf(cluster_->live_ports().back())};
  StartClient(options);
  EXPECT_EQ(Ok({"SET", "k", "v"}).str, "OK");
  EXPECT_EQ(Direct(cluster_->MasterOf(KeySlot("k")), {"GET", "k"}).str, "v");
  EXPECT_EQ(client_->stats().refreshes, 1);

  options.seeds = {TestRedisCluster::AddressOf(nobody)};
  StartClient(options);
  EXPECT_THAT(client_->Command({"GET", "k"}),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat(
                           "no node answered CLUSTER SLOTS (tried 127.0.0.1:", nobody, ")"))));
  EXPECT_THAT(client_->Pipeline({{"GET", "k"}}), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(client_->Masters().empty());
  EXPECT_EQ(client_->topology_version(), 0u);
}

TEST_F(ClusterConnectionTest, ScriptsAreLoadedOnEveryMaster) {
  const std::string sha = Ok({"SCRIPT", "LOAD", "return {KEYS[1], ARGV[1]}"}).str;
  ASSERT_EQ(sha.size(), 40u);
  for (int port : masters_) {
    EXPECT_EQ(Direct(port, {"SCRIPT", "EXISTS", sha}).elements[0].integer, 1) << port;
    const std::string key = KeyOn(port, "s");
    const RedisReply result = Ok({"EVALSHA", sha, "1", key, absl::StrCat(port)});
    ASSERT_EQ(result.elements.size(), 2u);
    EXPECT_EQ(result.elements[0].str, key);
    EXPECT_EQ(result.elements[1].str, absl::StrCat(port));
  }
  EXPECT_EQ(Ok({"EVAL", "return 7", "0"}).integer, 7);
  EXPECT_EQ(Ok({"SCRIPT", "EXISTS", sha}).elements[0].integer, 1);
  EXPECT_EQ(Ok({"SCRIPT", "FLUSH"}).str, "OK");
  for (int port : masters_) {
    EXPECT_EQ(Direct(port, {"SCRIPT", "EXISTS", sha}).elements[0].integer, 0) << port;
  }
}

// Last: the cluster keeps a killed master's replica as master.
TEST_F(ClusterConnectionTest, AKilledMasterIsUnavailableThenItsReplicaServes) {
  ClusterOptions options = Options();
  options.connection.connect_timeout = absl::Milliseconds(500);
  StartClient(options);
  const int victim = masters_[1];
  const int replica = cluster_->ReplicaOf(victim);
  ASSERT_NE(replica, 0);
  const std::string key = KeyOn(victim, "k");
  EXPECT_EQ(Ok({"SET", key, "kept"}).str, "OK");
  EXPECT_EQ(Direct(victim, {"WAIT", "1", "2000"}).integer, 1);  // the replica has it
  cluster_->Kill(victim);
  // The open connection breaks: UNAVAILABLE, not re-sent.
  EXPECT_THAT(client_->Command({"SET", key, "lost?"}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(absl::StrCat(victim))));
  // Until the replica takes over, the victim's share of a pipeline fails it
  // (the other master's command ran).
  const std::string other = KeyOn(masters_[0], "o");
  EXPECT_THAT(client_->Pipeline({{"SET", other, "1"}, {"GET", key}}),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(absl::StrCat(victim))));
  EXPECT_EQ(Direct(masters_[0], {"GET", other}).str, "1");
  absl::StatusOr<RedisReply> got;
  ASSERT_TRUE(::redrive::testing::WaitFor(
      [&] {
        got = CheckReply(client_->Command({"GET", key}));
        return got.ok();
      },
      absl::Seconds(20)))
      << got.status();
  EXPECT_EQ(got->str, "kept");
  EXPECT_EQ(Ok({"SET", key, "again"}).str, "OK");
  EXPECT_EQ(Direct(replica, {"GET", key}).str, "again");
  std::vector<int> listed;
  for (const RedisAddress& a : client_->Masters()) listed.push_back(a.port);
  EXPECT_THAT(listed, ::testing::Not(::testing::Contains(victim)));
  EXPECT_THAT(listed, ::testing::Contains(replica));
}

}  // namespace
}  // namespace redrive
