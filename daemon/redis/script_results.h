// The results of the scripts of daemon/lua/, decoded in one place: each
// script's reply (its codes are stated at the top of its .lua file) becomes
// a named outcome, so no caller reads a magic number. Every decoder takes a
// reply that is not a Redis error (the caller handles transport and script
// errors) and returns INTERNAL for a reply of another shape.
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_REDIS_SCRIPT_RESULTS_H_
#define REDRIVE_DAEMON_REDIS_SCRIPT_RESULTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/redis/reply.h"

namespace redrive {

// schedule_retry.lua
struct ScheduleRetryResult {
  enum class Kind {
    kScheduled,  // due at `due` on Redis's clock
    kNotOwner,   // not pending under the owner: nothing changed
  };
  Kind kind = Kind::kNotOwner;
  absl::Time due;
};
absl::StatusOr<ScheduleRetryResult> DecodeScheduleRetry(const RedisReply& reply);

// move_due.lua
struct MoveDueResult {
  enum class Kind {
    kMoved,       // appended to the retry stream as `retry_id`
    kGone,        // the member left the due zset (another daemon moved it)
    kNotDue,      // not due yet on Redis's clock: nothing changed
    kNotPending,  // settled or taken back: the member was dropped
  };
  Kind kind = Kind::kGone;
  std::string retry_id;
};
absl::StatusOr<MoveDueResult> DecodeMoveDue(const RedisReply& reply);

// dead_letter.lua
struct DeadLetterResult {
  enum class Kind {
    kDeadLettered,  // appended to the DLQ as `dlq_id`, `evicted` oldest trimmed
    kNotPending,    // not pending (under the owner): nothing changed
    kHeld,          // the DLQ is at its cap with overflow hold: nothing changed
  };
  Kind kind = Kind::kNotPending;
  std::string dlq_id;
  int64_t evicted = 0;
};
absl::StatusOr<DeadLetterResult> DecodeDeadLetter(const RedisReply& reply);

// purge.lua
struct PurgeResult {
  enum class Kind {
    kPurged,         // `count` dead letters deleted
    kCountMismatch,  // the DLQ holds `count`, not the expected: nothing changed
  };
  Kind kind = Kind::kPurged;
  int64_t count = 0;
};
absl::StatusOr<PurgeResult> DecodePurge(const RedisReply& reply);

// redrive_step.lua
struct RedriveStepResult {
  enum class Kind {
    kStepped,          // processed: moved / skipped / failed
    kNotOwner,         // not RUNNING, or another owner (cancelled or taken over)
    kCursorMoved,      // the job's cursor is elsewhere
    kTargetNotStream,  // the target key holds another type: nothing changed
    kAlreadyDone,      // step-record form: this cursor's step ran (from/to and counts)
  };
  Kind kind = Kind::kStepped;
  int64_t from = 0;  // kAlreadyDone only
  int64_t to = 0;    // kAlreadyDone only
  int64_t moved = 0;
  int64_t skipped = 0;
  int64_t failed = 0;
};
absl::StatusOr<RedriveStepResult> DecodeRedriveStep(const RedisReply& reply);

// job_transition.lua
enum class JobTransitionResult {
  kDone,           // the transition happened
  kNotApplicable,  // not the running owner, already ended, heartbeat fresh
  kNoSuchJob,
  kCursorMoved,  // advance: the job's cursor is elsewhere
};
absl::StatusOr<JobTransitionResult> DecodeJobTransition(const RedisReply& reply);

// legacy_move.lua
struct LegacyMoveResult {
  enum class Kind {
    kMoved,    // appended to the handler's retry stream as `new_id`
    kNotDone,  // no longer pending / the group moved: nothing changed
  };
  Kind kind = Kind::kNotDone;
  std::string new_id;
};
absl::StatusOr<LegacyMoveResult> DecodeLegacyMove(const RedisReply& reply);

// delete_handler.lua
struct DeleteHandlerResult {
  enum class Kind {
    kDeleted,
    kEntriesRemain,  // retry entries or dead letters and no force: nothing changed
    kCountMismatch,  // force with other counts: nothing changed
  };
  Kind kind = Kind::kDeleted;
  int64_t retry_entries = 0;
  int64_t dead_letters = 0;
  bool group_destroyed = false;           // kDeleted only
  bool retry_group_existed = false;       // kDeleted only
  std::vector<std::string> deleted_keys;  // kDeleted only
};
absl::StatusOr<DeleteHandlerResult> DecodeDeleteHandler(const RedisReply& reply);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_SCRIPT_RESULTS_H_
