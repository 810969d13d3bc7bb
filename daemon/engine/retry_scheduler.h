// RetryScheduler: failed attempts (R-B7, R-D1..R-D4). A failure either
// schedules a retry — schedule_retry.lua hands the entry to the consumer
// `{handler}:scheduled` and adds it to the due zset at now + backoff (or the
// NACK's delay) on Redis's clock — or, when the policy is exhausted or the
// verb was TERMINATE, goes to the DeadLetterer. The due mover (MoveDue, run
// by the dispatcher's tick when something may be due) rewrites due entries
// into the retry stream with EggAI's metadata (move_due.lua, which acks the
// source in the same step); poison found on the way is dead-lettered. Return
// hands entries back through the same path without counting an attempt.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_RETRY_SCHEDULER_H_
#define REDRIVE_DAEMON_ENGINE_RETRY_SCHEDULER_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "daemon/engine/context.h"
#include "daemon/engine/dead_letterer.h"
#include "daemon/retry_fields.h"

namespace redrive {

class RetryScheduler {
 public:
  struct Hooks {
    // Scheduling failed: the entry is still pending under our consumer; the
    // source should be swept within a lease.
    std::function<void(const HandlerRef&, uint8_t source)> schedule_failed;
    // An entry of `source` was moved into the retry stream.
    std::function<void(const HandlerRef&, uint8_t source)> moved;
    std::function<bool()> draining;
  };

  RetryScheduler(EngineContext& ctx, DeadLetterer& dead_letters, Hooks hooks);

  // The handler is here: the mover looks for due retries at once.
  void Add(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Forget(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) {
    movers_.erase(ref.generation);
  }

  // The failure record of attempt `attempt` of a handler's entry.
  FailureRecord MakeFailure(const SubscriptionSpec& spec, uint32_t attempt, FailKind kind,
                            std::string error, std::string error_code) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // A failed attempt of `entry`, pending under the handler's consumer:
  // schedules the retry (after `delay`, or the policy's backoff when unset)
  // or dead-letters it. `held_retry`: see DeadLetterer::DeadLetterById.
  void Fail(const HandlerRef& ref, const SpecPtr& spec, const Entry& entry, FailKind kind,
            std::string error, std::string error_code, std::optional<absl::Duration> delay,
            absl::Duration held_retry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Poison (R-D6): an entry of `source` whose fields cannot be decoded
  // (`why`) goes straight to the DLQ with its raw bytes, never delivered and
  // never in the way of the entries behind it. `kind`: how it was found (a
  // read: kNack; a sweep of an idle entry: kExpired).
  void Poison(const SpecPtr& spec, uint8_t source, const StreamEntry& entry,
              const absl::Status& why, FailKind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Entries of `source` a sweep claimed from `consumer`, idle past their
  // lease: each is a failed attempt (LEASE_EXPIRED) or poison. Returns the
  // ids of those deleted while pending (to be acknowledged).
  std::vector<std::string> Reclaimed(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                                     const std::string& consumer, std::vector<StreamEntry> entries,
                                     absl::Duration held_retry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Hands entries back at once without counting a failed attempt.
  void Return(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
              const std::vector<std::string>& ids) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // The same for entries of either source (one hand-back per source).
  void Return(const HandlerRef& ref, const SpecPtr& spec, const std::vector<Entry>& entries)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Runs the due mover of `ref` if something may be due at `now`.
  void MaybeMove(const HandlerRef& ref, const SpecPtr& spec, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

 private:
  struct Mover {
    bool moving = false;
    absl::Time next_due = absl::InfinitePast();
  };

  Mover* Find(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Schedule(const HandlerRef& ref, const SpecPtr& spec, uint8_t source, const std::string& id,
                FailureRecord failure, absl::Duration delay)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void MoveDue(const HandlerRef& ref, const SpecPtr& spec)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void MoveBatch(const HandlerRef& ref, const SpecPtr& spec, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void MoveOne(const HandlerRef& ref, const SpecPtr& spec, const DueMember& member,
               const std::string& raw, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void MoveFields(const HandlerRef& ref, const SpecPtr& spec, const DueMember& member,
                  const std::string& raw, const StreamEntry& entry, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // next_due = min(next_due, at) of `ref`, if it is still here.
  void LookAgainBy(const HandlerRef& ref, absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  EngineContext& ctx_;
  DeadLetterer& dead_letters_;
  const Hooks hooks_;
  std::function<double()> unit_random_ ABSL_GUARDED_BY(kLoopThread);
  // By HandlerRef::generation (see Reader::handlers_).
  absl::flat_hash_map<uint64_t, Mover> movers_ ABSL_GUARDED_BY(kLoopThread);
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_RETRY_SCHEDULER_H_
