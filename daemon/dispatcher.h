// Dispatcher: the delivery engine behind Subscribe (R-B3..R-B9, R-C1,
// R-D1..R-D9). See docs/architecture.md and docs/retries-design.md.
//
// It is the coordinator of the engine's parts (daemon/engine/): it owns the
// handlers on this daemon — per (channel, handler id): the connected
// sessions (Subscribe streams), the entries waiting for a slot — and each
// session's leases (LeaseTable) and outbox, and it applies the clients'
// verbs. The parts do the rest:
//   Reader         group reads of the main and retry streams, on the
//                  notifier's word and only for free slots;
//   AckBatcher     batched XACKs of ACKed entries;
//   RetryScheduler failed attempts → due zset → retry stream (the mover);
//   DeadLetterer   exhausted, TERMINATEd and poison entries → the DLQ;
//   Sweeper        entries idle past the lease under any consumer, idle
//                  consumers, retry-stream trimming;
//   PausePoller    paused handlers (R-E5); Presence: the handler registry;
//   Drainer        the state of a graceful drain.
// They talk to Redis through StreamOps (daemon/redis/stream_ops.h) only.
//
// Consumers are per daemon instance (`{handler}-{instance}`, or
// `{handler}-{label}-{instance}` with the first registration's
// consumer_label); sessions of a handler share it.
//
// Verbs: ACK → batched XACK. NACK, lease expiry and a disconnect (R-B7) are
// failed attempts (RetryScheduler::Fail). EXTEND → new deadline and XCLAIM
// JUSTID (touch.lua) to reset the idle time.
//
// Thread model: every method runs on the EventLoop thread (Post to it).
// Sessions are reached through SessionSink, which is thread-safe.
#ifndef REDRIVE_DAEMON_DISPATCHER_H_
#define REDRIVE_DAEMON_DISPATCHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/activity_notifier.h"
#include "daemon/engine/context.h"
#include "daemon/engine/handler.h"
#include "daemon/engine/session.h"
#include "daemon/event_loop.h"
#include "daemon/redis/stream_ops.h"
#include "daemon/session_sink.h"
#include "daemon/stream_entry.h"
#include "daemon/subscription.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

class Dispatcher {
 public:
  Dispatcher(EventLoop& loop, StreamOps& ops, ActivityNotifier& notifier,
             DispatcherOptions options);
  ~Dispatcher();

  // Registers a session. The group is created if missing; then `sink` gets
  // Registered and deliveries, or Finish with FAILED_PRECONDITION (the
  // handler is registered here with another auto_ack, retry or dead-letter
  // policy, see CheckSamePolicy; the key is not a stream) or UNAVAILABLE
  // (Redis). Sessions of a handler share its consumer, named with the first
  // registration's consumer_label; each Registered reply names it.
  void Register(uint64_t session_id, SubscriptionSpec spec, std::shared_ptr<SessionSink> sink)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Applies the client's verbs; notices for unknown or settled ids.
  void Verbs(uint64_t session_id, const v1::Verbs& verbs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // The client takes no new deliveries.
  void Stop(uint64_t session_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // The stream ended: its deliveries go to other sessions or back to Redis.
  void Disconnect(uint64_t session_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // From the notifier: `stream` received entries.
  void OnStreamActivity(const std::string& stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Graceful drain: tells every session, stops deliveries, waits for
  // settlements up to `grace`, then hands what is still unsettled (and what
  // was read but never delivered) back through the retry path WITHOUT
  // counting an attempt (the next owner delivers it with the same attempt
  // number), finishes every session with UNAVAILABLE and flushes
  // acknowledgements; then runs `done`.
  void Drain(absl::Duration grace, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  // Pause (R-E5): a paused handler gets no new deliveries (nothing is read
  // or handed out; entries waiting here stay ours and keep being touched);
  // deliveries in flight keep their leases and may still be settled. Also
  // applies to a handler registered later. Other daemons learn it from
  // {redrive}:paused, polled every `pause_poll`.
  void SetPaused(const std::string& channel, const std::string& handler_id, bool paused)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  // What the Admin service reports of a handler on this daemon.
  struct HandlerSnapshot {
    std::string channel;
    std::string handler_id;
    uint32_t sessions = 0;
    uint64_t in_flight = 0;
    std::string consumer;  // this daemon's consumer in the handler's groups
    bool paused = false;
  };
  std::vector<HandlerSnapshot> Snapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  const DispatcherStats& stats() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) {
    return state_.stats;
  }
  // In-flight deliveries of a session (tests).
  size_t InFlight(uint64_t session_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  size_t handlers() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) { return handlers_.size(); }

 private:
  struct Parts;
  using Handler = EngineHandler;
  using Session = HandlerSession;

  // What the dispatcher's context refers to.
  struct State {
    explicit State(DispatcherOptions o)
        : options(std::move(o)), summary(options.log_summary_interval, options.now()) {}
    DispatcherOptions options;
    DispatcherStats stats;
    EventSummary summary;
    OpTracker tracker;
  };

  void CreateGroup(Handler& h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void OnGroupReady(Handler& h, absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Fail(Handler& h, const Entry& entry, FailKind kind, std::string error,
            std::string error_code, std::optional<absl::Duration> delay)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void DetachSession(Session& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void MaybeRemoveHandler(Handler& h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Tick() ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void TickHandler(Handler& h, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void CheckDrained() ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  State state_ ABSL_GUARDED_BY(kLoopThread);
  EngineContext ctx_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(kLoopThread);
  HandlerTable handlers_ ABSL_GUARDED_BY(kLoopThread);
  DirtySessions dirty_ ABSL_GUARDED_BY(kLoopThread);
  std::unique_ptr<Parts> parts_ ABSL_GUARDED_BY(kLoopThread);
  std::unique_ptr<EventLoop::Timer> tick_timer_;
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DISPATCHER_H_
