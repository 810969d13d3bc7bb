#include "daemon/health.h"

#include <spdlog/spdlog.h>

#include "absl/status/status.h"
#include "daemon/logging.h"
#include "daemon/redis/connect.h"
#include "daemon/redis/keyspace.h"

namespace redrive {

HealthMonitor::HealthMonitor(RedisConnectionOptions connection, absl::Duration interval,
                             LivenessCheck live, Callback on_change, PingObserver on_ping)
    : interval_(interval),
      live_(std::move(live)),
      on_change_(std::move(on_change)),
      on_ping_(std::move(on_ping)),
      options_([&] {
        // The probe must notice a dead Redis within one interval.
        connection.command_timeout = std::min(connection.command_timeout, interval);
        connection.min_backoff = absl::ZeroDuration();
        connection.max_backoff = absl::ZeroDuration();
        return connection;
      }()),
      connection_(OpenRedis(options_)) {
  Check();
  {
    absl::MutexLock lock(&mu_);
    on_change_(state_);
  }
  thread_ = std::thread([this] { Run(); });
}

HealthMonitor::~HealthMonitor() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

bool HealthMonitor::redis_ok() const {
  absl::MutexLock lock(&mu_);
  return state_.redis_ok;
}

void HealthMonitor::Check() {
  const absl::Time sent = absl::Now();
  // A single node: PING. A cluster: every master answers and every slot
  // is served (connect.h).
  absl::Status ping = IsCluster(options_) ? CheckRedis(*connection_, options_) : Ping(*connection_);
  if (on_ping_) on_ping_(ping.ok(), absl::Now() - sent);
  bool was_ok = false;
  {
    absl::MutexLock lock(&mu_);
    was_ok = state_.redis_ok;
  }
  // On every (re)connection to a single node: a Redis Cluster node reached
  // through a plain address is not usable (connect.h).
  if (ping.ok() && !was_ok && !IsCluster(options_)) {
    ping = CheckNotClusterNode(*connection_);
    if (absl::IsFailedPrecondition(ping) && !cluster_reported_) {
      spdlog::error("readiness NOT_SERVING: {}", std::string(ping.message()));
      cluster_reported_ = true;
    }
  }
  State now;
  now.redis_ok = ping.ok();
  now.live = live_ == nullptr || live_();
  State before;
  {
    absl::MutexLock lock(&mu_);
    before = state_;
    state_ = now;
  }
  if (!(before == now) && thread_.joinable()) {
    if (now.redis_ok && !before.redis_ok) {
      spdlog::info("redis answers again: readiness SERVING");
    } else if (!now.redis_ok && before.redis_ok) {
      spdlog::warn("redis does not answer ({}): readiness NOT_SERVING",
                   std::string(ping.message()));
    }
    if (now.live != before.live) {
      if (now.live) {
        spdlog::info("listeners accept again: liveness SERVING");
      } else {
        spdlog::error("a listener has not accepted connections for too long: liveness NOT_SERVING");
      }
    }
    on_change_(now);
  }
}

void HealthMonitor::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), interval_)) return;
    }
    Check();
  }
}

}  // namespace redrive
