#include "tests/testing/redis_cluster.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/errors.h"
#include "tests/testing/ports.h"

namespace redrive::testing {
namespace {

constexpr int kNodes = 6;
constexpr absl::Duration kPoll = absl::Milliseconds(20);

// One command on a fresh connection; error replies become statuses.
absl::StatusOr<RedisReply> Query(int port, const RedisArgv& argv) {
  return CheckReply(TestRedisCluster::Connect(port)->Command(argv));
}

absl::Status Run(int port, const RedisArgv& argv) {
  absl::StatusOr<RedisReply> reply = Query(port, argv);
  if (!reply.ok()) {
    return absl::Status(reply.status().code(), absl::StrCat("127.0.0.1:", port, " ", argv[0], " ",
                                                            argv.size() > 1 ? argv[1] : "", ": ",
                                                            reply.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterSlotMap> SlotsSeenBy(int port) {
  absl::StatusOr<RedisReply> reply = Query(port, {"CLUSTER", "SLOTS"});
  if (!reply.ok()) return reply.status();
  return ClusterSlotMap::FromClusterSlots(*reply, "127.0.0.1");
}

}  // namespace

std::unique_ptr<TestRedisCluster> TestRedisCluster::Start() {
  std::unique_ptr<TestRedisCluster> cluster(new TestRedisCluster());
  for (int i = 0; i < kNodes; ++i) {
    TestRedisServer::Options options;
    // The bus port is chosen too: port + 10000 may be taken or above 65535.
    options.extra_args = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                          "--cluster-node-timeout", "1000", "--cluster-port",
                          absl::StrCat(PickFreePort()),
                          // A replica's first sync starts at once, not 5 s later, and its
                          // offset moves past 0 (CLUSTER SLOTS lists no replica at offset 0)
                          // within a second, not 10.
                          "--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"};
    std::unique_ptr<TestRedisServer> node = TestRedisServer::Start(std::move(options));
    if (node == nullptr) return nullptr;  // Start failed the test
    cluster->nodes_.push_back(std::move(node));
  }
  if (absl::Status s = cluster->Create(); !s.ok()) {
    ADD_FAILURE() << "redis cluster: " << s;
    return nullptr;
  }
  return cluster;
}

absl::Status TestRedisCluster::Create() {
  std::vector<std::string> command = {REDRIVE_REDIS_CLI, "--cluster", "create"};
  for (int port : ports()) command.push_back(absl::StrCat("127.0.0.1:", port));
  command.insert(command.end(), {"--cluster-replicas", "1", "--cluster-yes"});
  // The arguments are paths and ports (no shell metacharacters); `timeout`
  // bounds a redis-cli that would wait forever for the nodes to join.
  const std::string line = absl::StrCat("timeout 60 ", absl::StrJoin(command, " "), " 2>&1");
  FILE* pipe = popen(line.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run ", line));
  std::string output;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(line, " failed (status ", status, "):\n", output));
  }
  // Healthy, and every master has its replica in everybody's view.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::Status healthy = WaitHealthy(absl::Seconds(30));
  if (!healthy.ok()) return healthy;
  while (true) {
    bool complete = true;
    for (int port : live_ports()) {
      absl::StatusOr<ClusterSlotMap> map = SlotsSeenBy(port);
      complete = complete && map.ok() && map->Nodes().size() == kNodes;
    }
    if (complete) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("the replicas did not appear in CLUSTER SLOTS");
    }
    absl::SleepFor(kPoll);
  }
}

TestRedisCluster::~TestRedisCluster() = default;  // each TestRedisServer stops itself

std::vector<int> TestRedisCluster::ports() const {
  std::vector<int> out;
  for (const auto& node : nodes_) out.push_back(node->port());
  return out;
}

std::vector<int> TestRedisCluster::live_ports() const {
  std::vector<int> out;
  for (const auto& node : nodes_) {
    if (node->running()) out.push_back(node->port());
  }
  return out;
}

RedisAddress TestRedisCluster::AddressOf(int port) {
  RedisAddress a;
  a.host = "127.0.0.1";
  a.port = port;
  return a;
}

std::unique_ptr<RedisConnection> TestRedisCluster::Connect(int port) {
  RedisConnectionOptions o;
  o.address = AddressOf(port);
  o.connect_timeout = absl::Milliseconds(500);
  o.command_timeout = absl::Seconds(5);
  o.min_backoff = absl::ZeroDuration();
  o.max_backoff = absl::ZeroDuration();
  return std::make_unique<RedisConnection>(o);
}

TestRedisServer* TestRedisCluster::Node(int port) const {
  for (const auto& node : nodes_) {
    if (node->port() == port) return node.get();
  }
  return nullptr;
}

int TestRedisCluster::MasterOf(int slot) const {
  for (int port : live_ports()) {
    absl::StatusOr<ClusterSlotMap> map = SlotsSeenBy(port);
    if (map.ok() && map->MasterOf(slot) != nullptr) return map->MasterOf(slot)->port;
  }
  return 0;
}

std::vector<int> TestRedisCluster::MasterPorts() const {
  for (int port : live_ports()) {
    absl::StatusOr<ClusterSlotMap> map = SlotsSeenBy(port);
    if (!map.ok()) continue;
    std::vector<int> out;
    for (const ClusterNode& m : map->Masters()) out.push_back(m.port);
    std::sort(out.begin(), out.end());
    return out;
  }
  return {};
}

int TestRedisCluster::ReplicaOf(int master_port) const {
  for (int port : live_ports()) {
    absl::StatusOr<ClusterSlotMap> map = SlotsSeenBy(port);
    if (!map.ok()) continue;
    for (int slot = 0; slot < kClusterSlots; ++slot) {
      const ClusterNode* m = map->MasterOf(slot);
      if (m != nullptr && m->port == master_port && !map->ReplicasOf(slot).empty()) {
        return map->ReplicasOf(slot).front().port;
      }
    }
  }
  return 0;
}

absl::StatusOr<std::string> TestRedisCluster::NodeId(int port) {
  absl::StatusOr<RedisReply> id = Query(port, {"CLUSTER", "MYID"});
  if (!id.ok()) return id.status();
  return id->str;
}

absl::Status TestRedisCluster::BeginMigration(int slot, int to_port) {
  const int from_port = MasterOf(slot);
  if (from_port == 0 || from_port == to_port) {
    return absl::FailedPreconditionError(
        absl::StrCat("slot ", slot, " is served by ", from_port, ", not movable to ", to_port));
  }
  absl::StatusOr<std::string> from_id = NodeId(from_port);
  absl::StatusOr<std::string> to_id = NodeId(to_port);
  if (!from_id.ok()) return from_id.status();
  if (!to_id.ok()) return to_id.status();
  const std::string s = absl::StrCat(slot);
  if (absl::Status st = Run(to_port, {"CLUSTER", "SETSLOT", s, "IMPORTING", *from_id}); !st.ok()) {
    return st;
  }
  return Run(from_port, {"CLUSTER", "SETSLOT", s, "MIGRATING", *to_id});
}

absl::Status TestRedisCluster::MigrateKeys(int slot, int to_port) {
  const int from_port = MasterOf(slot);
  const std::string s = absl::StrCat(slot);
  const std::string to = absl::StrCat(to_port);
  for (int batch = 0; batch < 1000; ++batch) {
    absl::StatusOr<RedisReply> keys = Query(from_port, {"CLUSTER", "GETKEYSINSLOT", s, "100"});
    if (!keys.ok()) return keys.status();
    if (keys->elements.empty()) return absl::OkStatus();
    RedisArgv migrate = {"MIGRATE", "127.0.0.1", to, "", "0", "5000", "KEYS"};
    for (const RedisReply& k : keys->elements) migrate.push_back(k.str);
    if (absl::Status st = Run(from_port, migrate); !st.ok()) return st;
  }
  return absl::DeadlineExceededError(absl::StrCat("slot ", slot, " still has keys"));
}

absl::Status TestRedisCluster::FinishMigration(int slot, int to_port) {
  const int from_port = MasterOf(slot);
  absl::StatusOr<std::string> to_id = NodeId(to_port);
  if (!to_id.ok()) return to_id.status();
  const std::string s = absl::StrCat(slot);
  // The target first, then the source, then the other masters.
  std::vector<int> order = {to_port};
  if (from_port != 0 && from_port != to_port) order.push_back(from_port);
  for (int port : MasterPorts()) {
    if (std::find(order.begin(), order.end(), port) == order.end()) order.push_back(port);
  }
  for (int port : order) {
    if (absl::Status st = Run(port, {"CLUSTER", "SETSLOT", s, "NODE", *to_id}); !st.ok()) {
      return st;
    }
  }
  return WaitHealthy();
}

absl::Status TestRedisCluster::MoveSlot(int slot, int to_port) {
  if (absl::Status s = BeginMigration(slot, to_port); !s.ok()) return s;
  if (absl::Status s = MigrateKeys(slot, to_port); !s.ok()) return s;
  return FinishMigration(slot, to_port);
}

absl::Status TestRedisCluster::Failover(int replica_port) {
  if (absl::Status s = Run(replica_port, {"CLUSTER", "FAILOVER"}); !s.ok()) return s;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (true) {
    absl::StatusOr<RedisReply> role = Query(replica_port, {"ROLE"});
    if (role.ok() && role->is_array() && !role->elements.empty() &&
        role->elements[0].str == "master") {
      break;
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("127.0.0.1:", replica_port, " did not become a master"));
    }
    absl::SleepFor(kPoll);
  }
  return WaitHealthy();
}

void TestRedisCluster::Kill(int port) {
  if (TestRedisServer* node = Node(port); node != nullptr) node->Kill();
}

absl::Status TestRedisCluster::WaitHealthy(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string seen;
  while (true) {
    bool ok = true;
    std::vector<std::string> first_view;  // master per slot, by the first node
    for (int port : live_ports()) {
      absl::StatusOr<RedisReply> info = Query(port, {"CLUSTER", "INFO"});
      if (!info.ok() || !absl::StrContains(info->str, "cluster_state:ok")) {
        seen = absl::StrCat("127.0.0.1:", port, " CLUSTER INFO: ",
                            info.ok() ? info->str.substr(0, 40) : info.status().ToString());
        ok = false;
        break;
      }
      absl::StatusOr<ClusterSlotMap> map = SlotsSeenBy(port);
      if (!map.ok() || map->UnassignedSlots() != 0) {
        seen = absl::StrCat("127.0.0.1:", port, " CLUSTER SLOTS incomplete");
        ok = false;
        break;
      }
      const std::vector<int> live = live_ports();
      for (const ClusterNode& m : map->Masters()) {
        if (std::find(live.begin(), live.end(), m.port) == live.end()) {
          seen = absl::StrCat("127.0.0.1:", port, " still lists the stopped ", m.HostPort(),
                              " as a master");
          ok = false;
        }
      }
      if (!ok) break;
      std::vector<std::string> view(kClusterSlots);
      for (int slot = 0; slot < kClusterSlots; ++slot) view[slot] = map->MasterOf(slot)->HostPort();
      if (first_view.empty()) {
        first_view = std::move(view);
      } else if (view != first_view) {
        seen = absl::StrCat("127.0.0.1:", port, " disagrees on the slot owners");
        ok = false;
        break;
      }
    }
    if (ok) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("cluster not healthy: ", seen));
    }
    absl::SleepFor(kPoll);
  }
}

}  // namespace redrive::testing
