// HealthMonitor: pings Redis on its own connection and thread at a fixed
// interval, asks the process's own liveness check at the same time, and
// reports every change of either to a callback. The server wires it to
// grpc.health.v1 (R-G1): service "liveness" follows the process (its
// listeners accept), "readiness" / "" / the API services follow Redis too.
//
// Thread-safe. The callback runs on the monitor's thread.
#ifndef REDRIVE_DAEMON_HEALTH_H_
#define REDRIVE_DAEMON_HEALTH_H_

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/redis/commander.h"

namespace redrive {

class HealthMonitor {
 public:
  struct State {
    bool redis_ok = false;
    bool live = false;
    bool operator==(const State& o) const { return redis_ok == o.redis_ok && live == o.live; }
  };
  using Callback = std::function<void(State state)>;
  using LivenessCheck = std::function<bool()>;
  // Told the outcome and round-trip time of every PING (metrics).
  using PingObserver = std::function<void(bool ok, absl::Duration rtt)>;

  // Checks once synchronously (so the initial state is known), calls
  // `on_change` with it, then keeps checking every `interval`. `live` is
  // asked on the monitor's thread; it must not block.
  HealthMonitor(RedisConnectionOptions connection, absl::Duration interval, LivenessCheck live,
                Callback on_change, PingObserver on_ping = nullptr);
  ~HealthMonitor();  // Stops and joins.

  bool redis_ok() const;

 private:
  void Check() ABSL_LOCKS_EXCLUDED(mu_);
  void Run();

  const absl::Duration interval_;
  const LivenessCheck live_;
  const Callback on_change_;
  const PingObserver on_ping_;
  const RedisConnectionOptions options_;
  std::unique_ptr<RedisCommander> connection_;  // monitor thread only (and the constructor)
  bool cluster_reported_ = false;               // likewise
  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_HEALTH_H_
