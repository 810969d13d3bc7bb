// DeliveryEngine: the Subscribe machinery as one thread-safe object. It owns
// the event loop thread, the Redis async connections, the notifier and the
// Dispatcher, and forwards calls from gRPC threads to the loop (they never
// block on Redis). One Redis server: two connections (commands, and the
// StreamNotifier's blocking XREAD). A Redis Cluster (connect.h): a
// ClusterAsync for the commands (routed by slot) and a ClusterStreamNotifier
// (a blocking XREAD per watched slot, on its own connection to its master);
// the scripts are loaded on every master, again when the masters change.
//
// Thread-safe.
#ifndef REDRIVE_DAEMON_DELIVERY_ENGINE_H_
#define REDRIVE_DAEMON_DELIVERY_ENGINE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "daemon/activity_notifier.h"
#include "daemon/dispatcher.h"
#include "daemon/event_loop.h"
#include "daemon/redis/cluster_async.h"
#include "daemon/redis/hiredis_async.h"
#include "daemon/redis/redis_stream_ops.h"
#include "daemon/redis/stream_watch.h"
#include "daemon/stream_notifier.h"

namespace redrive {

class DeliveryEngine {
 public:
  struct Options {
    RedisConnectionOptions redis;
    DispatcherOptions dispatcher;
  };

  explicit DeliveryEngine(Options options);
  ~DeliveryEngine();

  uint64_t NewSessionId() { return next_session_.fetch_add(1) + 1; }
  void Register(uint64_t session, SubscriptionSpec spec, const std::shared_ptr<SessionSink>& sink);
  void Verbs(uint64_t session, std::shared_ptr<const v1::Verbs> verbs);
  void Stop(uint64_t session);
  void Disconnect(uint64_t session);
  // Blocks until the drain finished (see Dispatcher::Drain) or `grace` plus
  // a small margin passed.
  void Drain(absl::Duration grace);

  DispatcherStats Stats();
  // See Dispatcher::SetPaused / Snapshot. Block until the loop ran them.
  void SetPaused(const std::string& channel, const std::string& handler_id, bool paused);
  std::vector<Dispatcher::HandlerSnapshot> Snapshot();

 private:
  std::unique_ptr<EventLoop> loop_;
  // Loop-thread objects, created and destroyed on the loop.
  void StartSingle(const RedisConnectionOptions& commands, const RedisConnectionOptions& blocking);
  void StartCluster(const RedisConnectionOptions& commands, const RedisConnectionOptions& blocking);
  void OnActivity(const std::string& stream);

  std::unique_ptr<AsyncCommander> commands_;
  std::unique_ptr<HiredisAsync> blocking_;  // one server only
  std::unique_ptr<RedisStreamOps> ops_;
  std::unique_ptr<RedisStreamWatchOps> watch_ops_;  // one server only
  std::unique_ptr<ActivityNotifier> notifier_;
  StreamNotifier* single_notifier_ = nullptr;  // notifier_, one server only
  std::vector<RedisAddress> scripts_on_;       // cluster: the masters the scripts were loaded on
  std::unique_ptr<Dispatcher> dispatcher_;
  std::atomic<uint64_t> next_session_{0};
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DELIVERY_ENGINE_H_
