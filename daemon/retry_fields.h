// The stream fields of retry and dead-letter entries (R-C4, R-D2, R-D5,
// R-D6): what redrive reads from an entry before delivering it, and what it
// writes when an attempt fails.
//
// An entry keeps EggAI's metadata in its `__data__` value (see
// retry_metadata.h: `_retry_count` / `_original_message_id` in JSON object
// bodies, `x-redrive-attempt` / `x-redrive-original-id` envelope headers
// otherwise), so EggAI agents read redrive's retries as their own. What EggAI
// has no place for travels in extra stream fields next to `__data__`, all
// named `x-redrive-*` (FastStream and EggAI read only `__data__`; redrive
// never delivers `x-redrive-*` fields to clients):
//
//   retry and dead-letter entries
//     x-redrive-last-error        the failed attempt's error (NACK reason ...)
//     x-redrive-last-error-code   its machine-readable code
//     x-redrive-first-failure-ms  Unix ms of the first failed attempt
//     x-redrive-history           JSON array of the most recent attempts
//                                 (at most kMaxHistory), oldest first:
//                                 {"attempt","at_ms","outcome","error",
//                                  "error_code","consumer"}
//     x-redrive-attempt,          only for plain field maps (no `__data__`):
//     x-redrive-original-id       the retry count and the original entry id
//   dead-letter entries only
//     x-redrive-reason            max_retries | terminated | poison | disconnected
//     x-redrive-channel, x-redrive-handler, x-redrive-source-stream,
//     x-redrive-source-id, x-redrive-original-id, x-redrive-attempts
//     (handler calls made), x-redrive-dead-lettered-ms
//   any entry redriven out of a DLQ, and every retry and dead letter after it
//     x-redrive-redrives          times redriven (see dead_letters.h)
//
// A failed attempt waits for its retry as a member of the handler's due
// zset; the member names the entry and carries the failure (DueMember).
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_RETRY_FIELDS_H_
#define REDRIVE_DAEMON_RETRY_FIELDS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/envelope.h"
#include "daemon/retry_metadata.h"
#include "daemon/stream_entry.h"

namespace redrive {

inline constexpr absl::string_view kRedriveFieldPrefix = "x-redrive-";
inline constexpr absl::string_view kLastErrorField = "x-redrive-last-error";
inline constexpr absl::string_view kLastErrorCodeField = "x-redrive-last-error-code";
inline constexpr absl::string_view kFirstFailureField = "x-redrive-first-failure-ms";
inline constexpr absl::string_view kHistoryField = "x-redrive-history";
inline constexpr absl::string_view kAttemptField = "x-redrive-attempt";
inline constexpr absl::string_view kOriginalIdField = "x-redrive-original-id";
inline constexpr absl::string_view kReasonField = "x-redrive-reason";
inline constexpr absl::string_view kChannelField = "x-redrive-channel";
inline constexpr absl::string_view kHandlerField = "x-redrive-handler";
inline constexpr absl::string_view kSourceStreamField = "x-redrive-source-stream";
inline constexpr absl::string_view kSourceIdField = "x-redrive-source-id";
inline constexpr absl::string_view kAttemptsField = "x-redrive-attempts";
inline constexpr absl::string_view kDeadLetteredField = "x-redrive-dead-lettered-ms";
// Times the message was redriven out of a DLQ (R-E2); carried through every
// retry and dead letter that follows.
inline constexpr absl::string_view kRedrivesField = "x-redrive-redrives";

// Attempts kept in x-redrive-history.
inline constexpr size_t kMaxHistory = 10;
// Longest error text kept per attempt (longer ones are cut, UTF-8 safe).
inline constexpr size_t kMaxStoredError = 1024;

// The outcome of an entry handed back without being delivered (a read that
// returned after its stream left, a drain): not a failed attempt.
inline constexpr absl::string_view kReturnedOutcome = "returned";

// One failed attempt.
struct FailureRecord {
  uint32_t attempt = 1;  // the attempt that failed (1 = first delivery)
  // nack | lease_expired | disconnected | terminated | poison | returned
  std::string outcome;
  std::string error;
  std::string error_code;
  std::string consumer;
  int64_t at_ms = 0;
};

// What redrive knows of an entry's past attempts.
struct RetryState {
  // Failed attempts so far: the next delivery is attempt retry_count + 1.
  int64_t retry_count = 0;
  // The main-stream id recorded at the first retry; empty before it.
  std::string original_id;
  std::string last_error;
  std::string last_error_code;
  int64_t first_failure_ms = 0;  // 0 = none yet
  std::string history;           // JSON array text; "" = none
  bool has_data = false;         // the entry has a `__data__` value
  DecodedEntry decoded;          // the decoded entry (kFields for field maps)
};

// Reads an entry's retry state. DataLoss (poison, R-D6) when `__data__` does
// not decode or its metadata is present but unusable, or a field map's
// x-redrive-attempt / x-redrive-original-id field is unusable.
absl::StatusOr<RetryState> ReadRetryState(const StreamEntry& entry);

// The entry without its x-redrive-* fields (what a client may see).
StreamEntry WithoutRedriveFields(const StreamEntry& entry);

// The fields of the retry entry that follows `failure` of `entry` (read from
// a stream as `entry.id`, with `state` = ReadRetryState(entry)): the
// metadata rewritten with retry count state.retry_count + 1, the error, first
// failure time and the history with `failure` appended; other fields kept.
// For an entry handed back undelivered (failure.outcome kReturnedOutcome) the
// count and the failure fields stay as they were. DataLoss when the metadata
// cannot be rewritten (poison).
absl::StatusOr<FieldList> RetryEntryFields(const StreamEntry& entry, const RetryState& state,
                                           const FailureRecord& failure);

struct DeadLetterContext {
  std::string reason;  // max_retries | terminated | poison | disconnected
  std::string channel;
  std::string handler_id;
  std::string source_stream;
  absl::Time at;
};

// The fields of the dead letter for `entry` after `failure`. `state` is
// ReadRetryState(entry): for poison (an error status) the raw `__data__` is
// preserved in EggAI's `_dlq_raw_b64` wrapping; a JSON object body gets the
// EggAI `_dlq_*` keys; other bodies and field maps keep their bytes. Never
// fails: whatever cannot be rewritten is kept as it was.
FieldList DeadLetterFields(const StreamEntry& entry, const absl::StatusOr<RetryState>& state,
                           const FailureRecord& failure, const DeadLetterContext& context);

// A due-zset member: "<source>\n<entry id>\n<failure as JSON>".
struct DueMember {
  int source = 0;  // 0 = main stream, 1 = retry stream
  std::string entry_id;
  FailureRecord failure;
};
std::string EncodeDueMember(const DueMember& member);
// InvalidArgument for a member this daemon did not write.
absl::StatusOr<DueMember> DecodeDueMember(absl::string_view member);

// `text` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(absl::string_view text, size_t max);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_RETRY_FIELDS_H_
