#include "daemon/redis/script_results.h"

#include "absl/strings/str_cat.h"

namespace redrive {
namespace {

absl::Status Unexpected(const char* script, const RedisReply& reply) {
  return absl::InternalError(
      absl::StrCat("unexpected reply of script ", script, ": ", reply.DebugString()));
}

// True when `reply` is an array of at least `n` elements whose first `n` are
// integers.
bool IntegerArray(const RedisReply& reply, size_t n) {
  if (!reply.is_array() || reply.elements.size() < n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!reply.elements[i].is_integer()) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ScheduleRetryResult> DecodeScheduleRetry(const RedisReply& reply) {
  if (!reply.is_integer() || reply.integer < 0) return Unexpected("schedule_retry", reply);
  ScheduleRetryResult out;
  if (reply.integer > 0) {
    out.kind = ScheduleRetryResult::Kind::kScheduled;
    out.due = absl::FromUnixMillis(reply.integer);
  }
  return out;
}

absl::StatusOr<MoveDueResult> DecodeMoveDue(const RedisReply& reply) {
  MoveDueResult out;
  if (reply.is_string()) {
    out.kind = MoveDueResult::Kind::kMoved;
    out.retry_id = reply.str;
    return out;
  }
  if (!reply.is_integer()) return Unexpected("move_due", reply);
  switch (reply.integer) {
    case 0:
      out.kind = MoveDueResult::Kind::kGone;
      return out;
    case -3:
      out.kind = MoveDueResult::Kind::kNotDue;
      return out;
    case -1:
      out.kind = MoveDueResult::Kind::kNotPending;
      return out;
    default:
      return Unexpected("move_due", reply);
  }
}

absl::StatusOr<LegacyMoveResult> DecodeLegacyMove(const RedisReply& reply) {
  LegacyMoveResult out;
  if (reply.is_string()) {
    out.kind = LegacyMoveResult::Kind::kMoved;
    out.new_id = reply.str;
    return out;
  }
  if (!reply.is_integer() || reply.integer != 0) return Unexpected("legacy_move", reply);
  return out;
}

absl::StatusOr<DeadLetterResult> DecodeDeadLetter(const RedisReply& reply) {
  DeadLetterResult out;
  if (reply.is_array()) {
    if (reply.elements.size() != 2 || !reply.elements[0].is_string() ||
        !reply.elements[1].is_integer()) {
      return Unexpected("dead_letter", reply);
    }
    out.kind = DeadLetterResult::Kind::kDeadLettered;
    out.dlq_id = reply.elements[0].str;
    out.evicted = reply.elements[1].integer;
    return out;
  }
  if (reply.is_integer() && reply.integer == 0) {
    out.kind = DeadLetterResult::Kind::kNotPending;
    return out;
  }
  if (reply.is_integer() && reply.integer == -2) {
    out.kind = DeadLetterResult::Kind::kHeld;
    return out;
  }
  return Unexpected("dead_letter", reply);
}

absl::StatusOr<PurgeResult> DecodePurge(const RedisReply& reply) {
  PurgeResult out;
  if (reply.is_integer() && reply.integer >= 0) {
    out.count = reply.integer;
    return out;
  }
  if (IntegerArray(reply, 2) && reply.elements.size() == 2 && reply.elements[0].integer == -1) {
    out.kind = PurgeResult::Kind::kCountMismatch;
    out.count = reply.elements[1].integer;
    return out;
  }
  return Unexpected("purge", reply);
}

absl::StatusOr<RedriveStepResult> DecodeRedriveStep(const RedisReply& reply) {
  RedriveStepResult out;
  if (IntegerArray(reply, 3) && reply.elements.size() == 3) {
    out.moved = reply.elements[0].integer;
    out.skipped = reply.elements[1].integer;
    out.failed = reply.elements[2].integer;
    return out;
  }
  if (IntegerArray(reply, 6) && reply.elements.size() == 6 && reply.elements[0].integer == -4) {
    out.kind = RedriveStepResult::Kind::kAlreadyDone;
    out.from = reply.elements[1].integer;
    out.to = reply.elements[2].integer;
    out.moved = reply.elements[3].integer;
    out.skipped = reply.elements[4].integer;
    out.failed = reply.elements[5].integer;
    return out;
  }
  if (!reply.is_integer()) return Unexpected("redrive_step", reply);
  switch (reply.integer) {
    case -1:
      out.kind = RedriveStepResult::Kind::kNotOwner;
      return out;
    case -2:
      out.kind = RedriveStepResult::Kind::kCursorMoved;
      return out;
    case -3:
      out.kind = RedriveStepResult::Kind::kTargetNotStream;
      return out;
    default:
      return Unexpected("redrive_step", reply);
  }
}

absl::StatusOr<JobTransitionResult> DecodeJobTransition(const RedisReply& reply) {
  if (!reply.is_integer()) return Unexpected("job_transition", reply);
  switch (reply.integer) {
    case 1:
      return JobTransitionResult::kDone;
    case 0:
      return JobTransitionResult::kNotApplicable;
    case -1:
      return JobTransitionResult::kNoSuchJob;
    case -2:
      return JobTransitionResult::kCursorMoved;
    default:
      return Unexpected("job_transition", reply);
  }
}

absl::StatusOr<DeleteHandlerResult> DecodeDeleteHandler(const RedisReply& reply) {
  if (!IntegerArray(reply, 3)) return Unexpected("delete_handler", reply);
  const std::vector<RedisReply>& e = reply.elements;
  DeleteHandlerResult out;
  out.retry_entries = e[1].integer;
  out.dead_letters = e[2].integer;
  switch (e[0].integer) {
    case -1:
      out.kind = DeleteHandlerResult::Kind::kEntriesRemain;
      return out;
    case -2:
      out.kind = DeleteHandlerResult::Kind::kCountMismatch;
      return out;
    case 1:
      break;
    default:
      return Unexpected("delete_handler", reply);
  }
  if (!IntegerArray(reply, 5)) return Unexpected("delete_handler", reply);
  out.group_destroyed = e[3].integer == 1;
  out.retry_group_existed = e[4].integer == 1;
  for (size_t i = 5; i < e.size(); ++i) {
    if (!e[i].is_string()) return Unexpected("delete_handler", reply);
    out.deleted_keys.push_back(e[i].str);
  }
  return out;
}

}  // namespace redrive
