// What every part of the delivery engine shares: its options, its counters
// (declared once, as data: REDRIVE_ENGINE_COUNTERS), the typed Redis
// operations and the loop, bundled as EngineContext; the shared value types
// (Entry, HandlerRef, SourceIndex); LifeGuard for callbacks that may outlive
// their part; OpTracker, which counts Redis operations a drain waits for.
//
// Loop thread only (EngineContext, LifeGuard's callbacks, OpTracker);
// the value types are thread-compatible.
#ifndef REDRIVE_DAEMON_ENGINE_CONTEXT_H_
#define REDRIVE_DAEMON_ENGINE_CONTEXT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "daemon/event_loop.h"
#include "daemon/event_summary.h"
#include "daemon/keys.h"
#include "daemon/metrics.h"
#include "daemon/redis/stream_ops.h"
#include "daemon/subscription.h"

namespace redrive {

struct DispatcherOptions {
  std::string instance_id;
  // Most entries per XREADGROUP / XAUTOCLAIM.
  uint32_t read_batch = 256;
  // XACK batching: flush at this many ids or after `ack_delay`.
  size_t ack_batch = 256;
  absl::Duration ack_delay = absl::Milliseconds(1);
  absl::Duration tick = absl::Milliseconds(100);
  // Shortest interval between two sweeps of one handler (the sweep period is
  // max(lease, this)).
  absl::Duration min_sweep = absl::Seconds(5);
  // Delay before a read is retried after a Redis error.
  absl::Duration error_backoff = absl::Milliseconds(100);
  // Due retries moved per handler per mover pass.
  uint32_t move_batch = 128;
  // A consumer with nothing pending and idle this long (and at least 10
  // leases) is removed from its group.
  absl::Duration consumer_expiry = absl::Minutes(10);
  // Random numbers in [0, 1) for backoff jitter (tests fix it).
  std::function<double()> unit_random;
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // How often {redrive}:paused is read while handlers are registered.
  absl::Duration pause_poll = absl::Seconds(1);
  // How often this daemon renews the presence heartbeats of its handlers in
  // {redrive}:handlers (see keys.h; DeleteHandler reads them).
  absl::Duration presence_interval = kPresenceInterval;
  // Retry-stream trimming (TrimRetryScript), at most once per sweep of the
  // retry stream and only after this daemon settled retry entries: acked
  // entries older than `retry_retention` go, at most about `trim_limit` per
  // pass.
  absl::Duration retry_retention = absl::Minutes(1);
  uint32_t trim_limit = 10000;
  // Dead letters and expired leases are logged as one info line per handler
  // per this interval (EventSummary); each one at debug level.
  absl::Duration log_summary_interval = absl::Seconds(10);
  // Where handlers' traffic is counted (R-G2); null = not counted. Outlives
  // the engine.
  Metrics* metrics = nullptr;
};

// The engine's counters: name, meaning. Declared once; the struct, its
// visitor and the metrics exporter are generated from this list.
#define REDRIVE_ENGINE_COUNTERS(X)                                             \
  X(deliveries, "deliveries handed to sessions")                               \
  X(redeliveries, "backlog entries fetched again for delivery")                \
  X(acks, "ACK verbs applied")                                                 \
  X(nacks, "NACK verbs applied")                                               \
  X(extends, "EXTEND verbs applied")                                           \
  X(terminates, "TERMINATE verbs applied")                                     \
  X(lease_expiries, "deliveries whose lease expired without a verb")           \
  X(reclaimed, "orphaned entries claimed by a sweep")                          \
  X(released, "entries handed back to Redis for any reclaimer")                \
  X(retries_scheduled, "failed attempts scheduled for a retry")                \
  X(retries_moved, "due retries moved into a retry stream")                    \
  X(dead_letters, "entries appended to a dead-letter stream")                  \
  X(poison, "entries whose envelope or retry metadata is unusable")            \
  X(dlq_evictions, "dead letters evicted by a DLQ cap")                        \
  X(dlq_held, "dead-letter moves held by a full DLQ (overflow hold)")          \
  X(sweeps, "sweeps of a handler's stream")                                    \
  X(consumers_removed, "idle consumers deleted from a group")                  \
  X(disconnect_failures, "deliveries failed because their stream ended")       \
  X(returned, "entries read but never delivered, handed back")                 \
  X(drain_released, "deliveries unsettled at the end of a drain, handed back") \
  X(notices, "notices sent to clients")                                        \
  X(reads, "XREADGROUP calls")                                                 \
  X(redis_errors, "Redis operations that failed")                              \
  X(groups_recreated, "consumer groups recreated after they vanished")         \
  X(decode_errors, "auto-ack entries delivered as raw bytes")                  \
  X(retry_trims, "retry-stream trim passes")                                   \
  X(retry_trimmed, "retry-stream entries removed by trims")

struct DispatcherStats {
#define REDRIVE_COUNTER_FIELD(name, help) uint64_t name = 0;
  REDRIVE_ENGINE_COUNTERS(REDRIVE_COUNTER_FIELD)
#undef REDRIVE_COUNTER_FIELD

  // Calls fn(name, help, value) for every counter, in declaration order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
#define REDRIVE_COUNTER_VISIT(name, help) fn(#name, help, name);
    REDRIVE_ENGINE_COUNTERS(REDRIVE_COUNTER_VISIT)
#undef REDRIVE_COUNTER_VISIT
  }
};

enum SourceIndex : uint8_t { kMain = 0, kRetry = 1 };

// An entry this daemon holds: in flight, or waiting for a slot. The payload
// is not kept; a redelivery fetches it again (XCLAIM).
struct Entry {
  std::string id;
  uint32_t attempt = 1;
  uint8_t source = kMain;
};

// Failure kinds that decide the dead-letter reason and the delay.
enum class FailKind : uint8_t { kNack, kExpired, kDisconnected, kTerminated };

// A handler incarnation: replies to commands of a removed handler must not
// act on a later handler with the same key.
struct HandlerRef {
  std::string key;
  uint64_t generation = 0;  // unique per handler on this daemon: the parts' map key

  friend bool operator==(const HandlerRef& a, const HandlerRef& b) {
    return a.generation == b.generation && a.key == b.key;
  }
};

// The handler's names (first registration), shared with callbacks that
// outlive the handler.
using SpecPtr = std::shared_ptr<const SubscriptionSpec>;

// The stream, group and this daemon's consumer of a handler's source.
inline GroupRef SourceRef(const SubscriptionSpec& spec, uint8_t source) {
  return source == kMain ? GroupRef{spec.keys.stream, spec.keys.group, spec.consumer}
                         : GroupRef{spec.keys.retry_stream, spec.keys.retry_group, spec.consumer};
}
// The stream and group of `source`, without SourceRef's copies (per-message
// paths).
inline const std::string& SourceStream(const SubscriptionSpec& spec, uint8_t source) {
  return source == kMain ? spec.keys.stream : spec.keys.retry_stream;
}
inline const std::string& SourceGroup(const SubscriptionSpec& spec, uint8_t source) {
  return source == kMain ? spec.keys.group : spec.keys.retry_group;
}

// Wraps callbacks so they do nothing once their owner is destroyed.
class LifeGuard {
 public:
  LifeGuard() = default;
  LifeGuard(const LifeGuard&) = delete;
  LifeGuard& operator=(const LifeGuard&) = delete;
  ~LifeGuard() { *alive_ = false; }

  template <typename Fn>
  auto Wrap(Fn fn) const {
    return [alive = alive_, fn = std::move(fn)](auto&&... args) mutable {
      if (*alive) fn(std::forward<decltype(args)>(args)...);
    };
  }

 private:
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Counts Redis operations in progress; `on_idle` runs when the count falls
// to zero (a drain waits for it).
class OpTracker {
 public:
  void Begin() { ++in_progress_; }
  void End() {
    if (in_progress_ > 0) --in_progress_;
    if (in_progress_ == 0 && on_idle_) on_idle_();
  }
  size_t in_progress() const { return in_progress_; }
  void set_on_idle(std::function<void()> fn) { on_idle_ = std::move(fn); }

 private:
  size_t in_progress_ = 0;
  std::function<void()> on_idle_;
};

// What the parts of the engine share. The referenced objects outlive them.
struct EngineContext {
  EventLoop& loop;
  StreamOps& ops;
  const DispatcherOptions& options;
  DispatcherStats& stats;
  EventSummary& summary;
  OpTracker& tracker;

  absl::Time now() const { return options.now(); }
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_CONTEXT_H_
