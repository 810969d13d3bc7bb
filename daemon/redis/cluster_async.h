// ClusterAsync: an AsyncCommander (commander.h) over a Redis Cluster, on the
// EventLoop. Not used by redrived yet (docs/redis-cluster.md says what
// remains to wire it in).
//
// Topology. At construction it asks a seed for CLUSTER SLOTS (the next seed
// when one fails) and keeps the slot -> master map (cluster_slots.h). Later
// refreshes ask the known masters first, then the seeds. A refresh runs after
// a MOVED reply, after a node's connection failed, and when a slot has no
// master; refreshes are at least `min_refresh_interval` apart.
//
// Connections. One HiredisAsync per node, created on first use with the
// seeds' credentials (the first seed's user and password; db 0, the only one
// a cluster has). A refresh drops the connections to nodes the topology no
// longer lists (a failed or removed node); their outstanding commands fail
// with UNAVAILABLE.
//
// Routing (cluster_route.h): a keyed command goes to the master of its slot;
// keys in different slots are refused before sending (FAILED_PRECONDITION,
// "CROSSSLOT: ..."). PING/TIME/INFO/ECHO/DBSIZE and EVAL/EVALSHA with no
// keys go to one master (the first by host:port). SCRIPT LOAD/EXISTS/FLUSH
// go to every master; the callback gets the first failure (a transport error
// or an error reply, in master order) or else the first master's reply.
// SCAN, CLIENT, MULTI/EXEC and the other per-node commands are refused
// (INVALID_ARGUMENT): send them on ForNode()/NodeFor().
//
// Redirects and retries.
//   MOVED slot host:port  the slot's owner is updated at once (and a full
//                         refresh scheduled); the command is sent again to
//                         the new owner.
//   ASK slot host:port    ASKING then the command, pipelined on the target's
//                         connection; the map is not changed.
//   TRYAGAIN, CLUSTERDOWN the command is sent again after `retry_delay`.
// A command is redirected at most `max_redirects` times and retried at most
// `max_retries` times; past that the callback gets the last error reply.
// Re-sending is safe for every command, idempotent or not: a node answering
// MOVED/ASK/TRYAGAIN/CLUSTERDOWN did not execute it. A connection lost while
// a command was outstanding is UNAVAILABLE to its callback and never re-sent
// (the command may have run); a refresh follows.
//
// Order. Every callback runs exactly once, on the loop thread, never inside
// Send; the destructor runs those of the commands still outstanding, with
// UNAVAILABLE. Commands for one slot reach its master in Send order unless
// one of them is redirected or retried; commands for different masters
// complete in any order.
//
// Loop thread only: construction, Send, the accessors and destruction.
#ifndef REDRIVE_DAEMON_REDIS_CLUSTER_ASYNC_H_
#define REDRIVE_DAEMON_REDIS_CLUSTER_ASYNC_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/event_loop.h"
#include "daemon/redis/cluster_options.h"
#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/commander.h"

namespace redrive {

class HiredisAsync;

class ClusterAsync final : public AsyncCommander {
 public:
  // ValidateClusterOptions (cluster_options.h).
  static absl::Status Validate(const ClusterOptions& options) {
    return ValidateClusterOptions(options);
  }

  // Starts the discovery. `options` must pass Validate (checked: a crash
  // otherwise).
  ClusterAsync(EventLoop& loop, ClusterOptions options);
  // Fails every command not yet answered with UNAVAILABLE.
  ~ClusterAsync() override;
  ClusterAsync(const ClusterAsync&) = delete;
  ClusterAsync& operator=(const ClusterAsync&) = delete;

  using AsyncCommander::Send;
  // Before the first topology is known, commands wait for it; if no seed
  // answers they fail with UNAVAILABLE naming the seeds.
  void Send(const RedisArgv& argv, AsyncCallback done, absl::Duration extra_timeout) override;
  // A topology is known and every slot has a master.
  bool connected() const override;

  // The masters of the current topology, sorted by host:port (empty before
  // the first CLUSTER SLOTS answer). For SCAN and blocking reads per node.
  std::vector<RedisAddress> Masters() const;
  // The connection to the master of `slot`, or nullptr when none is known.
  // Like ForNode's, the pointer is valid until the next topology refresh
  // (topology_version() changes): look it up again for each command.
  AsyncCommander* NodeFor(int slot);
  // The connection to the node at address.host:address.port (created on
  // first use; credentials from the seeds). Commands sent on it are not
  // routed, redirected nor retried.
  AsyncCommander* ForNode(const RedisAddress& address);

  // Schedules a CLUSTER SLOTS refresh (rate-limited).
  void Refresh();
  // Bumped whenever a refresh applied a new topology.
  uint64_t topology_version() const { return topology_version_; }
  // `listener` runs on the loop after every applied topology (each bump of
  // topology_version(), changed or not), once the commands waiting for it
  // were dispatched; it may Send, use ForNode/NodeFor and add or remove
  // listeners. Returns the id RemoveTopologyListener takes.
  uint64_t AddTopologyListener(std::function<void()> listener);
  void RemoveTopologyListener(uint64_t id);
  const ClusterStats& stats() const { return stats_; }
  const ClusterSlotMap& slot_map() const { return map_; }

 private:
  struct Request;

  void Dispatch(const std::shared_ptr<Request>& request);
  void SendToNode(const std::shared_ptr<Request>& request, const ClusterNode& node, bool asking);
  void OnReply(const std::shared_ptr<Request>& request, absl::StatusOr<RedisReply> reply);
  void SendToAllMasters(const std::shared_ptr<Request>& request);
  void RetryLater(const std::shared_ptr<Request>& request);
  void RunDueRetries();
  void StartRefresh();
  void AskForSlots(std::vector<ClusterNode> candidates, size_t next);
  void ApplyTopology(ClusterSlotMap map);
  void RefreshFailed(const absl::Status& why);
  void NotifyTopologyListeners();
  HiredisAsync& Connection(const ClusterNode& node);

  EventLoop& loop_;
  const ClusterOptions options_;
  ClusterSlotMap map_;
  bool have_topology_ = false;
  uint64_t topology_version_ = 0;
  ClusterStats stats_;
  // Node connections by ClusterNode::HostPort().
  std::map<std::string, std::unique_ptr<HiredisAsync>> nodes_;
  // Connections of nodes that left the topology, destroyed on a later loop
  // turn (one of them may be running the callback that dropped it).
  std::vector<std::unique_ptr<HiredisAsync>> retired_;
  // Commands waiting for the first topology.
  std::deque<std::shared_ptr<Request>> waiting_;
  // TRYAGAIN/CLUSTERDOWN re-sends, by due time (a constant delay keeps the
  // queue sorted).
  std::deque<std::pair<absl::Time, std::shared_ptr<Request>>> retries_;
  std::unique_ptr<EventLoop::Timer> retry_timer_;
  bool refreshing_ = false;
  bool refresh_again_ = false;      // asked for while one was running
  bool refresh_scheduled_ = false;  // refresh_timer_ is armed
  absl::Time last_refresh_ = absl::InfinitePast();
  std::unique_ptr<EventLoop::Timer> refresh_timer_;
  std::map<uint64_t, std::function<void()>> topology_listeners_;
  uint64_t next_listener_id_ = 0;
  // False once destruction began: late callbacks must not touch this object.
  std::shared_ptr<bool> alive_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_CLUSTER_ASYNC_H_
