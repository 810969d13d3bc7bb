// Metrics (R-G2): the daemon's Prometheus metrics, declared once as data
// (the X-macro lists below and kMetricCatalogue), counted with relaxed
// atomics on the hot path and rendered in the Prometheus text exposition
// format (version 0.0.4) by Metrics::Render.
//
// Per-handler series carry the labels `channel` and `handler` (the handler
// id). Label cardinality is bounded: at most `max_handlers` distinct
// handlers get their own series (default 1,000); the traffic of any further
// handler is counted under channel="_overflow", handler="_overflow" and
// redrive_metrics_overflow_registrations_total counts the registrations
// that landed there. Label
// values never come from payloads or entry ids; `reason` and `code` take
// values from fixed lists (DeadLetterReason, gRPC status codes).
//
// Counters and histograms are per-daemon totals since the daemon started
// (Prometheus rate() handles the reset on restart). The gauges that describe
// Redis (pending, lag, retry and DLQ depth, oldest dead letter) and this
// daemon's sessions are a snapshot the collector (metrics_collector.h)
// replaces every refresh.
//
// Thread-safe: HandlerMetrics and DaemonMetrics fields are atomics; a
// HandlerMetrics pointer stays valid for the Metrics object's lifetime (it is
// never removed, so re-registering a handler continues its counters).
#ifndef REDRIVE_DAEMON_METRICS_H_
#define REDRIVE_DAEMON_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace redrive {

// A monotonic count.
class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Adds one to a gauge for its lifetime (an open stream); null = nothing.
class GaugeHold {
 public:
  explicit GaugeHold(Gauge* gauge) : gauge_(gauge) {
    if (gauge_ != nullptr) gauge_->Add(1);
  }
  ~GaugeHold() {
    if (gauge_ != nullptr) gauge_->Add(-1);
  }
  GaugeHold(const GaugeHold&) = delete;
  GaugeHold& operator=(const GaugeHold&) = delete;

 private:
  Gauge* const gauge_;
};

// A distribution of durations over fixed buckets (upper bounds in seconds,
// ascending); the sum is kept in nanoseconds.
class Histogram {
 public:
  static constexpr size_t kMaxBuckets = 20;
  explicit Histogram(absl::Span<const double> bounds_seconds);

  void Observe(absl::Duration d);

  struct Snapshot {
    std::vector<double> bounds;        // seconds
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum_seconds = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> bounds_ns_;
  std::array<std::atomic<uint64_t>, kMaxBuckets + 1> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// Why an entry was dead-lettered: the `reason` label of
// redrive_dead_letters_total (the DLQ entry's reason field).
#define REDRIVE_DEAD_LETTER_REASONS(X) \
  X(kMaxRetries, "max_retries")        \
  X(kTerminated, "terminated")         \
  X(kPoison, "poison")                 \
  X(kDisconnected, "disconnected")     \
  X(kLeaseExpired, "lease_expired")    \
  X(kOther, "other")

enum class DeadLetterReason : uint8_t {
#define REDRIVE_REASON_ENUM(id, name) id,
  REDRIVE_DEAD_LETTER_REASONS(REDRIVE_REASON_ENUM)
#undef REDRIVE_REASON_ENUM
};
inline constexpr size_t kDeadLetterReasons = 6;
// "max_retries" → kMaxRetries; anything not listed → kOther.
DeadLetterReason ParseDeadLetterReason(absl::string_view reason);
absl::string_view DeadLetterReasonName(DeadLetterReason reason);

// The per-handler counters: field, metric name, help.
#define REDRIVE_HANDLER_COUNTERS(X)                                                           \
  X(deliveries, "redrive_deliveries_total", "Deliveries handed to Subscribe streams.")        \
  X(acks, "redrive_acks_total", "ACK verbs applied.")                                         \
  X(nacks, "redrive_nacks_total", "NACK verbs applied.")                                      \
  X(extends, "redrive_extends_total", "EXTEND verbs applied.")                                \
  X(terminates, "redrive_terminates_total", "TERMINATE verbs applied.")                       \
  X(lease_expiries, "redrive_lease_expiries_total",                                           \
    "Deliveries whose lease expired on this daemon without a verb.")                          \
  X(retries_scheduled, "redrive_retries_scheduled_total",                                     \
    "Failed attempts scheduled for a retry.")                                                 \
  X(retries_moved, "redrive_retries_moved_total", "Due retries moved into the retry stream.") \
  X(poison, "redrive_poison_total", "Entries whose envelope or retry metadata is unusable.")  \
  X(redriven, "redrive_redriven_total", "Dead letters sent back by redrive jobs.")            \
  X(dlq_evictions, "redrive_dlq_evictions_total",                                             \
    "Dead letters evicted by the DLQ's max_len "                                              \
    "(overflow evict).")

struct HandlerMetrics {
#define REDRIVE_HANDLER_COUNTER_FIELD(field, name, help) Counter field;
  REDRIVE_HANDLER_COUNTERS(REDRIVE_HANDLER_COUNTER_FIELD)
#undef REDRIVE_HANDLER_COUNTER_FIELD
  std::array<Counter, kDeadLetterReasons> dead_letters;
  Histogram settle_latency;

  HandlerMetrics();
  void DeadLettered(absl::string_view reason) {
    dead_letters[static_cast<size_t>(ParseDeadLetterReason(reason))].Add();
  }
  uint64_t dead_letters_total() const;

  // Where code without a Metrics object (unit tests of the engine) counts.
  static HandlerMetrics& Discarded();
};

// What the collector reads of one handler (Redis and this daemon's engine).
struct HandlerGauges {
  std::string channel;
  std::string handler_id;
  int64_t in_flight = 0;
  int64_t connected_streams = 0;
  int64_t pending = 0;
  int64_t lag = -1;  // unknown: no series
  int64_t retry_depth = 0;
  int64_t dlq_depth = 0;
  double oldest_dead_letter_age_seconds = 0;
  bool paused = false;
};

enum class PublishRpc : uint8_t { kPublish = 0, kPublishBatch = 1 };
enum class StreamKind : uint8_t { kSubscribe = 0, kTail = 1 };
inline constexpr size_t kGrpcCodes = 17;

struct DaemonMetrics {
  DaemonMetrics();
  // Per PublishRpc.
  std::array<Histogram, 2> publish_latency;
  // Per PublishRpc and gRPC status code (0..16).
  std::array<std::array<Counter, kGrpcCodes>, 2> publish_requests;
  Histogram redis_rtt;  // the health monitor's PINGs
  Gauge redis_up;
  std::array<Gauge, 2> grpc_streams;  // per StreamKind
  Counter collect_errors;             // failed gauge refreshes
};

struct MetricsOptions {
  size_t max_handlers = 1000;
  std::string version;   // redrive_build_info{version}
  std::string revision;  // redrive_build_info{revision}
};

// One row of the catalogue: what README's metrics table documents.
struct MetricInfo {
  const char* name;
  const char* type;  // counter, gauge, histogram
  const char* labels;
  const char* help;
};
// Every metric family Render emits, in order.
absl::Span<const MetricInfo> MetricCatalogue();

class Metrics {
 public:
  explicit Metrics(MetricsOptions options);

  // The handler's counters; created on first use. Over `max_handlers`, the
  // shared overflow series.
  HandlerMetrics* ForHandler(absl::string_view channel, absl::string_view handler_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The handler's counters if it has any (never the overflow series).
  const HandlerMetrics* Find(absl::string_view channel, absl::string_view handler_id) const
      ABSL_LOCKS_EXCLUDED(mu_);
  DaemonMetrics& daemon() { return daemon_; }

  // Replaces the gauges of every handler (the collector's latest reading);
  // beyond `max_handlers` rows the rest are dropped.
  void SetHandlerGauges(std::vector<HandlerGauges> gauges) ABSL_LOCKS_EXCLUDED(mu_);

  // The Prometheus text exposition of everything. Process-wide Redis
  // reconnects are read from the redis layer (redis_counters.h).
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Key = std::pair<std::string, std::string>;  // channel, handler id
  const MetricsOptions options_;
  DaemonMetrics daemon_;
  mutable absl::Mutex mu_;
  std::map<Key, std::unique_ptr<HandlerMetrics>> handlers_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<HandlerMetrics> overflow_ ABSL_GUARDED_BY(mu_);
  uint64_t overflowed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t gauges_dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<HandlerGauges> gauges_ ABSL_GUARDED_BY(mu_);
};

// Connections to Redis established again after one was lost, process-wide
// (the redis layer counts; redrive_redis_reconnects_total).
Counter& RedisReconnects();
// The primary changes a SentinelWatcher saw
// (redrive_redis_primary_changes_total).
Counter& RedisPrimaryChanges();

// Escapes a label value for the text format (backslash, quote, newline).
std::string EscapeLabelValue(absl::string_view value);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_METRICS_H_
