#include "daemon/dead_letter_filter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "daemon/keys.h"

namespace redrive {

absl::Status ValidateFilter(const v1::DeadLetterFilter& filter, absl::string_view field) {
  if (static_cast<size_t>(filter.reasons_size()) > kMaxFilterReasons) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".reasons has ", filter.reasons_size(),
                                                   " entries; at most ", kMaxFilterReasons));
  }
  for (int i = 0; i < filter.reasons_size(); ++i) {
    const std::string& r = filter.reasons(i);
    if (r.empty() || r.size() > kMaxReasonLength) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".reasons[", i, "] must be 1..", kMaxReasonLength, " bytes"));
    }
  }
  if (filter.from_unix_ms() < 0 || filter.to_unix_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " times must not be negative"));
  }
  if (filter.from_unix_ms() > 0 && filter.to_unix_ms() > 0 &&
      filter.from_unix_ms() >= filter.to_unix_ms()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".from_unix_ms ", filter.from_unix_ms(),
                                                   " is not before to_unix_ms ",
                                                   filter.to_unix_ms()));
  }
  return absl::OkStatus();
}

bool MatchesReasons(const v1::DeadLetter& dead_letter, const v1::DeadLetterFilter& filter) {
  if (filter.reasons().empty()) return true;
  return std::find(filter.reasons().begin(), filter.reasons().end(), dead_letter.reason()) !=
         filter.reasons().end();
}

std::pair<std::string, std::string> FilterRange(const v1::DeadLetterFilter& filter) {
  std::string start = filter.from_unix_ms() > 0 ? absl::StrCat(filter.from_unix_ms(), "-0") : "-";
  std::string end = filter.to_unix_ms() > 0 ? absl::StrCat("(", filter.to_unix_ms(), "-0") : "+";
  return {std::move(start), std::move(end)};
}

absl::Status ValidateListRequest(const v1::ListDeadLettersRequest& request) {
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", request.page_size(), " is outside 1..", kMaxPageSize));
  }
  if (request.preview_bytes() > kMaxPreviewBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("preview_bytes ", request.preview_bytes(), " is over ", kMaxPreviewBytes));
  }
  if (!v1::Order_IsValid(request.order())) {
    return absl::InvalidArgumentError(absl::StrCat("order ", request.order(), " is not an Order"));
  }
  if (absl::Status s = ValidateFilter(request.filter(), "filter"); !s.ok()) return s;
  if (!request.cursor().empty()) {
    const absl::string_view c = request.cursor();
    const char want = request.order() == v1::ORDER_NEWEST_FIRST ? 'n' : 'o';
    if (c.size() < 3 || c[1] != ':' || !IsValidEntryId(c.substr(2)) ||
        (c[0] != 'o' && c[0] != 'n')) {
      return absl::InvalidArgumentError("cursor is not one this daemon returned");
    }
    if (c[0] != want) {
      return absl::InvalidArgumentError("cursor belongs to a listing in the other order");
    }
  }
  return absl::OkStatus();
}

}  // namespace redrive
