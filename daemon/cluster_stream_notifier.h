// ClusterStreamNotifier: the ActivityNotifier of a Redis Cluster. It runs
// one StreamNotifier (stream_notifier.h: its no-lost-wake-up argument holds
// unchanged) per watched hash SLOT, each with its own blocking connection to
// the master serving that slot.
//
// Why per slot and not per master: a cluster node refuses a multi-key
// command whose keys hash to different slots (CROSSSLOT), even when it
// serves all of them, and XREAD ... STREAMS k1 k2 is multi-key. So one
// blocking XREAD covers the streams of one slot. With --key-template=cluster
// every key of a channel carries the channel's {hash tag}: one slot, so one
// blocking connection, per channel with handlers on this daemon (a master
// serving the slots of three such channels holds three).
//
// Per slot ("group"):
//   LastId          XREVRANGE through the routed ClusterAsync: it reaches
//                   the slot's master on the same node connection as the
//                   readers' XREADGROUPs, so stream_notifier.h's ordering
//                   argument holds;
//   WaitForEntries  XREAD BLOCK on the group's own HiredisAsync to the
//                   master (never ClusterAsync's shared node connection: a
//                   blocking read stalls its connection);
//   Unblock         CLIENT UNBLOCK on ClusterAsync::ForNode(master), looked
//                   up at each call (those pointers die with a refresh).
//
// Topology. ClusterAsync::AddTopologyListener runs Regroup after every
// applied CLUSTER SLOTS: a group whose slot now has another master gets a
// new connection to it; once connected it watches the group's streams and
// reports them once to on_activity when its XREAD covers them (entries may
// have arrived unseen); a slot
// with no master parks its group (no connection) until one appears. A read
// that fails (MOVED after a resharding, the master killed or demoted)
// requests a refresh, again every 200 ms doubling to 2 s while any group is
// unhealthy: ClusterAsync only refreshes on what its own commands see.
// Before the first topology is known, Watch waits: `ready` runs once the
// stream's group is connected and its XREAD covers the stream. A group whose last stream is
// unwatched is closed. Retired connections are destroyed on a later loop turn: one of them may be
// running the callback that retired it.
//
// Loop thread only. `commands` must outlive the notifier.
#ifndef REDRIVE_DAEMON_CLUSTER_STREAM_NOTIFIER_H_
#define REDRIVE_DAEMON_CLUSTER_STREAM_NOTIFIER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "daemon/activity_notifier.h"
#include "daemon/event_loop.h"
#include "daemon/redis/cluster_async.h"
#include "daemon/redis/commander.h"
#include "daemon/stream_notifier.h"

namespace redrive {

class ClusterStreamNotifier final : public ActivityNotifier {
 public:
  // `blocking` configures every blocking connection (timeouts, backoff,
  // client name); its address is replaced by the slot master's, with the
  // credentials ClusterAsync uses (the first seed's), and its sentinel
  // ignored.
  ClusterStreamNotifier(EventLoop& loop, ClusterAsync& commands, RedisConnectionOptions blocking,
                        Callback on_activity, absl::Duration block = absl::Seconds(2));
  ~ClusterStreamNotifier() override;
  ClusterStreamNotifier(const ClusterStreamNotifier&) = delete;
  ClusterStreamNotifier& operator=(const ClusterStreamNotifier&) = delete;

  void Watch(const std::string& stream, std::function<void()> ready) override;
  void Unwatch(const std::string& stream) override;
  void Kick() override;
  // A topology is known, every watched slot has a master, and every group's
  // read works.
  bool healthy() const override;
  size_t watched() const override { return streams_.size(); }

  // Groups reading now (tests): one blocking connection each.
  size_t reading_groups() const;

 private:
  struct Placement;  // a group's connection, ops and StreamNotifier
  struct Group {
    absl::flat_hash_set<std::string> streams;
    std::string master;  // host:port of the placement, empty while parked
    std::unique_ptr<Placement> placement;
    // Report the streams once the next placement covers them.
    bool report_on_place = false;
  };
  struct Watched {
    int refs = 0;
    int slot = 0;
    // `ready` of Watch calls made while the group was parked.
    std::vector<std::function<void()>> waiting;
  };

  void Regroup();
  // Places `group` on the current master of `slot`, if any.
  void Place(int slot, Group& group);
  void OnConnected(Placement& placement);
  void WatchIn(Placement& placement, const std::string& stream, bool report);
  void Retire(Group& group);
  void OnReadError();
  void Repair();

  EventLoop& loop_;
  ClusterAsync& commands_;
  const RedisConnectionOptions blocking_options_;
  const Callback on_activity_;
  const absl::Duration block_;
  absl::flat_hash_map<std::string, Watched> streams_;
  absl::flat_hash_map<int, Group> groups_;  // by slot
  std::vector<std::unique_ptr<Placement>> retired_;
  uint64_t listener_id_ = 0;
  std::unique_ptr<EventLoop::Timer> repair_timer_;
  absl::Duration repair_delay_;
  bool repair_armed_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_CLUSTER_STREAM_NOTIFIER_H_
