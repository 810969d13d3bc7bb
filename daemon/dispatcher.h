// Dispatcher: the delivery engine behind Subscribe (R-B3..R-B9, R-C1,
// R-D1..R-D9). See docs/retries-design.md.
//
// It owns, per handler (channel, handler id) on this daemon, two sources —
// the main stream (group = handler id) and the handler's retry stream
// (group `{handler}-retry`) — the connected sessions (Subscribe streams),
// the deliveries in flight and the XACK batches. Reads are non-blocking
// XREADGROUPs issued only when (a) the StreamNotifier reported entries or a
// read came back full, and (b) the handler's sessions have free in-flight
// slots; each read asks for at most the free slots (R-B5), split between
// the two sources when both have entries, so neither starves the other.
//
// Consumers are per daemon instance (`{handler}-{instance}`, or
// `{handler}-{label}-{instance}` with the first registration's
// consumer_label); sessions of a handler share it.
//
// Verbs: ACK → batched XACK. NACK, lease expiry and a disconnect (R-B7) are
// failed attempts: unless the policy is exhausted, one script hands the
// entry to the consumer `{handler}:scheduled` and adds it to the due zset
// `{channel}.{handler}.retry.due` (due at now + backoff, the NACK's delay,
// or now for a disconnect). A mover (every tick, when something is due)
// rewrites due entries into the retry stream with EggAI's metadata, acking
// the source in the same script. Exhausted, TERMINATE and poison go to the
// DLQ in one script. Every script checks that the entry is still pending
// where the caller believes, so daemons racing or crashing neither lose nor
// duplicate. EXTEND → new deadline and XCLAIM JUSTID to reset the idle time.
//
// Sweeps (one per handler and source per max(lease, min_sweep), sooner
// after a failed read) find entries idle past the lease under any consumer
// but `:scheduled` (dead daemons, lost replies), claim them and fail them
// as expired leases; consumers with nothing pending and idle for long are
// removed (R-D9).
//
// Thread model: every method runs on the EventLoop thread (Post to it).
// Sessions are reached through SessionSink, which is thread-safe.
#ifndef REDRIVE_DAEMON_DISPATCHER_H_
#define REDRIVE_DAEMON_DISPATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/redis/hiredis_async.h"
#include "daemon/event_loop.h"
#include "daemon/event_summary.h"
#include "daemon/keys.h"
#include "daemon/retry_fields.h"
#include "daemon/stream_entry.h"
#include "daemon/stream_notifier.h"
#include "daemon/subscription.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

// The dispatcher's view of one Subscribe stream. Thread-safe, never blocks.
class SessionSink {
 public:
  virtual ~SessionSink() = default;
  // Queues a message for the client.
  virtual void Send(v1::SubscribeResponse response) = 0;
  // Ends the stream with `status` once queued messages are written.
  virtual void Finish(absl::Status status) = 0;
};

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
  // Approximate byte budget of one Deliveries message, so stock clients'
  // default 4 MiB receive limit holds (a single larger delivery still goes
  // alone).
  size_t max_message_bytes = 3u << 20;
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
};

// Counters, for tests and metrics.
struct DispatcherStats {
  uint64_t deliveries = 0;
  uint64_t redeliveries = 0;  // to another session after a disconnect
  uint64_t acks = 0;
  uint64_t nacks = 0;
  uint64_t extends = 0;
  uint64_t terminates = 0;
  uint64_t lease_expiries = 0;
  uint64_t reclaimed = 0;  // orphaned entries claimed by a sweep
  uint64_t released = 0;   // handed back to Redis for any reclaimer
  uint64_t retries_scheduled = 0;
  uint64_t retries_moved = 0;
  uint64_t dead_letters = 0;
  uint64_t poison = 0;
  uint64_t dlq_evictions = 0;
  uint64_t dlq_held = 0;
  uint64_t sweeps = 0;
  uint64_t consumers_removed = 0;
  uint64_t disconnect_failures = 0;
  uint64_t returned = 0;  // read but never delivered (or drained), handed back
  uint64_t drain_released = 0;  // unsettled at the end of a drain, handed back
  uint64_t notices = 0;
  uint64_t reads = 0;
  uint64_t redis_errors = 0;
  uint64_t groups_recreated = 0;
  uint64_t decode_errors = 0;
  uint64_t retry_trims = 0;    // trim scripts run
  uint64_t retry_trimmed = 0;  // retry-stream entries they removed
};

class Dispatcher {
 public:
  Dispatcher(EventLoop& loop, AsyncCommander& redis, StreamNotifier& notifier,
             DispatcherOptions options);
  ~Dispatcher();

  // Registers a session. The group is created if missing; then `sink` gets
  // Registered and deliveries, or Finish with FAILED_PRECONDITION (the
  // handler is registered here with another auto_ack, retry or dead-letter
  // policy, see CheckSamePolicy; the key is not a stream) or UNAVAILABLE
  // (Redis). Sessions of a handler share its consumer, named with the first
  // registration's consumer_label; each Registered reply names it.
  void Register(uint64_t session_id, SubscriptionSpec spec, std::shared_ptr<SessionSink> sink);
  // Applies the client's verbs; notices for unknown or settled ids.
  void Verbs(uint64_t session_id, const v1::Verbs& verbs);
  // The client takes no new deliveries.
  void Stop(uint64_t session_id);
  // The stream ended: its deliveries go to other sessions or back to Redis.
  void Disconnect(uint64_t session_id);
  // From the notifier: `stream` received entries.
  void OnStreamActivity(const std::string& stream);
  // Graceful drain: tells every session, stops deliveries, waits for
  // settlements up to `grace`, then hands what is still unsettled (and what
  // was read but never delivered) back through the retry path WITHOUT
  // counting an attempt (see Return: the next owner delivers it with the
  // same attempt number), finishes every session with UNAVAILABLE and
  // flushes acknowledgements; then runs `done`.
  void Drain(absl::Duration grace, std::function<void()> done);

  // Pause (R-E5): a paused handler gets no new deliveries (nothing is read
  // or handed out; entries waiting here stay ours and keep being touched);
  // deliveries in flight keep their leases and may still be settled. Also
  // applies to a handler registered later. Other daemons learn it from
  // {redrive}:paused, polled every `pause_poll`.
  void SetPaused(const std::string& channel, const std::string& handler_id, bool paused);

  // What the Admin service reports of a handler on this daemon.
  struct HandlerSnapshot {
    std::string channel;
    std::string handler_id;
    uint32_t sessions = 0;
    uint64_t in_flight = 0;
    std::string consumer;  // this daemon's consumer in the handler's groups
    bool paused = false;
  };
  std::vector<HandlerSnapshot> Snapshot() const;

  const DispatcherStats& stats() const { return stats_; }
  // In-flight deliveries of a session (tests).
  size_t InFlight(uint64_t session_id) const;
  size_t handlers() const { return handlers_.size(); }

 private:
  struct Handler;
  struct Session;
  enum class Outcome : uint8_t { kAcked, kNacked, kTerminated, kExpired, kMoved };
  enum SourceIndex : uint8_t { kMain = 0, kRetry = 1 };

  // An entry this daemon holds: in flight, or waiting for a slot. The
  // payload is not kept; a redelivery fetches it again (XCLAIM).
  struct Entry {
    std::string id;
    uint32_t attempt = 1;
    uint8_t source = kMain;
  };

  struct Flight {
    Entry entry;
    absl::Time deadline;
    absl::Time idle_since;  // when Redis last reset its idle time
  };

  struct Session {
    uint64_t id = 0;
    std::shared_ptr<SessionSink> sink;
    SubscriptionSpec spec;
    Handler* handler = nullptr;
    bool attached = false;  // registered and receiving
    bool stopped = false;
    absl::flat_hash_map<uint64_t, Flight> in_flight;
    // Recently settled delivery ids (bounded), for idempotent verbs.
    absl::flat_hash_map<uint64_t, Outcome> settled;
    std::deque<uint64_t> settled_order;
    v1::SubscribeResponse out_deliveries;
    size_t out_bytes = 0;  // approximate size of out_deliveries
    std::vector<v1::SubscribeResponse> out_full;  // batches that reached the budget
    v1::SubscribeResponse out_notices;
    bool dirty = false;

    uint32_t free_slots() const;
  };

  // The Redis names an entry operation needs, copied so that a reply can
  // still act after its handler is gone.
  struct Target {
    std::string stream;
    std::string group;
    std::string consumer;
  };

  // A handler incarnation: replies to commands of a removed handler must not
  // act on a later handler with the same key.
  struct HandlerRef {
    std::string key;
    uint64_t generation = 0;
  };

  // Read state of one stream of a handler.
  struct Source {
    std::string stream;
    std::string group;
    bool watched = false;  // notifier_.Watch was called (Unwatch on removal)
    bool ready = false;
    bool more = true;
    uint64_t activity = 0;  // bumps on every notification
    bool reading = false;
    absl::Time retry_after = absl::InfinitePast();
    // The newest id XREADGROUP returned: a lost group is recreated there.
    std::string last_read_id;
    bool sweeping = false;
    absl::Time next_sweep = absl::InfinitePast();
    uint32_t sweep_count = 0;
    // Retry source only: entries were settled (acked, failed, moved) since
    // the last trim, so the next sweep trims; one trim in flight at a time.
    bool trim_wanted = true;
    bool trimming = false;
  };

  enum class DeadOutcome : uint8_t { kMoved, kGone, kHeld, kFailed };
  struct DeadRetry {
    Entry entry;
    FailureRecord failure;
    std::string reason;
    absl::Time at;
  };

  struct Handler {
    std::string key;
    uint64_t generation = 0;
    SubscriptionSpec spec;  // of the first registration
    // The same, shared with Redis callbacks that outlive the handler.
    std::shared_ptr<const SubscriptionSpec> names;
    std::string scheduled_consumer;
    bool ready = false;
    bool auto_ack = false;
    bool paused = false;  // R-E5: no reads, nothing handed out
    // Its presence heartbeat was written (removed with the handler).
    bool present = false;
    Source sources[2];
    bool prefer_retry = false;  // which source a one-slot read serves next
    std::vector<Session*> sessions;  // attached
    std::vector<Session*> waiting;   // registered before the group was ready
    size_t round_robin = 0;
    // Entries read but not deliverable yet (ids only; fetched again).
    std::deque<Entry> backlog;
    // Backlog entries being fetched for delivery (XCLAIM in flight).
    absl::flat_hash_set<std::string> fetching;
    absl::Time backlog_touch_at = absl::InfinitePast();
    // In-flight entries whose deadline (a longer session lease, EXTEND)
    // outlives the handler's lease in Redis are touched every lease / 3.
    absl::Time in_flight_touch_at = absl::InfinitePast();
    // Auto-ack entries read but not yet delivered (they are not pending in
    // Redis, so they cannot be fetched again: the whole entry is kept).
    std::deque<StreamEntry> auto_backlog;
    uint32_t reserved = 0;  // slots promised to reads in flight
    // Entries being dead-lettered (source:id): sweeps leave them alone.
    absl::flat_hash_set<std::string> dead_lettering;
    // Dead-letter moves to try again (held by the DLQ cap, or failed).
    std::vector<DeadRetry> dead_retry;
    // The due-retry mover: runs when now >= next_due.
    bool moving = false;
    absl::Time next_due = absl::InfinitePast();
  };

  // Failure kinds that decide the dead-letter reason and the delay.
  enum class FailKind : uint8_t { kNack, kExpired, kDisconnected, kTerminated };

  void CreateGroup(Handler& h);
  void ApplyPaused(Handler& h, bool paused);
  void PollPaused();
  // Renews the presence heartbeat of every handler with streams here.
  void BeatPresence();
  void OnGroupReady(Handler& h, absl::Status status);
  void WatchRetrySource(Handler& h);
  void Attach(Handler& h, Session& s);
  uint32_t Capacity(const Handler& h) const;
  void Pump(Handler& h);
  void MaybeRead(Handler& h);
  void Read(Handler& h, uint8_t source, uint32_t count);
  void OnRead(const HandlerRef& key, uint8_t source,
              const std::shared_ptr<const SubscriptionSpec>& spec, uint32_t asked,
              uint64_t activity, absl::StatusOr<RedisReply> reply);
  void RecreateGroup(Handler& h, uint8_t source);
  void Deliver(Handler& h, Session& s, Entry entry, v1::Delivery&& message);
  // Delivers freshly read or fetched entries of `source` to sessions with
  // free slots; what finds no slot goes to the backlog (ids only); poison
  // goes to the DLQ.
  void DeliverEntries(Handler& h, uint8_t source, std::vector<StreamEntry>&& entries);
  // Decodes `e` for delivery. Poison (DataLoss) when its envelope or retry
  // metadata is unusable.
  absl::StatusOr<v1::Delivery> Prepare(Handler& h, const StreamEntry& e, uint32_t* attempt);
  void OnFetched(const HandlerRef& key, uint8_t source,
                 const std::shared_ptr<const SubscriptionSpec>& spec, std::vector<Entry> asked,
                 absl::StatusOr<RedisReply> reply);
  // Entry ids of `source` this daemon holds for `h` (in flight or waiting).
  absl::flat_hash_set<std::string> HeldIds(const Handler& h, uint8_t source) const;
  Session* PickSession(Handler& h);
  void Settle(Session& s, uint64_t delivery_id, Outcome outcome);
  void Notice(Session& s, uint64_t delivery_id, v1::Notice::Code code, std::string message);
  void QueueAck(Handler& h, uint8_t source, const std::string& id);
  void FlushAcks();
  static Target TargetOf(const Handler& h, uint8_t source);
  // Resets the idle time of `ids` (still ours), or with `release` sets it
  // past every lease so any daemon's reclaimer takes them next.
  void Touch(const Handler& h, uint8_t source, const std::vector<std::string>& ids, bool release);
  void Touch(const Target& t, const std::vector<std::string>& ids, bool release);
  void Tick();
  absl::Duration SweepPeriod(const Handler& h) const;
  void DetachSession(Session& s);
  void MaybeRemoveHandler(Handler& h);
  void FlushOut();
  void CheckDrained();
  Handler* FindHandler(const std::string& key);
  Handler* FindHandler(const HandlerRef& ref);
  // Wraps a Redis callback so it does nothing once the dispatcher is gone.
  AsyncCallback Guard(std::function<void(absl::StatusOr<RedisReply>)> fn);

  // ---- retries and dead letters (dispatcher_retry.cc)
  // A failed attempt of `entry`, held by this daemon's consumer: schedules
  // the retry (after `delay`, or the policy's backoff when unset) or, when
  // the policy is exhausted or `kind` is kTerminated, dead-letters it.
  void Fail(Handler& h, const Entry& entry, FailKind kind, std::string error,
            std::string error_code, std::optional<absl::Duration> delay);
  // Schedules `id` of `source` (pending under this daemon's consumer) for a
  // move into the retry stream after `delay`.
  void Schedule(const std::shared_ptr<const SubscriptionSpec>& spec, const HandlerRef& key,
                uint8_t source, const std::string& id, FailureRecord failure,
                absl::Duration delay);
  // Hands entries back through the retry path at once, without counting a
  // failed attempt: read but never delivered (their stream left), or still
  // unsettled when a drain's grace ended.
  void Return(const std::shared_ptr<const SubscriptionSpec>& spec, const HandlerRef& key,
              uint8_t source, const std::vector<std::string>& ids);
  // Dead-letter moves that were held by a DLQ cap or failed, tried again.
  void RetryDeadLetters(Handler& h);
  static std::string DeadKey(uint8_t source, const std::string& id) {
    return absl::StrCat(source, ":", id);
  }
  // Reads the entry again, then dead-letters it.
  void DeadLetterById(Handler& h, const Entry& entry, FailureRecord failure, std::string reason);
  // Dead-letters an entry whose fields are at hand; `owner` = the consumer
  // it must be pending under ("" = any). `done` learns whether it moved.
  void DeadLetter(const std::shared_ptr<const SubscriptionSpec>& spec, uint8_t source,
                  const StreamEntry& entry, const absl::StatusOr<RetryState>& state,
                  const FailureRecord& failure, const std::string& reason,
                  const std::string& owner, std::function<void(DeadOutcome)> done = nullptr);
  void MoveDue(Handler& h);
  // The due members of `h` (something is due): moves up to move_batch.
  void MoveDueBatch(Handler& h, absl::Time now);
  void MoveOne(const HandlerRef& key, const std::shared_ptr<const SubscriptionSpec>& spec,
               const DueMember& member, const std::string& raw_member,
               std::function<void()> done);
  void Sweep(Handler& h, uint8_t source);
  // Trims acknowledged entries off the retry stream (TrimRetryScript) when
  // trim_wanted; called from the retry stream's sweep.
  void TrimRetry(Handler& h);
  void SweepConsumer(const HandlerRef& key, uint8_t source, const std::string& consumer,
                     std::function<void()> done);
  void OnSwept(const HandlerRef& key, uint8_t source, const Target& target,
               const std::string& consumer, absl::StatusOr<RedisReply> reply);
  void RemoveIdleConsumers(const HandlerRef& key, uint8_t source);
  FailureRecord MakeFailure(const Handler& h, uint32_t attempt, FailKind kind,
                            std::string error, std::string error_code) const;
  // Counts retry operations in progress (a drain waits for them).
  void BeginOp() { ++ops_in_progress_; }
  void EndOp();

  EventLoop& loop_;
  AsyncCommander& redis_;
  StreamNotifier& notifier_;
  const DispatcherOptions options_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Session>> sessions_;
  absl::flat_hash_map<std::string, std::unique_ptr<Handler>> handlers_;
  // stream → handler keys reading it
  absl::flat_hash_map<std::string, std::vector<std::string>> by_stream_;
  uint64_t next_delivery_id_ = 0;
  uint64_t next_generation_ = 0;
  // Pending XACK ids per (stream, group).
  absl::flat_hash_map<std::pair<std::string, std::string>, std::vector<std::string>> acks_;
  size_t acks_queued_ = 0;
  std::unique_ptr<EventLoop::Timer> ack_timer_;
  bool ack_timer_armed_ = false;
  std::unique_ptr<EventLoop::Timer> tick_timer_;
  std::vector<Session*> dirty_;
  DispatcherStats stats_;
  EventSummary summary_;
  // Handler keys paused (R-E5), as last read from Redis or set here.
  absl::flat_hash_set<std::string> paused_;
  absl::Time next_pause_poll_ = absl::InfinitePast();
  absl::Time next_presence_ = absl::InfinitePast();
  bool polling_paused_ = false;
  // Bumped by SetPaused: a poll sent before it may carry the old state.
  uint64_t pause_epoch_ = 0;
  // Drain state.
  bool draining_ = false;
  absl::Time drain_deadline_ = absl::InfiniteFuture();
  std::function<void()> drain_done_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  size_t ops_in_progress_ = 0;
  std::function<double()> unit_random_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DISPATCHER_H_
