// MetricsServer (R-G2): serves Metrics::Render as Prometheus text at
// GET /metrics on --metrics-listen, with libevent's HTTP server on its own
// thread, and refreshes the Redis-derived gauges on a second thread every
// `refresh` (the first refresh runs before Start returns, so the first
// scrape already has them). Anything but GET/HEAD /metrics is 404 or 405.
//
// Thread-safe: Start, bound and the destructor from any one thread.
#ifndef REDRIVE_DAEMON_METRICS_SERVER_H_
#define REDRIVE_DAEMON_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/metrics.h"

struct event_base;
struct evhttp;
struct event;

namespace redrive {

class MetricsServer {
 public:
  struct Options {
    std::string listen;  // host:port; port 0 picks a free one
    absl::Duration refresh = absl::Seconds(5);
    // Reads the gauges (Redis, the engine) into the Metrics object; runs on
    // the refresh thread. Empty = nothing to refresh.
    std::function<void()> collect;
  };

  // Binds and starts serving. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(Options options,
                                                              const Metrics& metrics);
  ~MetricsServer();  // stops both threads
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // host:port actually bound.
  const std::string& bound() const { return bound_; }

 private:
  MetricsServer(Options options, const Metrics& metrics);
  void Collect() ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  const Metrics& metrics_;
  std::string bound_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* stop_event_ = nullptr;
  std::thread http_thread_;
  std::thread collect_thread_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_METRICS_SERVER_H_
