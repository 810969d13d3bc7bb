// The codec of dead-letter queue entries (R-E1..R-E3): a DLQ entry decoded
// into v1::DeadLetter, and a dead letter encoded back into the fields of its
// redriven message.
//
// A dead letter is decoded from whichever provenance it carries:
//   - redrive's `x-redrive-*` stream fields (retry_fields.h);
//   - else later EggAI's (PR #277) `_dlq_*` keys in a JSON object body;
//   - else (EggAI before PR #277, which dead-letters only on exhaustion) the
//     reason `max_retries`, `_retry_count` + 1 attempts and the entry id's time.
// Its payload is the message as its handler saw it: a JSON object body
// without `_retry_count`, `_original_message_id` and the `_dlq_*` keys; a
// poison entry's raw `__data__` bytes (from `_dlq_raw_b64`).
//
// The dead-lettering time is the DLQ entry id's time (Redis's clock when the
// entry was added), both in `dead_lettered_unix_ms` and in time filters
// (which are therefore XRANGE bounds).
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_DEAD_LETTER_CODEC_H_
#define REDRIVE_DAEMON_DEAD_LETTER_CODEC_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/envelope.h"
#include "daemon/stream_entry.h"
#include "redrive/v1/admin.pb.h"

namespace redrive {

// The decoded dead letter. `payload_limit` bytes of payload are kept (the
// rest is counted in payload_size and flagged payload_truncated); with 0 the
// payload, headers and content type are not decoded at all (provenance
// only). `max_redrives` sets `quarantined` (redrive_count >= max_redrives).
v1::DeadLetter DecodeDeadLetter(const StreamEntry& entry, size_t payload_limit,
                                uint32_t max_redrives);

// The fields of the message that redriving `dead_letter` writes.
//   to_handler_retry: an entry of the handler's retry stream, as the failed
//     attempt left it: retry count = 0 with reset_attempts (the next delivery
//     is attempt 1), else the attempts made (one more try: failing again
//     dead-letters it); the original id and x-redrive provenance (last error,
//     first failure, history) kept;
//   otherwise: a fresh message for a channel, without retry metadata.
// Both carry x-redrive-redrives = the dead letter's count + 1, and a poison
// dead letter's raw bytes restored as `__data__`. InvalidArgument when the
// entry cannot be rewritten (it is then left where it is and counted failed).
absl::StatusOr<FieldList> RedriveFields(const StreamEntry& dead_letter, bool to_handler_retry,
                                        bool reset_attempts);
// The same with `info` = DecodeDeadLetter(dead_letter, ...) at hand.
absl::StatusOr<FieldList> RedriveFields(const StreamEntry& dead_letter, const v1::DeadLetter& info,
                                        bool to_handler_retry, bool reset_attempts);
// Entries with more fields than this are not rewritten (counted failed).
inline constexpr size_t kMaxRedriveFields = 2000;

// Milliseconds part of an entry id ("1700000000000-3" → 1700000000000).
int64_t EntryIdMillis(absl::string_view id);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DEAD_LETTER_CODEC_H_
