// ClusterStreamNotifier against a real Redis Cluster (three masters, three
// replicas, TestRedisCluster): one blocking XREAD per watched slot on its
// own connection to the slot's master (counted in CLIENT LIST on each
// master), entries reported on every master, a slot moved to another
// master, a CLUSTER FAILOVER and a killed master (the streams are reported
// again once the new master's XREAD covers them, and later entries are seen
// there), a slot's connection closed when its last stream is unwatched, and
// a Watch made before the topology is known.
//
// One cluster for the whole binary (SetUpTestSuite); the tests run in file
// order and the last two change the topology for good.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/cluster_stream_notifier.h"
#include "daemon/event_loop.h"
#include "daemon/redis/cluster_async.h"
#include "daemon/redis/cluster_slots.h"
#include "tests/testing/redis_cluster.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::TestRedisCluster;
using ::redrive::testing::WaitFor;

constexpr absl::Duration kWait = absl::Seconds(10);
constexpr char kNotifyName[] = "cnt-notify";

class ClusterNotifierTest : public ::testing::Test {
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
    // The previous test's connections are gone before this one counts.
    for (int port : masters_) {
      ASSERT_TRUE(WaitFor([&] { return NotifyClients(port) == 0; }, kWait)) << port;
    }
    Start();
  }

  void TearDown() override {
    loop_.RunSync([this] {
      notifier_.reset();
      commands_.reset();
    });
  }

  // A cluster client and the notifier over it; `then` runs right after, in
  // the same loop task (before any topology is known).
  void Start(const std::function<void()>& then = nullptr,
             absl::Duration block = absl::Milliseconds(500)) {
    loop_.RunSync([&] {
      ClusterOptions options;
      for (int port : cluster_->live_ports()) {
        options.seeds.push_back(TestRedisCluster::AddressOf(port));
      }
      options.connection.client_name = "cnt-deliver";
      commands_ = std::make_unique<ClusterAsync>(loop_, std::move(options));
      RedisConnectionOptions blocking;
      blocking.client_name = kNotifyName;
      blocking.min_backoff = absl::Milliseconds(20);
      blocking.max_backoff = absl::Milliseconds(200);
      notifier_ = std::make_unique<ClusterStreamNotifier>(
          loop_, *commands_, blocking,
          [this](const std::string& stream) { reports_.push_back(stream); }, block);
      if (then) then();
    });
  }

  static RedisReply Direct(int port, const RedisArgv& argv) {
    absl::StatusOr<RedisReply> r = TestRedisCluster::Connect(port)->Command(argv);
    EXPECT_THAT(r, IsOk()) << argv[0];
    return r.ok() ? *r : RedisReply::Error("failed");
  }
  // XADD on the master serving the stream now.
  void Add(const std::string& stream) {
    const int port = cluster_->MasterOf(KeySlot(stream));
    ASSERT_NE(port, 0) << stream;
    EXPECT_FALSE(Direct(port, {"XADD", stream, "*", "f", "v"}).str.empty()) << stream;
  }

  // The notifier's connections on a node (CLIENT LIST, by name).
  static int NotifyClients(int port) {
    absl::StatusOr<RedisReply> list = TestRedisCluster::Connect(port)->Command({"CLIENT", "LIST"});
    if (!list.ok()) return -1;
    int n = 0;
    for (absl::string_view line : absl::StrSplit(list->str, '\n')) {
      n += absl::StrContains(line, absl::StrCat(" name=", kNotifyName, " ")) ? 1 : 0;
    }
    return n;
  }
  // Waits until every master holds exactly `expected[port]` (0 if absent)
  // notifier connections.
  void ExpectNotifyClients(const std::map<int, int>& expected) {
    for (int port : cluster_->MasterPorts()) {
      const int want = expected.count(port) ? expected.at(port) : 0;
      EXPECT_TRUE(WaitFor([&] { return NotifyClients(port) == want; }, kWait))
          << "127.0.0.1:" << port << " has " << NotifyClients(port) << " " << kNotifyName
          << " connections, expected " << want;
    }
  }

  // Key "{<prefix>N}:<suffix>" whose slot `port` serves.
  std::string StreamOn(int port, const std::string& prefix, const std::string& suffix) {
    for (int i = 0; i < 10000; ++i) {
      const std::string tag = absl::StrCat(prefix, i);
      if (cluster_->MasterOf(KeySlot(tag)) == port) return absl::StrCat("{", tag, "}:", suffix);
    }
    ADD_FAILURE() << "no key for " << port;
    return prefix;
  }

  void Watch(const std::vector<std::string>& streams) {
    auto ready = std::make_shared<int>(0);
    loop_.RunSync([&] {
      for (const std::string& s : streams) notifier_->Watch(s, [ready] { ++*ready; });
    });
    ASSERT_TRUE(WaitFor(
        [&] {
          int n = 0;
          loop_.RunSync([&] { n = *ready; });
          return n == static_cast<int>(streams.size());
        },
        kWait));
  }
  void Unwatch(const std::string& stream) {
    loop_.RunSync([&] { notifier_->Unwatch(stream); });
  }
  bool Healthy() {
    bool up = false;
    loop_.RunSync([&] { up = notifier_->healthy(); });
    return up;
  }
  size_t Groups() {
    size_t n = 0;
    loop_.RunSync([&] { n = notifier_->reading_groups(); });
    return n;
  }
  // Waits until every group reads, then forgets what was reported so far.
  void Settle() {
    ASSERT_TRUE(WaitFor([this] { return Healthy(); }, kWait));
    loop_.RunSync([this] { reports_.clear(); });
  }
  // Waits until `expected` (stream -> times) was reported, then returns
  // everything reported (for an exact comparison).
  std::map<std::string, int> WaitReports(const std::map<std::string, int>& expected) {
    std::map<std::string, int> seen;
    WaitFor(
        [&] {
          seen.clear();
          loop_.RunSync([&] {
            for (const std::string& s : reports_) ++seen[s];
          });
          for (const auto& [stream, times] : expected) {
            if (seen[stream] < times) return false;
          }
          return true;
        },
        kWait);
    for (auto it = seen.begin(); it != seen.end();) {
      it = it->second == 0 ? seen.erase(it) : std::next(it);
    }
    return seen;
  }

  static TestRedisCluster* cluster_;
  std::vector<int> masters_;
  EventLoop loop_;
  std::unique_ptr<ClusterAsync> commands_;
  std::unique_ptr<ClusterStreamNotifier> notifier_;
  std::vector<std::string> reports_;  // loop thread
};

TestRedisCluster* ClusterNotifierTest::cluster_ = nullptr;

TEST_F(ClusterNotifierTest, OneBlockingReadPerSlotReportsEntriesOnEveryMaster) {
  // Two slots on the first master (two connections there), one on each
  // other; two streams share the first slot.
  const std::string a_main = StreamOn(masters_[0], "a", "main");
  const std::string a_retry = a_main.substr(0, a_main.find(':')) + ":retry";
  const std::string b = StreamOn(masters_[0], "b", "main");
  const std::string c = StreamOn(masters_[1], "c", "main");
  const std::string d = StreamOn(masters_[2], "d", "main");
  ASSERT_NE(KeySlot(a_main), KeySlot(b));
  Watch({a_main, a_retry, b, c, d});
  Settle();
  EXPECT_EQ(Groups(), 4u);
  ExpectNotifyClients({{masters_[0], 2}, {masters_[1], 1}, {masters_[2], 1}});
  for (int port : masters_) {
    const std::string list = Direct(port, {"CLIENT", "LIST"}).str;
    for (absl::string_view line : absl::StrSplit(list, '\n')) {
      if (absl::StrContains(line, absl::StrCat(" name=", kNotifyName, " "))) {
        EXPECT_TRUE(absl::StrContains(line, " cmd=xread")) << line;
      }
    }
  }

  Add(a_retry);
  Add(b);
  Add(c);
  Add(d);
  const std::map<std::string, int> want = {{a_retry, 1}, {b, 1}, {c, 1}, {d, 1}};
  EXPECT_EQ(WaitReports(want), want);
  Add(a_main);
  std::map<std::string, int> more = want;
  more[a_main] = 1;
  EXPECT_EQ(WaitReports(more), more);
  EXPECT_TRUE(Healthy());
}

TEST_F(ClusterNotifierTest, UnwatchingTheLastStreamOfASlotClosesItsConnection) {
  const std::string a = StreamOn(masters_[0], "a", "main");
  const std::string a_retry = a.substr(0, a.find(':')) + ":retry";
  const std::string b = StreamOn(masters_[0], "b", "main");
  Watch({a, a_retry, b, a});  // `a` twice: reference counted
  Settle();
  ExpectNotifyClients({{masters_[0], 2}});
  Unwatch(a);
  Unwatch(a_retry);
  EXPECT_EQ(Groups(), 2u);  // `a` is still watched once
  Unwatch(a);
  EXPECT_EQ(Groups(), 1u);
  ExpectNotifyClients({{masters_[0], 1}});
  size_t watched = 0;
  loop_.RunSync([&] { watched = notifier_->watched(); });
  EXPECT_EQ(watched, 1u);
  Add(a);
  Add(b);
  EXPECT_EQ(WaitReports({{b, 1}}), (std::map<std::string, int>{{b, 1}}));
  Unwatch(b);
  EXPECT_EQ(Groups(), 0u);
  ExpectNotifyClients({});
}

// The XREAD of a group blocks for 30 s here: a stream added to the group is
// covered at once only because CLIENT UNBLOCK reached the master holding
// the blocked connection.
TEST_F(ClusterNotifierTest, AStreamAddedToAReadingGroupInterruptsItsXread) {
  TearDown();
  Start(nullptr, absl::Seconds(30));
  const std::string a = StreamOn(masters_[2], "u", "main");
  const std::string a_retry = a.substr(0, a.find(':')) + ":retry";
  Watch({a});
  Settle();
  const absl::Time start = absl::Now();
  Watch({a_retry});
  Add(a_retry);
  const std::map<std::string, int> once = {{a_retry, 1}};
  EXPECT_EQ(WaitReports(once), once);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ExpectNotifyClients({{masters_[2], 1}});
}

TEST_F(ClusterNotifierTest, TopologyListenersRunAfterEachRefreshUntilRemoved) {
  auto calls = std::make_shared<int>(0);
  uint64_t id = 0;
  int64_t refreshes = 0;
  ASSERT_TRUE(WaitFor([&] {
    bool up = false;
    loop_.RunSync([&] { up = commands_->connected(); });
    return up;
  }));
  loop_.RunSync([&] {
    refreshes = commands_->stats().refreshes;
    id = commands_->AddTopologyListener([calls] { ++*calls; });
    commands_->Refresh();
  });
  ASSERT_TRUE(WaitFor([&] {
    int n = 0;
    loop_.RunSync([&] { n = *calls; });
    return n >= 1;
  }));
  loop_.RunSync([&] {
    EXPECT_EQ(*calls, commands_->stats().refreshes - refreshes);
    commands_->RemoveTopologyListener(id);
    refreshes = commands_->stats().refreshes;
    *calls = 0;
    commands_->Refresh();
  });
  ASSERT_TRUE(WaitFor([&] {
    int64_t now = 0;
    loop_.RunSync([&] { now = commands_->stats().refreshes; });
    return now > refreshes;
  }));
  loop_.RunSync([&] { EXPECT_EQ(*calls, 0); });
}

TEST_F(ClusterNotifierTest, WatchBeforeTheTopologyIsKnownRunsReadyOncePlaced) {
  TearDown();
  const std::string s = StreamOn(masters_[1], "early", "main");
  auto ready = std::make_shared<int>(0);
  bool ready_inside = true;
  Start([&] {
    ASSERT_FALSE(commands_->connected());
    notifier_->Watch(s, [ready] { ++*ready; });
    ready_inside = *ready != 0;
    EXPECT_FALSE(notifier_->healthy());
  });
  EXPECT_FALSE(ready_inside);
  ASSERT_TRUE(WaitFor(
      [&] {
        int n = 0;
        loop_.RunSync([&] { n = *ready; });
        return n == 1;
      },
      kWait));
  Settle();
  ExpectNotifyClients({{masters_[1], 1}});
  Add(s);
  EXPECT_EQ(WaitReports({{s, 1}}), (std::map<std::string, int>{{s, 1}}));
}

TEST_F(ClusterNotifierTest, AMovedSlotIsReportedAndThenReadOnItsNewMaster) {
  const int from = masters_[0];
  const int to = masters_[1];
  const std::string moved = StreamOn(from, "m", "main");
  const std::string stays = StreamOn(from, "s", "main");
  Add(moved);  // the slot has a key to migrate
  Watch({moved, stays});
  Settle();
  ExpectNotifyClients({{from, 2}});
  ASSERT_THAT(cluster_->MoveSlot(KeySlot(moved), to), IsOk());
  // The XREAD on `from` is redirected (MOVED); the refresh it asks for
  // places the slot's group on `to`, and the stream is reported once.
  const std::map<std::string, int> once = {{moved, 1}};
  EXPECT_EQ(WaitReports(once), once);
  ExpectNotifyClients({{from, 1}, {to, 1}});
  Settle();
  Add(moved);
  Add(stays);
  const std::map<std::string, int> both = {{moved, 1}, {stays, 1}};
  EXPECT_EQ(WaitReports(both), both);
  ASSERT_THAT(cluster_->MoveSlot(KeySlot(moved), from), IsOk());  // as it was
}

TEST_F(ClusterNotifierTest, AfterAFailoverTheStreamsAreReportedAndReadOnTheNewMaster) {
  const int old_master = masters_[0];
  const int replica = cluster_->ReplicaOf(old_master);
  ASSERT_NE(replica, 0);
  const std::string s = StreamOn(old_master, "f", "main");
  const std::string other = StreamOn(masters_[2], "o", "main");
  Watch({s, other});
  Settle();
  ASSERT_THAT(cluster_->Failover(replica), IsOk());
  ASSERT_EQ(cluster_->MasterOf(KeySlot(s)), replica);
  // Reported once the new master's XREAD covers it (maybe also by the old
  // group, if its connection, dropped by the demoted master, reconnected
  // before the regroup); `other` is not.
  std::map<std::string, int> seen = WaitReports({{s, 1}});
  EXPECT_EQ(seen.size(), 1u) << "only " << s;
  EXPECT_GE(seen[s], 1);
  ExpectNotifyClients({{replica, 1}, {masters_[2], 1}});
  const std::map<std::string, int> once = {{s, 1}};
  Settle();
  Add(s);
  EXPECT_EQ(WaitReports(once), once);
}

TEST_F(ClusterNotifierTest, AfterAMasterIsKilledItsReplicaTakesOverTheReads) {
  const int victim = masters_[1];
  const int replica = cluster_->ReplicaOf(victim);
  ASSERT_NE(replica, 0);
  const std::string s = StreamOn(victim, "k", "main");
  const std::string other = StreamOn(masters_[2], "o", "main");
  Watch({s, other});
  Settle();
  cluster_->Kill(victim);
  ASSERT_THAT(cluster_->WaitHealthy(absl::Seconds(20)), IsOk());
  ASSERT_EQ(cluster_->MasterOf(KeySlot(s)), replica);
  // Reported once the replica's XREAD covers it; `other` is not.
  std::map<std::string, int> seen = WaitReports({{s, 1}});
  EXPECT_EQ(seen.size(), 1u) << "only " << s;
  EXPECT_GE(seen[s], 1);
  ExpectNotifyClients({{replica, 1}, {masters_[2], 1}});
  Settle();
  Add(s);
  const std::map<std::string, int> once = {{s, 1}};
  EXPECT_EQ(WaitReports(once), once);
}

}  // namespace
}  // namespace redrive
