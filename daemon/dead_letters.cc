#include "daemon/dead_letters.h"

#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/script_results.h"
#include "daemon/redis/scripts.h"
#include "daemon/redis/streams.h"

namespace redrive {
namespace {

// Entries per XRANGE round trip while scanning.
constexpr size_t kScanChunk = 500;
// Ids looked up per round trip.
constexpr size_t kFetchChunk = 256;

// Shows the entries of `dlq` between `start` and `end` (XRANGE bounds) to
// `each`, oldest first (newest first when `newest_first`), until it returns
// false.
absl::Status ScanRange(RedisCommander& redis, const std::string& dlq, std::string start,
                       std::string end, bool newest_first,
                       const std::function<bool(StreamEntry&&)>& each) {
  while (true) {
    absl::StatusOr<std::vector<StreamEntry>> entries =
        newest_first ? XRevRange(redis, dlq, end, start, kScanChunk)
                     : XRange(redis, dlq, start, end, kScanChunk);
    if (!entries.ok()) return entries.status();
    const size_t n = entries->size();
    std::string last;
    for (StreamEntry& e : *entries) {
      last = e.id;
      if (!each(std::move(e))) return absl::OkStatus();
    }
    if (n < kScanChunk) return absl::OkStatus();
    // Exclusive bounds continue after the last entry seen.
    if (newest_first) {
      end = absl::StrCat("(", last);
    } else {
      start = absl::StrCat("(", last);
    }
  }
}

// `ids` without repetitions, in their first order.
std::vector<std::string> Distinct(const std::vector<std::string>& ids) {
  std::vector<std::string> out;
  absl::flat_hash_set<absl::string_view> seen;
  for (const std::string& id : ids) {
    if (seen.insert(id).second) out.push_back(id);
  }
  return out;
}

}  // namespace

absl::StatusOr<v1::ListDeadLettersResponse> ListDeadLetters(
    RedisCommander& redis, const std::string& dlq, const v1::ListDeadLettersRequest& request,
    uint32_t max_redrives) {
  const bool newest = request.order() == v1::ORDER_NEWEST_FIRST;
  const size_t page = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  const size_t preview =
      request.preview_bytes() == 0 ? kDefaultPreviewBytes : request.preview_bytes();
  auto [start, end] = FilterRange(request.filter());
  if (!request.cursor().empty()) {
    const std::string after = absl::StrCat("(", request.cursor().substr(2));
    if (newest) {
      end = after;
    } else {
      start = after;
    }
  }
  v1::ListDeadLettersResponse response;
  size_t scanned = 0;
  std::string last_scanned;
  bool more = false;
  absl::Status s = ScanRange(redis, dlq, start, end, newest, [&](StreamEntry&& e) {
    if (static_cast<size_t>(response.dead_letters_size()) == page) {
      // One more match beyond the page decides whether a cursor is needed.
      v1::DeadLetter d = DecodeDeadLetter(e, 0, max_redrives);
      if (MatchesReasons(d, request.filter())) {
        more = true;
        return false;
      }
    } else {
      v1::DeadLetter d = DecodeDeadLetter(e, preview, max_redrives);
      if (MatchesReasons(d, request.filter())) *response.add_dead_letters() = std::move(d);
    }
    last_scanned = e.id;
    if (++scanned >= kListScanBudget) {
      more = true;
      return false;
    }
    return true;
  });
  if (!s.ok()) return s;
  if (more) {
    const std::string& at = static_cast<size_t>(response.dead_letters_size()) == page
                                ? response.dead_letters(response.dead_letters_size() - 1).entry_id()
                                : last_scanned;
    response.set_next_cursor(absl::StrCat(newest ? "n:" : "o:", at));
  }
  return response;
}

absl::StatusOr<v1::DeadLetter> GetDeadLetter(RedisCommander& redis, const std::string& dlq,
                                             const std::string& entry_id, uint32_t max_redrives) {
  std::vector<std::string> missing;
  absl::StatusOr<std::vector<StreamEntry>> found =
      FetchDeadLetters(redis, dlq, {entry_id}, &missing);
  if (!found.ok()) return found.status();
  if (found->empty()) {
    return absl::NotFoundError(absl::StrCat("no dead letter ", entry_id, " in ", dlq));
  }
  return DecodeDeadLetter(found->front(), std::numeric_limits<size_t>::max(), max_redrives);
}

absl::StatusOr<uint64_t> CountDeadLetters(RedisCommander& redis, const std::string& dlq,
                                          const v1::DeadLetterFilter& filter) {
  if (filter.reasons().empty() && filter.from_unix_ms() == 0 && filter.to_unix_ms() == 0) {
    absl::StatusOr<int64_t> n = XLen(redis, dlq);
    if (!n.ok()) return n.status();
    return static_cast<uint64_t>(*n);
  }
  uint64_t n = 0;
  const auto [start, end] = FilterRange(filter);
  absl::Status s = ScanRange(redis, dlq, start, end, false, [&](StreamEntry&& e) {
    if (filter.reasons().empty() || MatchesReasons(DecodeDeadLetter(e, 0, UINT32_MAX), filter)) {
      ++n;
    }
    return true;
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<std::vector<std::string>> SelectDeadLetters(
    RedisCommander& redis, const std::string& dlq, const v1::DeadLetterFilter& filter, size_t limit,
    const std::function<void(const StreamEntry&)>& visit) {
  std::vector<std::string> out;
  bool over = false;
  const auto [start, end] = FilterRange(filter);
  absl::Status s = ScanRange(redis, dlq, start, end, false, [&](StreamEntry&& e) {
    if (!filter.reasons().empty() && !MatchesReasons(DecodeDeadLetter(e, 0, UINT32_MAX), filter)) {
      return true;
    }
    if (out.size() == limit) {
      over = true;
      return false;
    }
    if (visit) visit(e);
    out.push_back(std::move(e.id));
    return true;
  });
  if (!s.ok()) return s;
  if (over) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "more than ", limit, " dead letters match; narrow the selection (a time range, reasons)"));
  }
  return out;
}

absl::StatusOr<std::vector<StreamEntry>> FetchDeadLetters(RedisCommander& redis,
                                                          const std::string& dlq,
                                                          const std::vector<std::string>& ids,
                                                          std::vector<std::string>* missing) {
  std::vector<StreamEntry> out;
  const std::vector<std::string> asked = Distinct(ids);
  for (size_t i = 0; i < asked.size(); i += kFetchChunk) {
    const std::vector<std::string> chunk(
        asked.begin() + static_cast<std::ptrdiff_t>(i),
        asked.begin() + static_cast<std::ptrdiff_t>(std::min(asked.size(), i + kFetchChunk)));
    absl::StatusOr<std::vector<std::optional<StreamEntry>>> found = XRangeEach(redis, dlq, chunk);
    if (!found.ok()) return found.status();
    for (size_t k = 0; k < found->size(); ++k) {
      if ((*found)[k].has_value()) {
        out.push_back(*std::move((*found)[k]));
      } else if (missing != nullptr) {
        missing->push_back(chunk[k]);
      }
    }
  }
  return out;
}

absl::StatusOr<uint64_t> DeleteDeadLetters(RedisCommander& redis, const std::string& dlq,
                                           const std::vector<std::string>& ids,
                                           std::vector<std::string>* not_found) {
  const std::vector<std::string> asked = Distinct(ids);
  absl::StatusOr<std::vector<bool>> existed = XDelEach(redis, dlq, asked);
  if (!existed.ok()) return existed.status();
  uint64_t deleted = 0;
  for (size_t k = 0; k < existed->size(); ++k) {
    if ((*existed)[k]) {
      ++deleted;
    } else if (not_found != nullptr) {
      not_found->push_back(asked[k]);
    }
  }
  return deleted;
}

absl::StatusOr<uint64_t> PurgeDeadLetters(RedisCommander& redis, const std::string& dlq,
                                          uint64_t expected_count) {
  absl::StatusOr<RedisReply> r =
      RunScript(redis, PurgeScript(), {dlq}, {absl::StrCat(expected_count)});
  if (!r.ok()) return r.status();
  absl::StatusOr<PurgeResult> purged = DecodePurge(*r);
  if (!purged.ok()) return purged.status();
  if (purged->kind == PurgeResult::Kind::kCountMismatch) {
    return absl::FailedPreconditionError(absl::StrCat("the DLQ holds ", purged->count,
                                                      " dead letters, not ", expected_count,
                                                      "; nothing was deleted"));
  }
  return static_cast<uint64_t>(purged->count);
}

}  // namespace redrive
