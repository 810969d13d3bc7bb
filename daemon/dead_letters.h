// The dead-letter queue of one handler as the Admin service reads and
// changes it, synchronously over a caller's connection (R-E1..R-E3):
// listing pages, lookups by id, counting and selecting by filter, deleting
// by id and purging. Entries are decoded by dead_letter_codec.h and
// selected by dead_letter_filter.h (both included for callers).
//
// Thread-safe: functions over a caller's connection.
#ifndef REDRIVE_DAEMON_DEAD_LETTERS_H_
#define REDRIVE_DAEMON_DEAD_LETTERS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/dead_letter_codec.h"
#include "daemon/dead_letter_filter.h"
#include "daemon/redis/commander.h"
#include "daemon/stream_entry.h"
#include "redrive/v1/admin.pb.h"

namespace redrive {

// Entries one ListDeadLetters call examines at most before it returns a
// (possibly short) page with a cursor, so a selective filter cannot make one
// call scan a huge DLQ.
inline constexpr size_t kListScanBudget = 10000;

// One page of ListDeadLetters. The request is validated (ValidateListRequest)
// and `dlq` is the handler's DLQ stream.
absl::StatusOr<v1::ListDeadLettersResponse> ListDeadLetters(
    RedisCommander& redis, const std::string& dlq, const v1::ListDeadLettersRequest& request,
    uint32_t max_redrives);

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
    RedisCommander& redis, const std::string& dlq, const v1::DeadLetterFilter& filter, size_t limit,
    const std::function<void(const StreamEntry&)>& visit = nullptr);

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

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DEAD_LETTERS_H_
