// EngineSession: one Subscribe stream as the delivery engine sees it — its
// registration, the deliveries it holds (LeaseTable), what waits to be
// written to it (Outbox) — and the verbs applied to it.
// SessionRing: the sessions of one handler, handed deliveries round robin.
// DirtySessions: the sessions whose outbox holds something; the dispatcher
// flushes them at the end of each turn, so one turn's deliveries and notices
// leave in as few messages as the budget allows.
//
// Loop thread only (the dispatcher owns them); SessionSink is thread-safe.
#ifndef REDRIVE_DAEMON_ENGINE_SESSION_H_
#define REDRIVE_DAEMON_ENGINE_SESSION_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "daemon/engine/context.h"
#include "daemon/engine/lease_table.h"
#include "daemon/engine/outbox.h"
#include "daemon/session_sink.h"
#include "daemon/subscription.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

// What one Verbs message settled, for the dispatcher to carry to Redis.
struct VerbOutcome {
  struct Failure {
    Entry entry;
    FailKind kind = FailKind::kNack;
    std::string error;
    std::string error_code;
    std::optional<absl::Duration> delay;  // NACK delay_ms; unset = the policy's backoff
  };
  std::vector<Entry> acked;
  std::vector<Failure> failed;           // NACKed and TERMINATEd
  std::vector<std::string> extended[2];  // by source: their idle time is to be reset
  size_t notices = 0;                    // added to the outbox
};

struct EngineSession {
  EngineSession(uint64_t session_id, std::shared_ptr<SessionSink> session_sink,
                SubscriptionSpec session_spec);

  // Slots for new deliveries: none before it is attached or once stopped.
  uint32_t free_slots() const;
  // Registered: the session takes deliveries; the client gets its reply.
  void Attach(const std::string& instance_id);
  // Completes `message` (the handler's names, the attempt, the lease
  // deadline), queues it in the outbox (serialized: the caller may reuse
  // `message`) and leases it until now + lease.
  void Deliver(uint64_t delivery_id, Entry entry, const SubscriptionSpec& handler_spec,
               v1::Delivery& message, absl::Time now);
  // Applies the client's verbs to the leases: ACK, NACK and TERMINATE settle
  // their delivery, EXTEND moves its deadline; verbs for deliveries not in
  // flight, or out of range, get a notice. Counts each verb in `stats`.
  VerbOutcome Apply(const v1::Verbs& verbs, absl::Time now, DispatcherStats& stats);
  // Settles the deliveries whose lease expired (R-D3) and returns them.
  std::vector<Entry> TakeExpired(absl::Time now, DispatcherStats& stats);
  // Ids in flight whose deadline outlives the handler's `lease` in Redis and
  // whose idle time there passed lease / 3; their idle_since becomes now.
  void TakeStale(absl::Time now, absl::Duration lease, std::vector<std::string> (&ids)[2]);
  // Ids of `source` in flight here (a sweep skips them).
  void AddHeld(uint8_t source, absl::flat_hash_set<std::string>& held) const;

  const uint64_t id;
  const std::shared_ptr<SessionSink> sink;
  const SubscriptionSpec spec;
  bool attached = false;  // registered and receiving
  bool stopped = false;   // the client takes no new deliveries
  bool dirty = false;     // listed in DirtySessions
  LeaseTable leases;
  Outbox outbox;
};

// A handler's sessions: those attached, and those registered before its
// group was ready.
template <typename S>
class SessionRing {
 public:
  std::vector<S*>& attached() { return attached_; }
  const std::vector<S*>& attached() const { return attached_; }
  std::vector<S*>& waiting() { return waiting_; }
  bool empty() const { return attached_.empty() && waiting_.empty(); }

  // The next attached session with a free slot, round robin; null when
  // `paused` (what arrives then waits, R-E5) or every session is full.
  S* Pick(bool paused) {
    if (paused) return nullptr;
    const size_t n = attached_.size();
    for (size_t i = 0; i < n; ++i) {
      S* s = attached_[(next_ + i) % n];
      if (s->free_slots() > 0) {
        next_ = (next_ + i + 1) % n;
        return s;
      }
    }
    return nullptr;
  }
  // Whether Pick would find a session (without moving the round robin).
  bool HasSlot(bool paused) const {
    return !paused && std::any_of(attached_.begin(), attached_.end(),
                                  [](const S* s) { return s->free_slots() > 0; });
  }
  uint64_t FreeSlots() const {
    uint64_t free = 0;
    for (const S* s : attached_) free += s->free_slots();
    return free;
  }
  // Whether a session here may still take deliveries (one not stopped).
  bool AnyTaking() const {
    return std::any_of(attached_.begin(), attached_.end(), [](const S* s) { return !s->stopped; });
  }
  void Remove(S* s) {
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s), waiting_.end());
    attached_.erase(std::remove(attached_.begin(), attached_.end(), s), attached_.end());
  }

 private:
  std::vector<S*> attached_;
  std::vector<S*> waiting_;
  size_t next_ = 0;
};

class DirtySessions {
 public:
  void Mark(EngineSession& s) {
    if (s.dirty) return;
    s.dirty = true;
    list_.push_back(&s);
  }
  // Before `s` is destroyed.
  void Remove(EngineSession& s);
  // Writes every listed outbox to its session's sink.
  void Flush();

 private:
  std::vector<EngineSession*> list_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_SESSION_H_
