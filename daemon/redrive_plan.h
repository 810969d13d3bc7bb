// Planning a redrive (R-E2): what one RedriveDeadLetters request asks a
// redrive job to do — its target resolved and checked, and its selection of
// dead letters in the order the job takes them — or, for a dry run, what
// each selected dead letter would do.
//
// Target kinds: the handler's retry stream (default; only that handler sees
// the entries again), its source channel, or another channel. The target key
// must be a stream or absent; a channel target must have a consumer group
// (groups created later start at its end, so nothing would receive them).
//
// Thread-safe: functions over a caller's connection.
#ifndef REDRIVE_DAEMON_REDRIVE_PLAN_H_
#define REDRIVE_DAEMON_REDRIVE_PLAN_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/keys.h"
#include "daemon/redis/commander.h"
#include "daemon/redrive_jobs.h"
#include "redrive/v1/admin.pb.h"

namespace redrive {

// Dead letters one redrive job may take at most (all / filter selections).
inline constexpr size_t kMaxJobSize = 1000000;
// Ids listed per dry-run answer list.
inline constexpr size_t kMaxListedIds = 10000;

// The job spec of `request` (validated; its handler known).
// FAILED_PRECONDITION when the target key exists and is not a stream, or
// when no consumer group reads a channel target.
absl::StatusOr<RedriveJobSpec> PlanRedriveTarget(RedisCommander& redis,
                                                 const v1::RedriveDeadLettersRequest& request,
                                                 KeyStyle style);

// The selected ids of `dlq`, oldest first (named ids: in the order given,
// once each). RESOURCE_EXHAUSTED when more than kMaxJobSize match. With
// `dry_run` set, fills its would_move / would_skip lists (at most
// kMaxListedIds each), their counts and ids_truncated: quarantined entries
// (redriven `max_redrives` times) are skipped unless the request includes
// them, and so are named ids not in the DLQ.
absl::StatusOr<std::vector<std::string>> SelectForRedrive(
    RedisCommander& redis, const v1::RedriveDeadLettersRequest& request, const std::string& dlq,
    uint32_t max_redrives, v1::RedriveDeadLettersResponse* dry_run);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDRIVE_PLAN_H_
