// ClusterAsync against a real Redis Cluster (three masters, three replicas,
// TestRedisCluster): routing by slot, MOVED after a slot moved, ASK during a
// migration, TRYAGAIN, streams and scripts on hash-tagged keys, the local
// CROSSSLOT refusal, a CLUSTER FAILOVER and a killed master. Where a command
// landed is read back on the node itself over a direct connection.
//
// One cluster for the whole binary (SetUpTestSuite); the tests run in file
// order and the last two change the topology for good.
#include "daemon/redis/cluster_async.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "daemon/event_loop.h"
#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/errors.h"
#include "tests/testing/ports.h"
#include "tests/testing/redis_cluster.h"
#include "tests/testing/redis_cluster_test.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TestRedisCluster;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(10);

TEST(ClusterOptionsTest, ValidateRefusesWhatCannotBeACluster) {
  ClusterOptions o;
  EXPECT_THAT(ClusterAsync::Validate(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one seed")));
  RedisAddress unix_seed;
  unix_seed.unix_path = "/tmp/r.sock";
  o.seeds = {unix_seed};
  EXPECT_THAT(ClusterAsync::Validate(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is a unix socket; cluster nodes are host:port")));
  RedisAddress db_seed;
  db_seed.host = "127.0.0.1";
  db_seed.db = 3;
  o.seeds = {db_seed};
  EXPECT_THAT(ClusterAsync::Validate(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("selects db 3; a cluster has only db 0")));
  o.seeds = {TestRedisCluster::AddressOf(7000)};
  EXPECT_THAT(ClusterAsync::Validate(o), IsOk());
  RedisAddress sentinel_seed;
  sentinel_seed.sentinel.sentinels = {HostPort{"127.0.0.1", 26379}};
  sentinel_seed.sentinel.master_name = "mymaster";
  o.seeds = {sentinel_seed};
  EXPECT_THAT(ClusterAsync::Validate(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is a Sentinel address; a cluster has no Sentinel-managed")));
  o.seeds = {TestRedisCluster::AddressOf(7000)};
  o.max_redirects = 0;
  EXPECT_THAT(ClusterAsync::Validate(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                                  HasSubstr("max_redirects must be at least 1")));
  o.max_redirects = 5;
  o.retry_delay = absl::Milliseconds(-1);
  EXPECT_THAT(ClusterAsync::Validate(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must not be negative")));
}

class ClusterAsyncTest : public ::redrive::testing::RedisClusterTest {
 protected:
  void SetUp() override {
    RedisClusterTest::SetUp();
    if (HasFatalFailure()) return;
    StartClient(SeedOptions());
    ASSERT_TRUE(::redrive::testing::WaitFor([this] {
      bool up = false;
      loop_.RunSync([&] { up = client_->connected(); });
      return up;
    }));
  }

  void TearDown() override {
    loop_.RunSync([this] { client_.reset(); });
  }

  void StartClient(ClusterOptions options) {
    loop_.RunSync([&] {
      client_.reset();
      client_ = std::make_unique<ClusterAsync>(loop_, std::move(options));
    });
  }

  // Sends `argv` through `commander` (the cluster client by default) on the
  // loop, checks that the callback did not run inside Send and ran once, and
  // waits for it.
  absl::StatusOr<RedisReply> Call(const RedisArgv& argv,
                                  const std::function<AsyncCommander*()>& commander = nullptr) {
    auto result = std::make_shared<std::optional<absl::StatusOr<RedisReply>>>();
    auto done = std::make_shared<absl::Notification>();
    auto calls = std::make_shared<int>(0);
    loop_.RunSync([&] {
      AsyncCommander* target = commander ? commander() : client_.get();
      target->Send(argv, [result, done, calls](absl::StatusOr<RedisReply> r) {
        if (++*calls > 1) return;
        *result = std::move(r);
        done->Notify();
      });
      EXPECT_FALSE(done->HasBeenNotified()) << "answered inside Send";
    });
    EXPECT_TRUE(done->WaitForNotificationWithTimeout(kWait)) << argv[0];
    loop_.RunSync([] {});  // a second callback would have run by now
    EXPECT_EQ(*calls, 1) << argv[0];
    return result->has_value() ? std::move(**result)
                               : absl::StatusOr<RedisReply>(absl::DeadlineExceededError("none"));
  }
  // Call, and the reply must not be an error.
  RedisReply Ok(const RedisArgv& argv) { return Answered(CheckReply(Call(argv)), argv[0]); }

  ClusterStats Stats() {
    ClusterStats s;
    loop_.RunSync([&] { s = client_->stats(); });
    return s;
  }
  int ClientMasterOf(int slot) {
    int port = 0;
    loop_.RunSync([&] {
      const ClusterNode* m = client_->slot_map().MasterOf(slot);
      port = m == nullptr ? 0 : m->port;
    });
    return port;
  }
  EventLoop loop_;
  std::unique_ptr<ClusterAsync> client_;
};

TEST_F(ClusterAsyncTest, KeySlotAgreesWithTheServer) {
  for (const std::string& key : std::vector<std::string>{
           "foo", "hello", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "a{b}c{d}",
           std::string("\xff\x00{\x01}", 5), std::string(300, 'k')}) {
    EXPECT_EQ(Direct(masters_[0], {"CLUSTER", "KEYSLOT", key}).integer, KeySlot(key)) << key;
  }
}

TEST_F(ClusterAsyncTest, KeysLandOnTheMasterOfTheirSlot) {
  std::vector<std::vector<std::string>> keys;
  for (int port : masters_) {
    keys.push_back({KeyOn(port, "a"), KeyOn(port, "b")});
    for (const std::string& key : keys.back()) {
      EXPECT_EQ(Ok({"SET", key, absl::StrCat("v-", key)}).str, "OK");
    }
  }
  for (size_t i = 0; i < masters_.size(); ++i) {
    EXPECT_EQ(Direct(masters_[i], {"DBSIZE"}).integer, 2) << masters_[i];
    for (const std::string& key : keys[i]) {
      EXPECT_EQ(Direct(masters_[i], {"GET", key}).str, absl::StrCat("v-", key));
      EXPECT_EQ(Ok({"GET", key}).str, absl::StrCat("v-", key));
    }
  }
  EXPECT_EQ(Stats().moved, 0);
  EXPECT_EQ(Stats().ask, 0);
  std::vector<int> listed;
  loop_.RunSync([&] {
    for (const RedisAddress& a : client_->Masters()) listed.push_back(a.port);
  });
  EXPECT_EQ(listed, masters_);
}

TEST_F(ClusterAsyncTest, DiscoversThroughTheNextSeedAndFailsWhenNoneAnswers) {
  const int nobody = ::redrive::testing::PickFreePort();
  ClusterOptions options;
  options.seeds = {TestRedisCluster::AddressOf(nobody),
                   TestRedisCluster::AddressOf(cluster_->live_ports().back())};
  options.connection.min_backoff = absl::Seconds(1);
  StartClient(options);
  // Sent before any topology is known: it waits for the discovery.
  EXPECT_EQ(Ok({"SET", "k", "v"}).str, "OK");
  EXPECT_EQ(Direct(cluster_->MasterOf(KeySlot("k")), {"GET", "k"}).str, "v");

  options.seeds = {TestRedisCluster::AddressOf(nobody)};
  StartClient(options);
  EXPECT_THAT(Call({"GET", "k"}),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat(
                           "no node answered CLUSTER SLOTS (tried 127.0.0.1:", nobody, ")"))));
}

TEST_F(ClusterAsyncTest, StaleMapIsFixedByMoved) {
  const int from = masters_[0];
  const int to = masters_[1];
  const std::string key = KeyOn(from, "counter");
  const int slot = KeySlot(key);
  EXPECT_EQ(Ok({"INCR", key}).integer, 1);
  ASSERT_THAT(cluster_->MoveSlot(slot, to), IsOk());
  ASSERT_EQ(ClientMasterOf(slot), from);  // the client has not noticed
  // INCR is not idempotent: MOVED means the old owner did not run it.
  EXPECT_EQ(Ok({"INCR", key}).integer, 2);
  EXPECT_EQ(Stats().moved, 1);
  EXPECT_EQ(ClientMasterOf(slot), to);
  EXPECT_EQ(Direct(to, {"GET", key}).str, "2");
  EXPECT_EQ(Direct(from, {"DBSIZE"}).integer, 0);
  // The refresh the MOVED scheduled brings the full map; later commands for
  // the slot go straight to the new owner.
  ASSERT_TRUE(::redrive::testing::WaitFor([&] { return Stats().refreshes >= 2; }, kWait));
  EXPECT_EQ(Ok({"INCR", key}).integer, 3);
  EXPECT_EQ(Stats().moved, 1);
  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());  // as it was
}

TEST_F(ClusterAsyncTest, AskDuringAMigrationGoesToTheTargetWithAsking) {
  const int from = masters_[0];
  const int to = masters_[2];
  const std::string key = KeyOn(from, "asked");
  const int slot = KeySlot(key);
  EXPECT_EQ(Ok({"INCR", key}).integer, 1);
  ASSERT_THAT(cluster_->BeginMigration(slot, to), IsOk());
  ASSERT_THAT(cluster_->MigrateKeys(slot, to), IsOk());  // the key is on `to` now
  EXPECT_EQ(Ok({"INCR", key}).integer, 2);
  EXPECT_EQ(Stats().ask, 1);
  EXPECT_EQ(Stats().moved, 0);
  EXPECT_EQ(ClientMasterOf(slot), from);  // ASK does not change the map
  EXPECT_EQ(Direct(from, {"EXISTS", key}).integer, 0);
  absl::StatusOr<std::vector<RedisReply>> on_target =
      TestRedisCluster::Connect(to)->Pipeline({{"ASKING"}, {"GET", key}});
  ASSERT_THAT(on_target, IsOk());
  EXPECT_EQ((*on_target)[1].str, "2");
  ASSERT_THAT(cluster_->FinishMigration(slot, to), IsOk());
  EXPECT_EQ(Ok({"INCR", key}).integer, 3);  // MOVED now
  EXPECT_EQ(Stats().moved, 1);
  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());
}

TEST_F(ClusterAsyncTest, TryAgainIsRetriedAFewTimesThenReturned) {
  ClusterOptions options;
  options.seeds = {TestRedisCluster::AddressOf(masters_[0])};
  options.max_retries = 3;
  options.retry_delay = absl::Milliseconds(10);
  StartClient(options);
  const int from = masters_[0];
  const int to = masters_[1];
  const auto [a, b, slot] = SplitASlot(from, to);
  absl::StatusOr<RedisReply> r = Call({"EXISTS", a, b});
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->is_error());
  EXPECT_THAT(r->str, HasSubstr("TRYAGAIN"));
  EXPECT_EQ(Stats().retries, 3);
  ASSERT_THAT(cluster_->MigrateKeys(slot, to), IsOk());
  ASSERT_THAT(cluster_->FinishMigration(slot, to), IsOk());
  EXPECT_EQ(Ok({"EXISTS", a, b}).integer, 2);
  ASSERT_THAT(cluster_->MoveSlot(slot, from), IsOk());
}

TEST_F(ClusterAsyncTest, StreamsAndScriptsOnHashTaggedKeys) {
  const std::string stream = "{orders}:stream";
  const std::string retry = "{orders}:retry";
  const int owner = cluster_->MasterOf(KeySlot(stream));
  EXPECT_EQ(Ok({"XGROUP", "CREATE", stream, "h1", "$", "MKSTREAM"}).str, "OK");
  const std::string id = Ok({"XADD", stream, "*", "__data__", "payload"}).str;
  ASSERT_FALSE(id.empty());
  const RedisReply read =
      Ok({"XREADGROUP", "GROUP", "h1", "c1", "COUNT", "10", "STREAMS", stream, ">"});
  ASSERT_EQ(read.elements.size(), 1u);
  EXPECT_EQ(read.elements[0].elements[0].str, stream);
  ASSERT_EQ(read.elements[0].elements[1].elements.size(), 1u);
  EXPECT_EQ(read.elements[0].elements[1].elements[0].elements[0].str, id);
  EXPECT_EQ(read.elements[0].elements[1].elements[0].elements[1].elements[1].str, "payload");
  EXPECT_EQ(Ok({"XPENDING", stream, "h1"}).elements[0].integer, 1);
  EXPECT_EQ(Ok({"XACK", stream, "h1", id}).integer, 1);
  EXPECT_EQ(Direct(owner, {"XPENDING", stream, "h1"}).elements[0].integer, 0);
  EXPECT_EQ(Direct(owner, {"XLEN", stream}).integer, 1);

  // SCRIPT LOAD reaches every master, so EVALSHA works whatever the slot.
  const std::string sha =
      Ok({"SCRIPT", "LOAD", "return {KEYS[1], ARGV[1], redis.call('XLEN', KEYS[1])}"}).str;
  ASSERT_EQ(sha.size(), 40u);
  for (int port : masters_)
    EXPECT_EQ(Direct(port, {"SCRIPT", "EXISTS", sha}).elements[0].integer, 1);
  const RedisReply result = Ok({"EVALSHA", sha, "2", stream, retry, "x"});
  ASSERT_EQ(result.elements.size(), 3u);
  EXPECT_EQ(result.elements[0].str, stream);
  EXPECT_EQ(result.elements[1].str, "x");
  EXPECT_EQ(result.elements[2].integer, 1);
  const std::string elsewhere = KeyOn(OtherMaster(owner), "s");
  EXPECT_EQ(Ok({"EVALSHA", sha, "1", elsewhere, "y"}).elements[2].integer, 0);
  EXPECT_EQ(Ok({"PING"}).str, "PONG");
}

TEST_F(ClusterAsyncTest, CrossSlotAndPerNodeCommandsAreRefusedLocally) {
  EXPECT_EQ(Ok({"SET", "foo", "v"}).str, "OK");
  EXPECT_THAT(Call({"DEL", "foo", "bar"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("CROSSSLOT: DEL keys \"foo\" (slot 12182) and \"bar\" (slot "
                                 "5061) are in different cluster slots")));
  EXPECT_EQ(Ok({"GET", "foo"}).str, "v");  // nothing was deleted
  EXPECT_THAT(Call({"SCAN", "0"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("SCAN acts on one node or connection")));
  // Per node, through ForNode: the node's own keyspace.
  const int owner = cluster_->MasterOf(KeySlot("foo"));
  const RedisReply scan = *Call({"SCAN", "0", "COUNT", "100"}, [&] {
    return client_->ForNode(TestRedisCluster::AddressOf(owner));
  });
  ASSERT_EQ(scan.elements.size(), 2u);
  EXPECT_THAT(scan.elements[1].elements, ::testing::SizeIs(1));
  EXPECT_EQ(scan.elements[1].elements[0].str, "foo");
  const RedisReply size = *Call({"DBSIZE"}, [&] { return client_->NodeFor(KeySlot("foo")); });
  EXPECT_EQ(size.integer, 1);
}

TEST_F(ClusterAsyncTest, AfterAFailoverCommandsGoToTheNewMaster) {
  const int old_master = masters_[0];
  const int replica = cluster_->ReplicaOf(old_master);
  ASSERT_NE(replica, 0);
  const std::string key = KeyOn(old_master, "f");
  EXPECT_EQ(Ok({"SET", key, "before"}).str, "OK");
  Direct(old_master, {"WAIT", "1", "2000"});
  ASSERT_THAT(cluster_->Failover(replica), IsOk());
  ASSERT_EQ(cluster_->MasterOf(KeySlot(key)), replica);
  // The old master is a replica now: MOVED to the new one (a connection it
  // dropped while switching roles would be UNAVAILABLE: try a few times).
  absl::StatusOr<RedisReply> got;
  ASSERT_TRUE(::redrive::testing::WaitFor(
      [&] {
        got = Call({"GET", key});
        return got.ok();
      },
      kWait));
  EXPECT_EQ(got->str, "before");
  EXPECT_EQ(Ok({"SET", key, "after"}).str, "OK");
  EXPECT_EQ(Direct(replica, {"GET", key}).str, "after");
  EXPECT_EQ(ClientMasterOf(KeySlot(key)), replica);
}

TEST_F(ClusterAsyncTest, AfterAMasterIsKilledItsReplicaTakesOver) {
  const KilledMaster killed =
      WriteThenKillAMaster([this](const RedisArgv& argv) { return Ok(argv); });
  const std::string& key = killed.key;
  ASSERT_THAT(cluster_->WaitHealthy(absl::Seconds(20)), IsOk());
  ASSERT_EQ(cluster_->MasterOf(KeySlot(key)), killed.replica);
  absl::StatusOr<RedisReply> got;
  ASSERT_TRUE(::redrive::testing::WaitFor(
      [&] {
        got = CheckReply(Call({"GET", key}));
        return got.ok();
      },
      kWait));
  EXPECT_EQ(got->str, "kept");
  EXPECT_EQ(Ok({"SET", key, "again"}).str, "OK");
  EXPECT_EQ(Direct(killed.replica, {"GET", key}).str, "again");
  std::vector<RedisAddress> masters;
  loop_.RunSync([&] { masters = client_->Masters(); });
  ExpectReplaced(killed, masters);
}

}  // namespace
}  // namespace redrive
