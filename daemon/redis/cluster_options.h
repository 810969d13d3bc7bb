// What the two Redis Cluster clients share: their options and counters, and
// the decisions that do not depend on how a command travels (the async
// ClusterAsync on the EventLoop, the blocking ClusterConnection on a worker
// thread):
//
//   ValidateClusterOptions   the options a cluster client refuses
//   ClusterNodeConnection    a node's connection options (seed credentials)
//   RefreshCandidates        whom to ask for CLUSTER SLOTS, in order
//   SlotMapFromReply         a CLUSTER SLOTS answer as a usable slot map
//   CombineAllMasters        one reply for a command sent to every master
//
// Thread-safe: value types and pure functions.
#ifndef REDRIVE_DAEMON_REDIS_CLUSTER_OPTIONS_H_
#define REDRIVE_DAEMON_REDIS_CLUSTER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/commander.h"
#include "daemon/redis/reply.h"
#include "daemon/redis/url.h"

namespace redrive {

struct ClusterOptions {
  // Where the topology is first asked for; host:port addresses (unix
  // sockets and db != 0 are refused: a cluster has neither).
  std::vector<RedisAddress> seeds;
  // Timeouts, backoff and client name of every node connection (its address
  // and sentinel are ignored).
  RedisConnectionOptions connection;
  int max_redirects = 5;
  int max_retries = 20;
  absl::Duration retry_delay = absl::Milliseconds(50);
  absl::Duration min_refresh_interval = absl::Milliseconds(100);
};

// What a cluster client did, for tests and metrics.
struct ClusterStats {
  int64_t moved = 0;      // MOVED replies followed
  int64_t ask = 0;        // ASK replies followed
  int64_t retries = 0;    // TRYAGAIN/CLUSTERDOWN re-sends
  int64_t refreshes = 0;  // CLUSTER SLOTS answers applied
};

// INVALID_ARGUMENT with the reason for options a cluster client refuses (no
// seed, a unix or redis-sentinel:// seed, db != 0, max_redirects < 1,
// negative retries or delays).
absl::Status ValidateClusterOptions(const ClusterOptions& options);

// A node as an address: host and port from `node`, user and password from
// the first seed (every node of a cluster has the same ACL), db 0.
RedisAddress ClusterNodeAddress(const ClusterOptions& options, const ClusterNode& node);
// options.connection aimed at `node` (ClusterNodeAddress, no Sentinel).
RedisConnectionOptions ClusterNodeConnection(const ClusterOptions& options,
                                             const ClusterNode& node);
// The node at address.host:address.port.
ClusterNode ClusterNodeOf(const RedisAddress& address);

// Whom to ask for CLUSTER SLOTS: the masters of `map` (they know best), then
// the seeds not among them.
std::vector<ClusterNode> RefreshCandidates(const ClusterSlotMap& map,
                                           const ClusterOptions& options);
// UNAVAILABLE "redis cluster: no node answered CLUSTER SLOTS (tried a, b)".
absl::Status NoNodeAnswered(const std::vector<ClusterNode>& tried);

// The slot map of `node`'s answer to CLUSTER SLOTS: the transport failure,
// the error reply (as its Status), INTERNAL for a malformed answer, or
// UNAVAILABLE when the node serves no slot (not part of a cluster yet).
absl::StatusOr<ClusterSlotMap> SlotMapFromReply(const absl::StatusOr<RedisReply>& reply,
                                                const ClusterNode& node);

// The answer to a command sent to every master (SCRIPT LOAD), given each
// master's (in master order): the first failure (a transport error or an
// error reply), else the first reply. `replies` must not be empty.
absl::StatusOr<RedisReply> CombineAllMasters(std::vector<absl::StatusOr<RedisReply>> replies);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_CLUSTER_OPTIONS_H_
