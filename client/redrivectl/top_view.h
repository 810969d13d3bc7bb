// redrivectl top, the pure part: rates from successive ListHandlers
// responses, the sort orders, and one screen frame rendered for a given
// terminal size. No I/O and no clock: the caller passes the time of each
// sample (top_screen.h does the terminal).
//
// Thread-compatible.
#ifndef REDRIVE_CLIENT_REDRIVECTL_TOP_VIEW_H_
#define REDRIVE_CLIENT_REDRIVECTL_TOP_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "redrive/v1/admin.pb.h"

namespace redrive::ctl {

// Row orders; `s` cycles through them in this order.
enum class TopSort { kName, kDlq, kLag, kRate };

// "name", "dlq", "lag", "rate".
absl::string_view TopSortName(TopSort sort);
std::optional<TopSort> ParseTopSort(absl::string_view name);
TopSort NextTopSort(TopSort sort);

// Per-second rates of one handler between two samples.
struct TopRates {
  double deliveries = 0;
  double acks = 0;
  double nacks = 0;
  double dead_letters = 0;
};

struct TopRow {
  v1::HandlerInfo info;
  // Unset on the handler's first sample (nothing to compare with yet).
  std::optional<TopRates> rates;
  // A counter went down since the previous sample (the daemon restarted, or
  // the handler was retired and registered again): the rates count the new
  // values as the increase since the restart, as Prometheus's rate() does.
  bool counters_reset = false;
};

// Turns successive ListHandlers responses into rows with rates: a counter's
// increase between two samples divided by the time between them.
class RateTracker {
 public:
  // The rows of `response` (in its order) with rates against the previous
  // Update. Handlers absent from `response` are forgotten.
  std::vector<TopRow> Update(const v1::ListHandlersResponse& response, absl::Time now);

 private:
  std::map<std::pair<std::string, std::string>, v1::HandlerCounters> previous_;
  std::optional<absl::Time> previous_time_;
};

// Sorts in place. kName: channel, then handler, ascending. kDlq: DLQ depth,
// kLag: lag (unknown last), kRate: deliveries/s (none last), each
// descending with ties by name.
void SortTopRows(std::vector<TopRow>& rows, TopSort sort);

// What one screen shows.
struct TopFrame {
  std::string address;
  absl::Time now;
  absl::Duration interval;
  TopSort sort = TopSort::kName;
  // Adds the key help to the title line (a TTY with keys).
  bool interactive = false;
  // grpc.health.v1 "readiness" of the daemon: "SERVING" (Redis reachable and
  // the daemon live), "NOT_SERVING", or "?" when the check failed.
  std::string readiness;
  // The last rows fetched (possibly stale when `error` is set), unsorted.
  std::vector<TopRow> rows;
  // The last refresh's failure; the rows are from `rows_time` then.
  absl::Status error;
  absl::Time rows_time;
};

// The frame's lines, each ending in '\n': a title line, a totals line, an
// error line (on a screen, `height` > 0, an empty line when the last refresh
// worked; otherwise only when it failed), the column header and one row per
// handler, sorted by `frame.sort`.
//
// `width` (0 = unlimited) is the terminal's column count: channel and
// handler names are shortened with "..." to fit, and when even that is not
// enough the least important columns are dropped (DELIV, NACK/S, ACK/S,
// OLDEST, CONN, INFL, PAUSED, RETRY, PEND, DL/S, DLV/S, in that order);
// every line is then cut at `width`. `height` (0 = unlimited) is the
// terminal's line count: rows that do not fit are summed up in a last line
// "... N more handlers".
std::string RenderTopFrame(const TopFrame& frame, size_t width, size_t height);

// "12.5": one decimal; "-" when unset.
std::string FormatRate(const std::optional<double>& rate);

}  // namespace redrive::ctl

#endif  // REDRIVE_CLIENT_REDRIVECTL_TOP_VIEW_H_
