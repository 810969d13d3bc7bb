// Retry policy arithmetic (R-D1): the delay before the next attempt and
// when an entry is dead-lettered instead.
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_BACKOFF_H_
#define REDRIVE_DAEMON_BACKOFF_H_

#include <cstdint>

#include "absl/time/time.h"
#include "redrive/v1/common.pb.h"

namespace redrive {

// True when attempt `failed_attempt` (1 = the first delivery) was the last
// one the policy allows: max_retries = 5 means six handler calls, so the
// sixth failure dead-letters. Never true for an unlimited policy.
bool RetriesExhausted(const v1::RetryPolicy& policy, uint32_t failed_attempt);

// The delay before the attempt after `failed_attempt`:
//   min(initial_backoff * multiplier^(failed_attempt - 1), max_backoff)
// plus upward jitter: that delay × jitter × `unit_random` (unit_random in
// [0, 1), so the result is never earlier than the computed delay). The
// policy must be an effective one (every field set, see subscription.h).
absl::Duration RetryDelay(const v1::RetryPolicy& policy, uint32_t failed_attempt,
                          double unit_random);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_BACKOFF_H_
