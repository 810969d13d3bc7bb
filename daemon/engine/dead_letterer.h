// DeadLetterer: moves entries into a handler's dead-letter stream (R-D5,
// R-D6) with dead_letter.lua, which appends and acknowledges in one step
// while the entry is still pending where the caller believes (so racing
// daemons neither lose nor duplicate). An entry being dead-lettered is held
// (sweeps skip it) until it has left; a move held by a full DLQ (overflow
// hold) or failed is tried again later by RetryDue.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_DEAD_LETTERER_H_
#define REDRIVE_DAEMON_ENGINE_DEAD_LETTERER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "daemon/engine/context.h"
#include "daemon/retry_fields.h"
#include "daemon/stream_entry.h"

namespace redrive {

class DeadLetterer {
 public:
  enum class Outcome : uint8_t { kMoved, kGone, kHeld, kFailed };
  using Done = std::function<void(Outcome)>;

  explicit DeadLetterer(EngineContext& ctx) : ctx_(ctx) {}

  // Reads `entry` of handler `ref` again and dead-letters it (pending under
  // the handler's consumer). Until it has left it is held; a held or failed
  // move is tried again `held_retry` (held) or 10 × error_backoff later.
  void DeadLetterById(const HandlerRef& ref, const SpecPtr& spec, const Entry& entry,
                      FailureRecord failure, std::string reason, absl::Duration held_retry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Dead-letters an entry whose fields are at hand; `owner` = the consumer
  // it must be pending under ("" = any). `done` learns whether it moved.
  void DeadLetter(const SpecPtr& spec, uint8_t source, const StreamEntry& entry,
                  const absl::StatusOr<RetryState>& state, const FailureRecord& failure,
                  const std::string& reason, const std::string& owner, Done done = nullptr);
  // Tries again the moves of `ref` whose time has come.
  void RetryDue(const HandlerRef& ref, const SpecPtr& spec, absl::Time now,
                absl::Duration held_retry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // The handler is here: its moves are tracked (held, retried) from now on.
  void Add(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) {
    handlers_[ref.generation] = PerHandler{};
  }
  // Whether any handler's move waits to be tried again (RetryDue has work).
  bool retrying() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) { return waiting_ > 0; }
  // Ids of `source` being dead-lettered for handler `ref`.
  void AddHeld(const HandlerRef& ref, uint8_t source, absl::flat_hash_set<std::string>& held) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // The handler left: its pending moves are no longer retried.
  void Forget(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) {
    auto it = handlers_.find(ref.generation);
    if (it == handlers_.end()) return;
    waiting_ -= it->second.retries.size();
    handlers_.erase(it);
  }

 private:
  struct Retry {
    Entry entry;
    FailureRecord failure;
    std::string reason;
    absl::Time at;
  };
  struct PerHandler {
    absl::flat_hash_set<std::string> held;  // source:id
    std::vector<Retry> retries;
  };

  PerHandler* Find(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void OnRead(const HandlerRef& ref, const SpecPtr& spec, const Entry& entry,
              const FailureRecord& failure, const std::string& reason, absl::Duration held_retry,
              absl::StatusOr<std::optional<StreamEntry>> read)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // `traceparent`: the entry's (TraceparentOf), for the log lines.
  void OnDeadLettered(const SpecPtr& spec, uint8_t source, const std::string& id,
                      const std::string& reason, uint32_t attempts, const std::string& traceparent,
                      const Done& done, absl::StatusOr<DeadLetterResult> r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  EngineContext& ctx_;
  // By HandlerRef::generation (see Reader::handlers_).
  // Moves waiting to be tried again, over every handler: while none wait,
  // RetryDue costs no lookup (it runs for every handler on every tick).
  size_t waiting_ ABSL_GUARDED_BY(kLoopThread) = 0;
  absl::flat_hash_map<uint64_t, PerHandler> handlers_ ABSL_GUARDED_BY(kLoopThread);
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_DEAD_LETTERER_H_
