// HealthMonitor: pings Redis on its own connection and thread at a fixed
// interval and reports every change of "Redis answers" to a callback (the
// server wires it to grpc.health.v1: SERVING only while Redis answers, R-G1).
//
// Thread-safe. The callback runs on the monitor's thread.
#ifndef REDRIVE_DAEMON_HEALTH_H_
#define REDRIVE_DAEMON_HEALTH_H_

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/redis_client.h"

namespace redrive {

class HealthMonitor {
 public:
  using Callback = std::function<void(bool redis_ok)>;

  // Checks once synchronously (so the initial state is known), calls
  // `on_change` with it, then keeps checking every `interval`.
  HealthMonitor(RedisConnectionOptions connection, absl::Duration interval,
                Callback on_change);
  ~HealthMonitor();  // Stops and joins.

  bool redis_ok() const;

 private:
  void Check() ABSL_LOCKS_EXCLUDED(mu_);
  void Run();

  const absl::Duration interval_;
  const Callback on_change_;
  RedisConnection connection_;  // monitor thread only (and the constructor)
  mutable absl::Mutex mu_;
  bool ok_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_HEALTH_H_
