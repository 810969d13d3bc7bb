#include "daemon/health.h"

#include <spdlog/spdlog.h>

#include "daemon/logging.h"

namespace redrive {

HealthMonitor::HealthMonitor(RedisConnectionOptions connection, absl::Duration interval,
                             Callback on_change)
    : interval_(interval), on_change_(std::move(on_change)), connection_([&] {
        // The probe must notice a dead Redis within one interval.
        connection.command_timeout = std::min(connection.command_timeout, interval);
        connection.min_backoff = absl::ZeroDuration();
        connection.max_backoff = absl::ZeroDuration();
        return connection;
      }()) {
  Check();
  {
    absl::MutexLock lock(&mu_);
    on_change_(ok_);
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
  return ok_;
}

void HealthMonitor::Check() {
  absl::StatusOr<RedisReply> reply = connection_.Command({"PING"});
  const bool ok = reply.ok() && reply->is_status() && reply->str == "PONG";
  bool changed = false;
  {
    absl::MutexLock lock(&mu_);
    changed = ok != ok_;
    ok_ = ok;
  }
  if (changed && thread_.joinable()) {
    if (ok) {
      spdlog::info("redis answers again: health SERVING");
    } else {
      spdlog::warn("redis does not answer ({}): health NOT_SERVING",
                   reply.ok() ? reply->DebugString() : std::string(reply.status().message()));
    }
    on_change_(ok);
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
