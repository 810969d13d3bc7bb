// EventSummary: per-handler counts of dead letters (by reason) and expired
// leases, reported as one info line per handler per interval instead of one
// line per entry, which floods the log under load (issue 10). The per-entry
// detail stays at debug level where the events happen.
//
// The clock is injected: Report takes the current time, so tests decide when
// an interval has passed.
//
// Thread-compatible: the Dispatcher uses it on its loop thread only.
#ifndef REDRIVE_DAEMON_EVENT_SUMMARY_H_
#define REDRIVE_DAEMON_EVENT_SUMMARY_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace redrive {

class EventSummary {
 public:
  // The first report is due `interval` after `start`.
  EventSummary(absl::Duration interval, absl::Time start);

  void DeadLettered(absl::string_view channel, absl::string_view handler_id,
                    absl::string_view reason);
  void LeaseExpired(absl::string_view channel, absl::string_view handler_id);

  // When `now` is at or past the due time: one line per handler with events
  // since the last report, ordered by (channel, handler id), e.g.
  //   "handler 'billing' on 'orders' in the last 10s: 12 dead-lettered
  //    (max_retries 10, terminated 2), 3 leases expired"
  // (reasons in alphabetical order; a part with zero events is left out),
  // and the counts start again; the next report is due `interval` after
  // `now`. Before the due time: nothing, and nothing is reset.
  std::vector<std::string> Report(absl::Time now);
  // Every line now, whatever the due time (a drain, before exiting).
  std::vector<std::string> ReportNow(absl::Time now);

 private:
  struct Counts {
    uint64_t dead_lettered = 0;
    std::map<std::string, uint64_t> reasons;
    uint64_t leases_expired = 0;
  };

  const absl::Duration interval_;
  absl::Time window_start_;
  absl::Time due_;
  std::map<std::pair<std::string, std::string>, Counts> counts_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_EVENT_SUMMARY_H_
