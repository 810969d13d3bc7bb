// Dispatcher: the delivery engine behind Subscribe (R-B3..R-B9, R-C1).
//
// It owns, per handler (channel, handler id) on this daemon, the consumer
// group read position, the connected sessions (Subscribe streams), the
// deliveries in flight and the XACK batches. Reads are non-blocking
// XREADGROUPs issued only when (a) the StreamNotifier reported entries or a
// read came back full, and (b) the handler's sessions have free in-flight
// slots; each read asks for at most the free slots, so nothing is read
// ahead of what can be delivered (R-B5). Everything read is handed to a
// session in the same loop turn; the only entries that wait inside the
// daemon are those of a disconnected session while every other session is
// full, and their idle time is reset every tick so no other daemon's
// reclaimer takes them while they wait.
//
// Consumers are per daemon instance (`{handler}-{instance}`); sessions of a
// handler share it, so a disconnected session's deliveries move to another
// session at once without changing Redis ownership (R-B7): their ids wait in
// the backlog and are fetched again (XCLAIM, which also resets the idle
// time) when a slot is free. With no other
// session here, they are released: their idle time is set past any lease so
// any daemon's reclaimer takes them on its next tick.
//
// Verbs: ACK → batched XACK (flushed by size or a short timer). NACK → the
// entry stays pending and is reclaimed after the lease (backoff arrives with
// the retry issue). EXTEND → new deadline and XCLAIM JUSTID to reset the
// idle time in Redis. TERMINATE → acknowledged and counted (the retry issue
// routes it to the DLQ). Lease expiry → the delivery is dropped and the entry
// reclaimed like a NACK. The reclaimer (XAUTOCLAIM with min-idle = lease,
// COUNT = free slots) looks at a handler on the first tick after something
// of its became due here (NACK, expiry, release), and otherwise once per
// lease (at least 5 s) for entries orphaned by dead daemons.
//
// Thread model: every method runs on the EventLoop thread (Post to it).
// Sessions are reached through SessionSink, which is thread-safe.
#ifndef REDRIVE_DAEMON_DISPATCHER_H_
#define REDRIVE_DAEMON_DISPATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/async_redis.h"
#include "daemon/event_loop.h"
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
  std::function<absl::Time()> now = [] { return absl::Now(); };
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
  uint64_t reclaimed = 0;
  uint64_t released = 0;  // handed back to Redis for any reclaimer
  uint64_t notices = 0;
  uint64_t reads = 0;
  uint64_t redis_errors = 0;
  uint64_t groups_recreated = 0;
  uint64_t decode_errors = 0;
};

class Dispatcher {
 public:
  Dispatcher(EventLoop& loop, AsyncCommander& redis, StreamNotifier& notifier,
             DispatcherOptions options);
  ~Dispatcher();

  // Registers a session. The group is created if missing; then `sink` gets
  // Registered and deliveries, or Finish with FAILED_PRECONDITION (another
  // registration of the handler here differs in auto_ack; the key is not a
  // stream) or UNAVAILABLE (Redis).
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
  // settlements up to `grace`, releases the rest, finishes every session with
  // UNAVAILABLE and flushes acknowledgements; then runs `done`.
  void Drain(absl::Duration grace, std::function<void()> done);

  const DispatcherStats& stats() const { return stats_; }
  // In-flight deliveries of a session (tests).
  size_t InFlight(uint64_t session_id) const;
  size_t handlers() const { return handlers_.size(); }

 private:
  struct Handler;
  struct Session;
  struct Entry;
  enum class Outcome : uint8_t { kAcked, kNacked, kTerminated, kExpired, kMoved };

  // An entry this daemon holds: in flight, or waiting for a slot. The
  // payload is not kept; a redelivery fetches it again (XCLAIM).
  struct Entry {
    std::string id;
    uint32_t attempt = 1;
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

  struct Handler {
    std::string key;
    uint64_t generation = 0;
    SubscriptionSpec spec;  // of the first registration
    bool ready = false;
    bool watched = false;  // notifier_.Watch was called (Unwatch on removal)
    bool auto_ack = false;
    std::vector<Session*> sessions;  // attached
    std::vector<Session*> waiting;   // registered before the group was ready
    size_t round_robin = 0;
    // Entries of disconnected sessions waiting for a slot (ids only).
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
    // The newest id XREADGROUP returned: a lost group is recreated there.
    std::string last_read_id;
    // Read state of the main stream.
    bool more = true;
    uint64_t activity = 0;  // bumps on every notification
    bool reading = false;
    uint32_t reserved = 0;  // slots promised to the read in flight
    absl::Time retry_after = absl::InfinitePast();
    bool claiming = false;
    std::string claim_cursor = "0-0";
    // When the reclaimer next looks at this handler: soon after a NACK, an
    // expiry or a release; otherwise one sweep per lease (orphans of dead
    // daemons), so idle handlers cost next to nothing.
    absl::Time next_reclaim = absl::InfinitePast();
    // Earliest time something this daemon settled without an ACK (NACK,
    // expiry) becomes reclaimable; the scan then restarts from the top.
    absl::Time due_at = absl::InfiniteFuture();
  };

  void CreateGroup(Handler& h);
  void OnGroupReady(Handler& h, absl::Status status);
  void Attach(Handler& h, Session& s);
  uint32_t Capacity(const Handler& h) const;
  void Pump(Handler& h);
  void MaybeRead(Handler& h);
  void OnRead(const HandlerRef& key, const Target& target, uint32_t asked, uint64_t activity,
              absl::StatusOr<RedisReply> reply);
  void Deliver(Handler& h, Session& s, Entry entry, v1::Delivery&& message);
  // Delivers freshly read or fetched entries to sessions with free slots;
  // what finds no slot goes to the backlog (ids only).
  void DeliverEntries(Handler& h, std::vector<StreamEntry>&& entries,
                      const absl::flat_hash_map<std::string, uint32_t>& attempts);
  void OnFetched(const HandlerRef& key, const Target& target, std::vector<Entry> asked,
                 absl::StatusOr<RedisReply> reply);
  // Entry ids this daemon holds for `h` (in flight or in the backlog).
  absl::flat_hash_set<std::string> HeldIds(const Handler& h) const;
  Session* PickSession(Handler& h);
  void Settle(Session& s, uint64_t delivery_id, Outcome outcome);
  void Notice(Session& s, uint64_t delivery_id, v1::Notice::Code code, std::string message);
  void QueueAck(const Handler& h, const std::string& id);
  void FlushAcks();
  static Target TargetOf(const Handler& h);
  // Resets the idle time of `ids` (still ours), or with `release` sets it
  // past every lease so any daemon's reclaimer takes them next.
  void Touch(const Handler& h, const std::vector<std::string>& ids, bool release);
  void Touch(const Target& t, const std::vector<std::string>& ids, bool release);
  void Tick();
  void Reclaim(Handler& h);
  void OnReclaimed(const HandlerRef& key, const Target& target, uint32_t reserved,
                   absl::StatusOr<RedisReply> reply);
  void DeliverReclaimed(const HandlerRef& key, const Target& target, uint32_t reserved,
                        std::vector<StreamEntry> entries,
                        absl::flat_hash_map<std::string, uint32_t> counts);
  absl::Duration SweepPeriod(const Handler& h) const;
  void DetachSession(Session& s);
  void MaybeRemoveHandler(Handler& h);
  void FlushOut();
  void CheckDrained();
  v1::Delivery Decode(const StreamEntry& e);
  Handler* FindHandler(const std::string& key);
  Handler* FindHandler(const HandlerRef& ref);
  // Wraps a Redis callback so it does nothing once the dispatcher is gone.
  AsyncCallback Guard(std::function<void(absl::StatusOr<RedisReply>)> fn);

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
  // Drain state.
  bool draining_ = false;
  absl::Time drain_deadline_ = absl::InfiniteFuture();
  std::function<void()> drain_done_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DISPATCHER_H_
