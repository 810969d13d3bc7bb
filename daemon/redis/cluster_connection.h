// ClusterConnection: a RedisCommander (commander.h) over a Redis Cluster,
// with blocking connections: the synchronous counterpart of ClusterAsync
// (cluster_async.h), for the worker threads (Publish, Tail, Admin, the
// RedisExecutor). Not used by redrived yet (docs/redis-cluster.md).
//
// Topology. No I/O in the constructor: the first call that needs the
// topology asks the seeds for CLUSTER SLOTS (the next seed when one fails;
// UNAVAILABLE naming the seeds tried when none answers). Later refreshes ask
// the known masters first, then the seeds; they run before the next command
// after a MOVED reply, a transport failure or a slot without a master, at
// least `min_refresh_interval` apart (Refresh() runs one at once).
//
// Connections. One RedisConnection per node, created on first use with
// options.connection (the first seed's user and password; db 0) and kept; a
// refresh drops those of nodes the topology no longer lists.
//
// Command: routed like ClusterAsync (cluster_route.h): a keyed command to
// its slot's master, PING/TIME/... and keyless scripts to the first master
// by host:port, SCRIPT LOAD|EXISTS|FLUSH to every master (the first
// failure, else the first reply); keys in different slots are refused
// (FAILED_PRECONDITION, CROSSSLOT) and per-node commands (SCAN, CLIENT,
// KEYS, ...) too (INVALID_ARGUMENT: send them on ForNode()).
//   MOVED        the slot's owner is patched, the topology refreshed, the
//                command sent to the new owner;
//   ASK          ASKING + the command in one pipeline on the target;
//   TRYAGAIN, CLUSTERDOWN, no master for the slot
//                sleep `retry_delay`, send again.
// At most `max_redirects` redirects and `max_retries` retries per command;
// then the last error reply is returned. A transport failure (UNAVAILABLE)
// is returned and never re-sent (the command may have run).
//
// Pipeline takes two shapes:
//   independent commands   grouped per master, one pipeline per master (the
//                          masters one after the other), replies put back in
//                          the callers' order; a command answered MOVED, ASK,
//                          TRYAGAIN or CLUSTERDOWN is then re-sent alone
//                          with the Command rules. A transport failure on a
//                          master fails the whole call (UNAVAILABLE); the
//                          commands already sent may have run, those of the
//                          masters after it were not sent.
//   MULTI ... EXEC         (MULTI first, EXEC last, neither anywhere else):
//                          every keyed command in one slot (else
//                          FAILED_PRECONDITION CROSSSLOT, nothing sent); the
//                          block goes whole to that slot's master. When the
//                          node refused it (a queued command answered MOVED,
//                          ASK, TRYAGAIN or CLUSTERDOWN and EXEC
//                          EXECABORT: nothing ran) it is sent again whole:
//                          after a refresh for MOVED, after `retry_delay`
//                          for the others.
// Any other use of MULTI/EXEC/DISCARD/WATCH is INVALID_ARGUMENT, nothing
// sent. Every command of a pipeline is routed before any is sent: a refused
// one fails the call with nothing sent.
//
// Thread-compatible: one thread at a time (like RedisConnection).
#ifndef REDRIVE_DAEMON_REDIS_CLUSTER_CONNECTION_H_
#define REDRIVE_DAEMON_REDIS_CLUSTER_CONNECTION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "daemon/redis/cluster_options.h"
#include "daemon/redis/cluster_route.h"
#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/commander.h"

namespace redrive {

class RedisConnection;

class ClusterConnection final : public RedisCommander {
 public:
  // `options` must pass ValidateClusterOptions (checked: a crash otherwise).
  // No I/O: the topology is discovered on first use.
  explicit ClusterConnection(ClusterOptions options);
  ~ClusterConnection() override;
  ClusterConnection(const ClusterConnection&) = delete;
  ClusterConnection& operator=(const ClusterConnection&) = delete;

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override;
  absl::StatusOr<std::vector<RedisReply>> Pipeline(absl::Span<const RedisArgv> commands) override;

  // The masters, sorted by host:port (discovers the topology if none is
  // known yet; empty when that fails).
  std::vector<RedisAddress> Masters();
  // The plain connection to the node at node.host:node.port (created on
  // first use; the seeds' credentials). Commands sent on it are not routed,
  // redirected nor retried. Valid until the next refresh (topology_version()
  // changes): look it up again for each use.
  RedisCommander* ForNode(const RedisAddress& node);
  // CLUSTER SLOTS now, from the masters then the seeds (not rate-limited);
  // UNAVAILABLE naming the nodes tried when none answers (the previous
  // topology, if any, is kept).
  absl::Status Refresh();

  // Bumped whenever a refresh applied a topology.
  uint64_t topology_version() const { return topology_version_; }
  const ClusterStats& stats() const { return stats_; }
  // The current slot map (empty before the first discovery).
  const ClusterSlotMap& slot_map() const { return map_; }

 private:
  // Where one command stands: where it goes next, and what it used up.
  struct Attempt {
    std::optional<ClusterNode> target;  // unset: the route's master in the map
    bool asking = false;
    int redirects = 0;
    int retries = 0;
  };

  // The topology, discovered or refreshed when it must be (see above).
  absl::Status EnsureTopology();
  // A refresh now if one is due and the interval allows it.
  void RefreshIfDue();
  // Sends `argv` (routed as `route`) until a final reply, starting at
  // `attempt`.
  absl::StatusOr<RedisReply> Send(const RedisArgv& argv, const ClusterRoute& route,
                                  Attempt attempt);
  // What to do after `reply`: true to send again as `attempt` now says
  // (having slept or refreshed as needed), false when `reply` is final.
  absl::StatusOr<bool> Follow(const RedisReply& reply, Attempt& attempt);
  // One retry used (false when none is left): counts it and sleeps.
  bool RetryLater(Attempt& attempt, bool refresh);
  // The master for `route` in the current map, or nullopt.
  std::optional<ClusterNode> MasterFor(const ClusterRoute& route) const;
  absl::StatusOr<RedisReply> SendToAllMasters(const RedisArgv& argv);
  absl::StatusOr<std::vector<RedisReply>> PipelineIndependent(
      absl::Span<const RedisArgv> commands, const std::vector<ClusterRoute>& routes);
  absl::StatusOr<std::vector<RedisReply>> PipelineTransaction(absl::Span<const RedisArgv> commands,
                                                              const ClusterRoute& route);
  // A transport failure: the topology is asked again before the next command.
  absl::Status Lost(absl::Status status);
  RedisConnection& Connection(const ClusterNode& node);

  const ClusterOptions options_;
  ClusterSlotMap map_;
  bool have_topology_ = false;
  bool refresh_due_ = false;
  absl::Time last_refresh_ = absl::InfinitePast();
  uint64_t topology_version_ = 0;
  ClusterStats stats_;
  // Node connections by ClusterNode::HostPort().
  std::map<std::string, std::unique_ptr<RedisConnection>> nodes_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_CLUSTER_CONNECTION_H_
