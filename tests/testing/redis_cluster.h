// TestRedisCluster: a private Redis Cluster for integration tests: six
// redis-server processes (TestRedisServer, --cluster-enabled yes) on free
// 127.0.0.1 ports, joined by `redis-cli --cluster create --cluster-replicas 1`
// into three masters with one replica each, and stopped (their directories
// removed) on destruction, also when a test fails.
//
// The helpers reshape the running cluster the way operators do: move a slot
// (MIGRATING/IMPORTING, MIGRATE, SETSLOT NODE), fail over on a replica
// (CLUSTER FAILOVER), kill a master (SIGKILL) and wait for the cluster to heal.
// cluster-node-timeout is 1000 ms so a killed master is replaced in about
// two seconds.
//
// Thread-compatible.
#ifndef REDRIVE_TESTS_TESTING_REDIS_CLUSTER_H_
#define REDRIVE_TESTS_TESTING_REDIS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/redis/connection.h"
#include "tests/testing/redis_server.h"

namespace redrive::testing {

class TestRedisCluster {
 public:
  // Starts the six nodes, creates the cluster and waits until every node
  // says cluster_state:ok and agrees on the slots. Fails the calling test
  // (and returns null) when that does not happen: tests never skip.
  static std::unique_ptr<TestRedisCluster> Start();
  ~TestRedisCluster();

  // The ports of every node that was started (killed ones included).
  std::vector<int> ports() const;
  // The nodes still running.
  std::vector<int> live_ports() const;
  // 127.0.0.1:port, db 0.
  static RedisAddress AddressOf(int port);
  // A fresh synchronous connection to one node.
  static std::unique_ptr<RedisConnection> Connect(int port);

  // The port of the master serving `slot`, as a live node's CLUSTER SLOTS
  // says (0 when none does).
  int MasterOf(int slot) const;
  // The ports of the masters serving slots, sorted.
  std::vector<int> MasterPorts() const;
  // A replica of the master at `master_port` (0 if none).
  int ReplicaOf(int master_port) const;
  // CLUSTER MYID of a node.
  static absl::StatusOr<std::string> NodeId(int port);

  // Half a migration: `slot` IMPORTING on `to_port`, MIGRATING on its owner.
  absl::Status BeginMigration(int slot, int to_port);
  // MIGRATEs every key of `slot` from its owner to `to_port` (after
  // BeginMigration).
  absl::Status MigrateKeys(int slot, int to_port);
  // CLUSTER SETSLOT slot NODE <to> on every live master, so that `to_port`
  // owns `slot`.
  absl::Status FinishMigration(int slot, int to_port);
  // The three steps: `slot` and its keys move to `to_port`.
  absl::Status MoveSlot(int slot, int to_port);

  // CLUSTER FAILOVER on `replica_port`; returns once it is a master, its old
  // master a replica, and the cluster healthy.
  absl::Status Failover(int replica_port);
  // SIGKILLs the node (no clean shutdown).
  void Kill(int port);

  // Every live node says cluster_state:ok and lists the same master for
  // every slot, a running one, within `timeout`; else DEADLINE_EXCEEDED with
  // what was seen. After Kill(master) it returns once the replica took over.
  absl::Status WaitHealthy(absl::Duration timeout = absl::Seconds(20)) const;

 private:
  TestRedisCluster() = default;
  absl::Status Create();
  TestRedisServer* Node(int port) const;

  std::vector<std::unique_ptr<TestRedisServer>> nodes_;
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_REDIS_CLUSTER_H_
