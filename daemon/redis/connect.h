// Opening Redis connections for the address the configuration names: a
// Redis Cluster (RedisAddress::is_cluster) gets the cluster commanders
// (cluster_connection.h, cluster_async.h), anything else the single-node
// ones (connection.h, hiredis_async.h). Callers that need per-node work or
// the cluster's health ask IsCluster().
#ifndef REDRIVE_DAEMON_REDIS_CONNECT_H_
#define REDRIVE_DAEMON_REDIS_CONNECT_H_

#include <memory>

#include "absl/status/status.h"
#include "daemon/redis/cluster_options.h"
#include "daemon/redis/commander.h"

namespace redrive {

inline bool IsCluster(const RedisConnectionOptions& options) {
  return options.address.is_cluster();
}

// The ClusterAsync/ClusterConnection options for a cluster address: its
// seeds with its credentials, and `options`' timeouts and client name.
ClusterOptions ClusterOptionsFor(const RedisConnectionOptions& options);

// A synchronous commander: ClusterConnection for a cluster, else
// RedisConnection. Both connect lazily (no I/O here).
std::unique_ptr<RedisCommander> OpenRedis(const RedisConnectionOptions& options);

// Readiness of what `redis` talks to. A single node: PING, and a node of a
// Redis Cluster reached through a plain redis:// address is refused
// (FAILED_PRECONDITION: only a cluster address routes by slot). A cluster:
// CLUSTER INFO reports cluster_state:ok and every master answers PING
// (UNAVAILABLE naming the first that does not).
absl::Status CheckRedis(RedisCommander& redis, const RedisConnectionOptions& options);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_CONNECT_H_
