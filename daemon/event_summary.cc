#include "daemon/event_summary.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace redrive {

EventSummary::EventSummary(absl::Duration interval, absl::Time start)
    : interval_(interval), window_start_(start), due_(start + interval) {}

void EventSummary::DeadLettered(absl::string_view channel, absl::string_view handler_id,
                                absl::string_view reason) {
  Counts& c = counts_[{std::string(channel), std::string(handler_id)}];
  ++c.dead_lettered;
  ++c.reasons[std::string(reason)];
}

void EventSummary::LeaseExpired(absl::string_view channel, absl::string_view handler_id) {
  ++counts_[{std::string(channel), std::string(handler_id)}].leases_expired;
}

std::vector<std::string> EventSummary::Report(absl::Time now) {
  if (now < due_) return {};
  return ReportNow(now);
}

std::vector<std::string> EventSummary::ReportNow(absl::Time now) {
  std::vector<std::string> lines;
  const std::string window = absl::FormatDuration(now - window_start_);
  for (const auto& [key, c] : counts_) {
    std::vector<std::string> parts;
    if (c.dead_lettered > 0) {
      std::vector<std::string> reasons;
      for (const auto& [reason, n] : c.reasons) reasons.push_back(absl::StrCat(reason, " ", n));
      parts.push_back(
          absl::StrCat(c.dead_lettered, " dead-lettered (", absl::StrJoin(reasons, ", "), ")"));
    }
    if (c.leases_expired > 0) {
      parts.push_back(absl::StrCat(c.leases_expired,
                                   c.leases_expired == 1 ? " lease expired" : " leases expired"));
    }
    lines.push_back(absl::StrCat("handler '", key.second, "' on '", key.first, "' in the last ",
                                 window, ": ", absl::StrJoin(parts, ", ")));
  }
  counts_.clear();
  window_start_ = now;
  due_ = now + interval_;
  return lines;
}

}  // namespace redrive
