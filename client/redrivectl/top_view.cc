#include "client/redrivectl/top_view.h"

#include <algorithm>
#include <array>
#include <functional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/redrivectl/format.h"

namespace redrive::ctl {
namespace {

constexpr size_t kSeparator = 2;
// Names are not shortened below this (or their full length when shorter)
// before columns are dropped.
constexpr size_t kMinNameWidth = 10;
constexpr size_t kHeaderLines = 4;

size_t CodePoints(absl::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The first `n` code points of `s`.
std::string Prefix(absl::string_view s, size_t n) {
  size_t points = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (points == n) return std::string(s.substr(0, i));
      ++points;
    }
  }
  return std::string(s);
}

// `s` in at most `n` code points, "..." marking a cut.
std::string Shorten(absl::string_view s, size_t n) {
  if (CodePoints(s) <= n) return std::string(s);
  if (n <= 3) return Prefix(s, n);
  return absl::StrCat(Prefix(s, n - 3), "...");
}

std::string Pad(const std::string& s, size_t width, bool left) {
  const size_t n = CodePoints(s);
  if (n >= width) return s;
  return left ? s + std::string(width - n, ' ') : std::string(width - n, ' ') + s;
}

std::optional<double> RateOf(const TopRow& row, double TopRates::*field) {
  if (!row.rates.has_value()) return std::nullopt;
  return (*row.rates).*field;
}

struct Column {
  const char* header;
  bool name;  // left-aligned and shortened to fit
  // Columns are dropped in increasing order of this when the width is too
  // small; 0 = never dropped.
  int drop_order;
  std::function<std::string(const TopRow&)> cell;
};

const std::vector<Column>& Columns() {
  using R = const TopRow&;
  static const std::vector<Column>* const columns = new std::vector<Column>({
      {"CHANNEL", true, 0, [](R r) { return EscapeForLine(r.info.handler().channel()); }},
      {"HANDLER", true, 0, [](R r) { return EscapeForLine(r.info.handler().handler_id()); }},
      {"CONN", false, 5, [](R r) { return absl::StrCat(r.info.connected_streams()); }},
      {"INFL", false, 6, [](R r) { return absl::StrCat(r.info.in_flight()); }},
      {"PEND", false, 9, [](R r) { return absl::StrCat(r.info.pending()); }},
      {"LAG", false, 0,
       [](R r) { return r.info.lag() < 0 ? std::string("?") : absl::StrCat(r.info.lag()); }},
      {"RETRY", false, 8, [](R r) { return absl::StrCat(r.info.retry_depth()); }},
      {"DLQ", false, 0, [](R r) { return absl::StrCat(r.info.dlq_depth()); }},
      {"OLDEST", false, 4,
       [](R r) { return FormatDurationMs(r.info.oldest_dead_letter_age_ms()); }},
      {"PAUSED", false, 7, [](R r) { return std::string(r.info.paused() ? "yes" : "no"); }},
      {"DELIV", false, 1, [](R r) { return absl::StrCat(r.info.counters().deliveries()); }},
      {"DLV/S", false, 11, [](R r) { return FormatRate(RateOf(r, &TopRates::deliveries)); }},
      {"ACK/S", false, 3, [](R r) { return FormatRate(RateOf(r, &TopRates::acks)); }},
      {"NACK/S", false, 2, [](R r) { return FormatRate(RateOf(r, &TopRates::nacks)); }},
      {"DL/S", false, 10, [](R r) { return FormatRate(RateOf(r, &TopRates::dead_letters)); }},
  });
  return *columns;
}

std::tuple<const std::string&, const std::string&> NameKey(const TopRow& r) {
  return {r.info.handler().channel(), r.info.handler().handler_id()};
}

// The increase of a counter from `before` to `now`; `now` itself when it
// went down (a reset), which sets `reset`.
uint64_t Increase(uint64_t now, uint64_t before, bool& reset) {
  if (now >= before) return now - before;
  reset = true;
  return now;
}

std::string Title(const TopFrame& f) {
  std::string out =
      absl::StrCat("redrive top  ", EscapeForLine(f.address), "  ",
                   absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", f.now, absl::UTCTimeZone()), "  every ",
                   absl::FormatDuration(f.interval), "  sort: ", TopSortName(f.sort));
  if (f.interactive) absl::StrAppend(&out, "  (q quit, s sort)");
  return out;
}

std::string Totals(const TopFrame& f) {
  uint64_t in_flight = 0, pending = 0, retry = 0, dlq = 0;
  TopRates sum;
  bool any_rates = false;
  for (const TopRow& r : f.rows) {
    in_flight += r.info.in_flight();
    pending += r.info.pending();
    retry += r.info.retry_depth();
    dlq += r.info.dlq_depth();
    if (r.rates.has_value()) {
      any_rates = true;
      sum.deliveries += r.rates->deliveries;
      sum.acks += r.rates->acks;
      sum.nacks += r.rates->nacks;
      sum.dead_letters += r.rates->dead_letters;
    }
  }
  const auto rate = [&](double v) {
    return FormatRate(any_rates ? std::optional(v) : std::nullopt);
  };
  return absl::StrCat("readiness ", f.readiness.empty() ? "?" : f.readiness, "  handlers ",
                      f.rows.size(), "  in flight ", in_flight, "  pending ", pending, "  retry ",
                      retry, "  dlq ", dlq, "  deliveries/s ", rate(sum.deliveries), "  acks/s ",
                      rate(sum.acks), "  nacks/s ", rate(sum.nacks), "  dead letters/s ",
                      rate(sum.dead_letters));
}

std::string ErrorLine(const TopFrame& f) {
  if (f.error.ok()) return "";
  std::string out = absl::StrCat("error: ", StatusCodeName(static_cast<int>(f.error.code())), ": ",
                                 EscapeForLine(f.error.message()), " (retrying every ",
                                 absl::FormatDuration(f.interval));
  if (f.rows_time != absl::InfinitePast()) {
    absl::StrAppend(&out, "; rows from ",
                    absl::FormatTime("%H:%M:%SZ", f.rows_time, absl::UTCTimeZone()));
  }
  absl::StrAppend(&out, ")");
  return out;
}

// Widths for `cells` (row 0 is the header) within `width`; a dropped
// column gets std::nullopt.
std::vector<std::optional<size_t>> Layout(const std::vector<std::vector<std::string>>& cells,
                                          size_t width) {
  const std::vector<Column>& cols = Columns();
  std::vector<size_t> natural(cols.size(), 0);
  for (const auto& row : cells) {
    for (size_t i = 0; i < cols.size(); ++i) natural[i] = std::max(natural[i], CodePoints(row[i]));
  }
  std::vector<std::optional<size_t>> out(natural.begin(), natural.end());
  if (width == 0) return out;
  const auto needed = [&](bool names_at_min) {
    size_t total = 0, shown = 0;
    for (size_t i = 0; i < cols.size(); ++i) {
      if (!out[i].has_value()) continue;
      ++shown;
      total += cols[i].name && names_at_min ? std::min(natural[i], kMinNameWidth) : natural[i];
    }
    return total + (shown > 0 ? (shown - 1) * kSeparator : 0);
  };
  // Drop columns until the names fit at their minimum width.
  for (;;) {
    if (needed(/*names_at_min=*/true) <= width) break;
    int next = -1;
    for (size_t i = 0; i < cols.size(); ++i) {
      if (!out[i].has_value() || cols[i].drop_order == 0) continue;
      if (next < 0 || cols[i].drop_order < cols[static_cast<size_t>(next)].drop_order) {
        next = static_cast<int>(i);
      }
    }
    if (next < 0) break;
    out[static_cast<size_t>(next)] = std::nullopt;
  }
  if (needed(/*names_at_min=*/false) <= width) return out;
  // Share what is left between the names: each gets at least its minimum,
  // the rest goes to the longer one(s) as evenly as possible.
  const size_t fixed = needed(/*names_at_min=*/true);
  size_t spare = width > fixed ? width - fixed : 0;
  std::vector<size_t> names;
  for (size_t i = 0; i < cols.size(); ++i) {
    if (cols[i].name) {
      names.push_back(i);
      out[i] = std::min(natural[i], kMinNameWidth);
    }
  }
  while (spare > 0) {
    bool grew = false;
    for (size_t i : names) {
      if (spare > 0 && *out[i] < natural[i]) {
        ++*out[i];
        --spare;
        grew = true;
      }
    }
    if (!grew) break;
  }
  return out;
}

}  // namespace

absl::string_view TopSortName(TopSort sort) {
  switch (sort) {
    case TopSort::kName:
      return "name";
    case TopSort::kDlq:
      return "dlq";
    case TopSort::kLag:
      return "lag";
    case TopSort::kRate:
      return "rate";
  }
  return "name";
}

std::optional<TopSort> ParseTopSort(absl::string_view name) {
  for (TopSort s : {TopSort::kName, TopSort::kDlq, TopSort::kLag, TopSort::kRate}) {
    if (TopSortName(s) == name) return s;
  }
  return std::nullopt;
}

TopSort NextTopSort(TopSort sort) {
  switch (sort) {
    case TopSort::kName:
      return TopSort::kDlq;
    case TopSort::kDlq:
      return TopSort::kLag;
    case TopSort::kLag:
      return TopSort::kRate;
    case TopSort::kRate:
      return TopSort::kName;
  }
  return TopSort::kName;
}

std::vector<TopRow> RateTracker::Update(const v1::ListHandlersResponse& response, absl::Time now) {
  std::optional<double> seconds;
  if (previous_time_.has_value() && now > *previous_time_) {
    seconds = absl::ToDoubleSeconds(now - *previous_time_);
  }
  std::map<std::pair<std::string, std::string>, v1::HandlerCounters> current;
  std::vector<TopRow> rows;
  rows.reserve(static_cast<size_t>(response.handlers_size()));
  for (const v1::HandlerInfo& h : response.handlers()) {
    TopRow row;
    row.info = h;
    auto key = std::make_pair(h.handler().channel(), h.handler().handler_id());
    const auto before = previous_.find(key);
    if (seconds.has_value() && before != previous_.end()) {
      const v1::HandlerCounters& b = before->second;
      const v1::HandlerCounters& c = h.counters();
      TopRates r;
      bool reset = false;
      r.deliveries =
          static_cast<double>(Increase(c.deliveries(), b.deliveries(), reset)) / *seconds;
      r.acks = static_cast<double>(Increase(c.acks(), b.acks(), reset)) / *seconds;
      r.nacks = static_cast<double>(Increase(c.nacks(), b.nacks(), reset)) / *seconds;
      r.dead_letters =
          static_cast<double>(Increase(c.dead_letters(), b.dead_letters(), reset)) / *seconds;
      row.rates = r;
      row.counters_reset = reset;
    }
    current[std::move(key)] = h.counters();
    rows.push_back(std::move(row));
  }
  previous_ = std::move(current);
  previous_time_ = now;
  return rows;
}

void SortTopRows(std::vector<TopRow>& rows, TopSort sort) {
  const auto by_name = [](const TopRow& a, const TopRow& b) { return NameKey(a) < NameKey(b); };
  std::function<bool(const TopRow&, const TopRow&)> less;
  switch (sort) {
    case TopSort::kName:
      less = by_name;
      break;
    case TopSort::kDlq:
      less = [&](const TopRow& a, const TopRow& b) {
        if (a.info.dlq_depth() != b.info.dlq_depth()) {
          return a.info.dlq_depth() > b.info.dlq_depth();
        }
        return by_name(a, b);
      };
      break;
    case TopSort::kLag:
      // Unknown (-1) sorts below every known lag.
      less = [&](const TopRow& a, const TopRow& b) {
        if (a.info.lag() != b.info.lag()) return a.info.lag() > b.info.lag();
        return by_name(a, b);
      };
      break;
    case TopSort::kRate:
      less = [&](const TopRow& a, const TopRow& b) {
        const double ra = a.rates.has_value() ? a.rates->deliveries : -1;
        const double rb = b.rates.has_value() ? b.rates->deliveries : -1;
        if (ra != rb) return ra > rb;
        return by_name(a, b);
      };
      break;
  }
  std::stable_sort(rows.begin(), rows.end(), less);
}

std::string FormatRate(const std::optional<double>& rate) {
  if (!rate.has_value()) return "-";
  return absl::StrFormat("%.1f", *rate);
}

std::string RenderTopFrame(const TopFrame& frame, size_t width, size_t height) {
  const std::vector<Column>& cols = Columns();
  std::vector<TopRow> rows = frame.rows;
  SortTopRows(rows, frame.sort);

  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size() + 1);
  std::vector<std::string> header;
  header.reserve(cols.size());
  for (const Column& c : cols) header.emplace_back(c.header);
  cells.push_back(std::move(header));
  for (const TopRow& r : rows) {
    std::vector<std::string> line;
    line.reserve(cols.size());
    for (const Column& c : cols) line.push_back(c.cell(r));
    cells.push_back(std::move(line));
  }
  const std::vector<std::optional<size_t>> widths = Layout(cells, width);

  // How many rows fit under the header lines.
  size_t shown = rows.size();
  bool more_line = false;
  if (height > 0) {
    const size_t room = height > kHeaderLines ? height - kHeaderLines : 0;
    if (rows.size() > room) {
      shown = room > 0 ? room - 1 : 0;
      more_line = room > 0;
    }
  }

  std::vector<std::string> lines = {Title(frame), Totals(frame)};
  // On a screen the error line is always there, so that rows do not move
  // when an error comes or goes.
  if (height > 0 || !frame.error.ok()) lines.push_back(ErrorLine(frame));
  for (size_t r = 0; r <= shown; ++r) {
    const std::vector<std::string>& row = cells[r];
    std::string line;
    bool first = true;
    for (size_t i = 0; i < cols.size(); ++i) {
      if (!widths[i].has_value()) continue;
      if (!first) line.append(kSeparator, ' ');
      first = false;
      line += Pad(cols[i].name ? Shorten(row[i], *widths[i]) : row[i], *widths[i], cols[i].name);
    }
    // The last column may be a padded name: no trailing blanks.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    lines.push_back(std::move(line));
  }
  if (more_line) lines.push_back(absl::StrCat("... ", rows.size() - shown, " more handlers"));

  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (height > 0 && i >= height) break;
    absl::StrAppend(&out, width > 0 ? Prefix(lines[i], width) : lines[i], "\n");
  }
  return out;
}

}  // namespace redrive::ctl
