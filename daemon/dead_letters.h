// Dead letters as the Admin service sees them (R-E1..R-E3): decoding a DLQ
// entry into v1::DeadLetter, selecting entries by filter, the fields of a
// redriven message, and the synchronous DLQ reads and deletions.
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
// Thread-safe: pure functions, and functions over a caller's connection.
#ifndef REDRIVE_DAEMON_DEAD_LETTERS_H_
#define REDRIVE_DAEMON_DEAD_LETTERS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/envelope.h"
#include "daemon/redis/connection.h"
#include "daemon/stream_entry.h"
#include "redrive/v1/admin.pb.h"

namespace redrive {

inline constexpr uint32_t kDefaultPageSize = 100;
inline constexpr uint32_t kMaxPageSize = 1000;
inline constexpr uint32_t kDefaultPreviewBytes = 256;
inline constexpr uint32_t kMaxPreviewBytes = 65536;
// Most ids one RedriveDeadLetters / DeleteDeadLetters request may name.
inline constexpr size_t kMaxSelectedIds = 10000;
inline constexpr size_t kMaxFilterReasons = 16;
inline constexpr size_t kMaxReasonLength = 64;
// Entries one ListDeadLetters call examines at most before it returns a
// (possibly short) page with a cursor, so a selective filter cannot make one
// call scan a huge DLQ.
inline constexpr size_t kListScanBudget = 10000;

// The decoded dead letter. `payload_limit` bytes of payload are kept (the
// rest is counted in payload_size and flagged payload_truncated); with 0 the
// payload, headers and content type are not decoded at all (provenance
// only). `max_redrives` sets `quarantined` (redrive_count >= max_redrives).
v1::DeadLetter DecodeDeadLetter(const StreamEntry& entry, size_t payload_limit,
                                uint32_t max_redrives);

// INVALID_ARGUMENT naming `field` for: more than kMaxFilterReasons reasons,
// an empty or overlong reason, negative times, from > to.
absl::Status ValidateFilter(const v1::DeadLetterFilter& filter, absl::string_view field);

// True when `dead_letter` passes the filter's reasons (its time range is
// applied by FilterRange).
bool MatchesReasons(const v1::DeadLetter& dead_letter, const v1::DeadLetterFilter& filter);

// XRANGE start and end ids covering the filter's time range: "-" / "+" when
// unbounded; `to_unix_ms` is exclusive.
std::pair<std::string, std::string> FilterRange(const v1::DeadLetterFilter& filter);

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
absl::StatusOr<FieldList> RedriveFields(const StreamEntry& dead_letter,
                                        const v1::DeadLetter& info, bool to_handler_retry,
                                        bool reset_attempts);
// Entries with more fields than this are not rewritten (counted failed).
inline constexpr size_t kMaxRedriveFields = 2000;

// One page of ListDeadLetters. The request is validated (ValidateListRequest)
// and `dlq` is the handler's DLQ stream.
absl::StatusOr<v1::ListDeadLettersResponse> ListDeadLetters(
    RedisCommander& redis, const std::string& dlq, const v1::ListDeadLettersRequest& request,
    uint32_t max_redrives);
absl::Status ValidateListRequest(const v1::ListDeadLettersRequest& request);

// NOT_FOUND when `entry_id` is not in `dlq`.
absl::StatusOr<v1::DeadLetter> GetDeadLetter(RedisCommander& redis, const std::string& dlq,
                                             const std::string& entry_id, uint32_t max_redrives);

// XLEN without reasons or times, else a scan.
absl::StatusOr<uint64_t> CountDeadLetters(RedisCommander& redis, const std::string& dlq,
                                          const v1::DeadLetterFilter& filter);

// The ids of every entry of `dlq` passing `filter` (all entries for an
// empty filter), oldest first, each entry also shown to `visit` when set;
// RESOURCE_EXHAUSTED when more than `limit` pass. Only the ids are kept.
absl::StatusOr<std::vector<std::string>> SelectDeadLetters(
    RedisCommander& redis, const std::string& dlq, const v1::DeadLetterFilter& filter,
    size_t limit, const std::function<void(const StreamEntry&)>& visit = nullptr);

// The entries `ids` of `dlq` that exist, in the order asked (duplicates
// once); the missing ids go to `missing`.
absl::StatusOr<std::vector<StreamEntry>> FetchDeadLetters(RedisCommander& redis,
                                                          const std::string& dlq,
                                                          const std::vector<std::string>& ids,
                                                          std::vector<std::string>* missing);

// XDELs `ids`; returns how many existed and lists the others in `not_found`.
absl::StatusOr<uint64_t> DeleteDeadLetters(RedisCommander& redis, const std::string& dlq,
                                           const std::vector<std::string>& ids,
                                           std::vector<std::string>* not_found);

// Deletes the whole DLQ in one script, only when its length is
// `expected_count`: FAILED_PRECONDITION (nothing deleted) otherwise.
absl::StatusOr<uint64_t> PurgeDeadLetters(RedisCommander& redis, const std::string& dlq,
                                          uint64_t expected_count);

// Milliseconds part of an entry id ("1700000000000-3" → 1700000000000).
int64_t EntryIdMillis(absl::string_view id);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DEAD_LETTERS_H_
