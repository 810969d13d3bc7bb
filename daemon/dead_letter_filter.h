// Selecting dead letters (R-E1, R-E2): the filters and list requests the
// Admin service accepts, checked, and a filter's time range as the XRANGE
// bounds it selects (the dead-lettering time is the DLQ entry id's time).
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_DEAD_LETTER_FILTER_H_
#define REDRIVE_DAEMON_DEAD_LETTER_FILTER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
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
// INVALID_ARGUMENT naming `field` for: more than kMaxFilterReasons reasons,
// an empty or overlong reason, negative times, from > to.
absl::Status ValidateFilter(const v1::DeadLetterFilter& filter, absl::string_view field);

// True when `dead_letter` passes the filter's reasons (its time range is
// applied by FilterRange).
bool MatchesReasons(const v1::DeadLetter& dead_letter, const v1::DeadLetterFilter& filter);

// XRANGE start and end ids covering the filter's time range: "-" / "+" when
// unbounded; `to_unix_ms` is exclusive.
std::pair<std::string, std::string> FilterRange(const v1::DeadLetterFilter& filter);

// INVALID_ARGUMENT for a page size, preview size, order, filter or cursor
// out of bounds (a cursor must come from a listing in the same order).
absl::Status ValidateListRequest(const v1::ListDeadLettersRequest& request);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DEAD_LETTER_FILTER_H_
