// redrivectl top: rates, sorting and frame rendering (client/redrivectl/
// top_view.h) with fixed times and data, the flags (BuildTop), and the
// refresh loop (RunTop) over a fake source writing plain frames. No network,
// no terminal (tests/e2e/redrivectl_top_test.cc drives a real one in tmux).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/redrivectl/commands.h"
#include "client/redrivectl/top.h"
#include "client/redrivectl/top_view.h"
#include "tests/testing/status_matchers.h"

namespace redrive::ctl {
namespace {

using ::testing::ElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1714564800);  // 2024-05-01T12:00:00Z

v1::HandlerInfo Handler(const std::string& channel, const std::string& id) {
  v1::HandlerInfo h;
  h.mutable_handler()->set_channel(channel);
  h.mutable_handler()->set_handler_id(id);
  return h;
}

v1::HandlerInfo WithCounters(v1::HandlerInfo h, uint64_t deliveries, uint64_t acks, uint64_t nacks,
                             uint64_t dead_letters) {
  v1::HandlerCounters* c = h.mutable_counters();
  c->set_deliveries(deliveries);
  c->set_acks(acks);
  c->set_nacks(nacks);
  c->set_dead_letters(dead_letters);
  return h;
}

v1::ListHandlersResponse Response(std::vector<v1::HandlerInfo> handlers) {
  v1::ListHandlersResponse r;
  for (v1::HandlerInfo& h : handlers) *r.add_handlers() = std::move(h);
  return r;
}

std::vector<std::string> Names(const std::vector<TopRow>& rows) {
  std::vector<std::string> out;
  for (const TopRow& r : rows) {
    out.push_back(r.info.handler().channel() + "/" + r.info.handler().handler_id());
  }
  return out;
}

// ------------------------------------------------------------ rates

TEST(RateTrackerTest, FirstSampleHasNoRatesThenIncreasePerSecond) {
  RateTracker t;
  std::vector<TopRow> first =
      t.Update(Response({WithCounters(Handler("o", "A"), 10, 8, 1, 1)}), kT0);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_FALSE(first[0].rates.has_value());

  std::vector<TopRow> second =
      t.Update(Response({WithCounters(Handler("o", "A"), 30, 23, 2, 4)}), kT0 + absl::Seconds(2));
  ASSERT_EQ(second.size(), 1u);
  ASSERT_TRUE(second[0].rates.has_value());
  EXPECT_EQ(second[0].rates->deliveries, 10.0);  // (30 - 10) / 2 s
  EXPECT_EQ(second[0].rates->acks, 7.5);
  EXPECT_EQ(second[0].rates->nacks, 0.5);
  EXPECT_EQ(second[0].rates->dead_letters, 1.5);
  EXPECT_FALSE(second[0].counters_reset);
  EXPECT_EQ(second[0].info.counters().deliveries(), 30u);

  // Unchanged counters over 500 ms: zero, not unset.
  std::vector<TopRow> third = t.Update(Response({WithCounters(Handler("o", "A"), 30, 23, 2, 4)}),
                                       kT0 + absl::Milliseconds(2500));
  ASSERT_TRUE(third[0].rates.has_value());
  EXPECT_EQ(third[0].rates->deliveries, 0.0);
  EXPECT_EQ(FormatRate(third[0].rates->deliveries), "0.0");
}

TEST(RateTrackerTest, ACounterGoingDownCountsTheNewValueSinceTheRestartNeverNegative) {
  RateTracker t;
  t.Update(Response({WithCounters(Handler("o", "A"), 1000, 990, 5, 5)}), kT0);
  // The daemon restarted: its counters start again from 0.
  std::vector<TopRow> rows =
      t.Update(Response({WithCounters(Handler("o", "A"), 4, 3, 0, 1)}), kT0 + absl::Seconds(2));
  ASSERT_TRUE(rows[0].rates.has_value());
  EXPECT_EQ(rows[0].rates->deliveries, 2.0);
  EXPECT_EQ(rows[0].rates->acks, 1.5);
  EXPECT_EQ(rows[0].rates->nacks, 0.0);
  EXPECT_EQ(rows[0].rates->dead_letters, 0.5);
  EXPECT_TRUE(rows[0].counters_reset);
  // And from there on, differences again.
  rows =
      t.Update(Response({WithCounters(Handler("o", "A"), 14, 13, 0, 1)}), kT0 + absl::Seconds(3));
  EXPECT_EQ(rows[0].rates->deliveries, 10.0);
  EXPECT_FALSE(rows[0].counters_reset);
}

TEST(RateTrackerTest, NewForgottenAndSameTimeSamplesHaveNoRates) {
  RateTracker t;
  t.Update(Response({WithCounters(Handler("o", "A"), 1, 1, 0, 0)}), kT0);
  std::vector<TopRow> rows = t.Update(Response({WithCounters(Handler("o", "A"), 3, 1, 0, 0),
                                                WithCounters(Handler("o", "B"), 9, 0, 0, 0)}),
                                      kT0 + absl::Seconds(1));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].rates->deliveries, 2.0);
  EXPECT_FALSE(rows[1].rates.has_value());  // B is new
  // A missing from one sample is forgotten: no rate when it comes back.
  t.Update(Response({WithCounters(Handler("o", "B"), 9, 0, 0, 0)}), kT0 + absl::Seconds(2));
  rows = t.Update(Response({WithCounters(Handler("o", "A"), 50, 1, 0, 0)}), kT0 + absl::Seconds(3));
  EXPECT_FALSE(rows[0].rates.has_value());
  // No time passed (a clock that did not move): no division by zero.
  rows = t.Update(Response({WithCounters(Handler("o", "A"), 60, 1, 0, 0)}), kT0 + absl::Seconds(3));
  EXPECT_FALSE(rows[0].rates.has_value());
}

// ------------------------------------------------------------ sorting

std::vector<TopRow> SortSample() {
  std::vector<TopRow> rows(4);
  rows[0].info = Handler("payments", "refunds");
  rows[0].info.set_lag(-1);
  rows[0].info.set_dlq_depth(2);
  rows[1].info = Handler("audit", "x");
  rows[1].info.set_lag(12);
  rows[1].info.set_dlq_depth(0);
  rows[1].rates = TopRates{3, 0, 0, 0};
  rows[2].info = Handler("orders", "billing");
  rows[2].info.set_lag(0);
  rows[2].info.set_dlq_depth(7);
  rows[2].rates = TopRates{5, 0, 0, 0};
  rows[3].info = Handler("orders", "audit");
  rows[3].info.set_lag(0);
  rows[3].info.set_dlq_depth(2);
  rows[3].rates = TopRates{3, 0, 0, 0};
  return rows;
}

TEST(SortTopRowsTest, EachKeyDescendingWithTiesByName) {
  std::vector<TopRow> rows = SortSample();
  SortTopRows(rows, TopSort::kName);
  EXPECT_THAT(Names(rows),
              ElementsAre("audit/x", "orders/audit", "orders/billing", "payments/refunds"));
  SortTopRows(rows, TopSort::kDlq);
  EXPECT_THAT(Names(rows),
              ElementsAre("orders/billing", "orders/audit", "payments/refunds", "audit/x"));
  SortTopRows(rows, TopSort::kLag);  // unknown lag last
  EXPECT_THAT(Names(rows),
              ElementsAre("audit/x", "orders/audit", "orders/billing", "payments/refunds"));
  SortTopRows(rows, TopSort::kRate);  // no rate yet last
  EXPECT_THAT(Names(rows),
              ElementsAre("orders/billing", "audit/x", "orders/audit", "payments/refunds"));
}

TEST(SortTopRowsTest, SortKeysCycleAndParse) {
  EXPECT_EQ(NextTopSort(TopSort::kName), TopSort::kDlq);
  EXPECT_EQ(NextTopSort(TopSort::kDlq), TopSort::kLag);
  EXPECT_EQ(NextTopSort(TopSort::kLag), TopSort::kRate);
  EXPECT_EQ(NextTopSort(TopSort::kRate), TopSort::kName);
  for (TopSort s : {TopSort::kName, TopSort::kDlq, TopSort::kLag, TopSort::kRate}) {
    EXPECT_EQ(ParseTopSort(TopSortName(s)), s);
  }
  EXPECT_EQ(ParseTopSort("DLQ"), std::nullopt);
  EXPECT_EQ(ParseTopSort(""), std::nullopt);
}

// ------------------------------------------------------------ frames

TopFrame SampleFrame() {
  TopFrame f;
  f.address = "127.0.0.1:50051";
  f.now = kT0 + absl::Seconds(5);
  f.interval = absl::Seconds(1);
  f.readiness = "SERVING";
  f.rows_time = f.now;
  TopRow billing;
  billing.info = WithCounters(Handler("orders", "billing"), 120, 100, 10, 10);
  billing.info.set_connected_streams(2);
  billing.info.set_in_flight(3);
  billing.info.set_pending(4);
  billing.info.set_lag(0);
  billing.info.set_retry_depth(2);
  billing.info.set_dlq_depth(7);
  billing.info.set_oldest_dead_letter_age_ms(65000);
  billing.rates = TopRates{5, 4.5, 0.5, 1};
  TopRow refunds;
  refunds.info = Handler("payments", "a-very-long-handler-name-for-refunds");
  refunds.info.set_lag(-1);
  refunds.info.set_paused(true);
  TopRow audit;
  audit.info = WithCounters(Handler("audit", "x"), 7, 7, 0, 0);
  audit.info.set_connected_streams(1);
  audit.info.set_lag(12);
  audit.info.set_dlq_depth(1);
  audit.info.set_oldest_dead_letter_age_ms(3600000);
  audit.rates = TopRates{2, 2, 0, 0};
  f.rows = {billing, refunds, audit};
  return f;
}

TEST(RenderTopFrameTest, UnlimitedSizeShowsEveryColumnSortedByName) {
  // Not a screen (height 0): no empty error line.
  EXPECT_EQ(RenderTopFrame(SampleFrame(), 0, 0),
            "redrive top  127.0.0.1:50051  2024-05-01T12:00:05Z  every 1s  sort: name\n"
            "readiness SERVING  handlers 3  in flight 3  pending 4  retry 2  dlq 8  deliveries/s "
            "7.0  acks/s 6.5  nacks/s 0.5  dead letters/s 1.0\n"
            "CHANNEL   HANDLER                               CONN  INFL  PEND  LAG  RETRY  DLQ  "
            "OLDEST  PAUSED  DELIV  DLV/S  ACK/S  NACK/S  DL/S\n"
            "audit     x                                        1     0     0   12      0    1  "
            "1h0m0s      no      7    2.0    2.0     0.0   0.0\n"
            "orders    billing                                  2     3     4    0      2    7    "
            "1m5s      no    120    5.0    4.5     0.5   1.0\n"
            "payments  a-very-long-handler-name-for-refunds     0     0     0    ?      0    0  "
            "     -     yes      0      -      -       -     -\n");
}

TEST(RenderTopFrameTest, NarrowTerminalShortensNamesThenDropsColumns) {
  TopFrame f = SampleFrame();
  f.interactive = true;
  f.sort = TopSort::kDlq;
  // 120 columns: every column, the long handler name shortened with "..."
  // to what is left (24), the totals line cut.
  EXPECT_EQ(RenderTopFrame(f, 120, 30),
            "redrive top  127.0.0.1:50051  2024-05-01T12:00:05Z  every 1s  sort: dlq  (q quit, s "
            "sort)\n"
            "readiness SERVING  handlers 3  in flight 3  pending 4  retry 2  dlq 8  deliveries/s "
            "7.0  acks/s 6.5  nacks/s 0.5  dead l\n"
            "\n"
            "CHANNEL   HANDLER                   CONN  INFL  PEND  LAG  RETRY  DLQ  OLDEST  "
            "PAUSED  DELIV  DLV/S  ACK/S  NACK/S  DL/S\n"
            "orders    billing                      2     3     4    0      2    7    1m5s      "
            "no    120    5.0    4.5     0.5   1.0\n"
            "audit     x                            1     0     0   12      0    1  1h0m0s      "
            "no      7    2.0    2.0     0.0   0.0\n"
            "payments  a-very-long-handler-n...     0     0     0    ?      0    0       -     "
            "yes      0      -      -       -     -\n");
  // 60 columns: with the names at 10 it is still 106 wide, so DELIV,
  // NACK/S, ACK/S, OLDEST, CONN, INFL and PAUSED go (56); the names share
  // the 4 columns left.
  EXPECT_EQ(RenderTopFrame(f, 60, 30),
            "redrive top  127.0.0.1:50051  2024-05-01T12:00:05Z  every 1s\n"
            "readiness SERVING  handlers 3  in flight 3  pending 4  retry\n"
            "\n"
            "CHANNEL   HANDLER         PEND  LAG  RETRY  DLQ  DLV/S  DL/S\n"
            "orders    billing            4    0      2    7    5.0   1.0\n"
            "audit     x                  0   12      0    1    2.0   0.0\n"
            "payments  a-very-long...     0    ?      0    0      -     -\n");
}

TEST(RenderTopFrameTest, ShortTerminalSumsUpTheRowsThatDoNotFit) {
  TopFrame f = SampleFrame();
  const std::string frame = RenderTopFrame(f, 0, 6);
  EXPECT_EQ(frame,
            "redrive top  127.0.0.1:50051  2024-05-01T12:00:05Z  every 1s  sort: name\n"
            "readiness SERVING  handlers 3  in flight 3  pending 4  retry 2  dlq 8  deliveries/s "
            "7.0  acks/s 6.5  nacks/s 0.5  dead letters/s 1.0\n"
            "\n"
            "CHANNEL   HANDLER                               CONN  INFL  PEND  LAG  RETRY  DLQ  "
            "OLDEST  PAUSED  DELIV  DLV/S  ACK/S  NACK/S  DL/S\n"
            "audit     x                                        1     0     0   12      0    1  "
            "1h0m0s      no      7    2.0    2.0     0.0   0.0\n"
            "... 2 more handlers\n");
  std::vector<std::string> lines = absl::StrSplit(RenderTopFrame(f, 0, 3), '\n');
  EXPECT_EQ(lines.size(), 4u);  // 3 lines and the empty string after the last '\n'
}

TEST(RenderTopFrameTest, ErrorLineKeepsTheLastRowsAndSaysFromWhen) {
  TopFrame f = SampleFrame();
  f.rows.resize(1);
  f.error = absl::UnavailableError("failed to connect to all addresses");
  f.readiness = "?";
  f.rows_time = kT0 + absl::Seconds(2);
  EXPECT_EQ(RenderTopFrame(f, 0, 0),
            "redrive top  127.0.0.1:50051  2024-05-01T12:00:05Z  every 1s  sort: name\n"
            "readiness ?  handlers 1  in flight 3  pending 4  retry 2  dlq 7  deliveries/s 5.0  "
            "acks/s 4.5  nacks/s 0.5  dead letters/s 1.0\n"
            "error: UNAVAILABLE: failed to connect to all addresses (retrying every 1s; rows from "
            "12:00:02Z)\n"
            "CHANNEL  HANDLER  CONN  INFL  PEND  LAG  RETRY  DLQ  OLDEST  PAUSED  DELIV  DLV/S  "
            "ACK/S  NACK/S  DL/S\n"
            "orders   billing     2     3     4    0      2    7    1m5s      no    120    5.0    "
            "4.5     0.5   1.0\n");
  // Never fetched: no rows, no "rows from".
  TopFrame never;
  never.address = "unix:/run/redrive.sock";
  never.now = kT0;
  never.interval = absl::Milliseconds(500);
  never.rows_time = absl::InfinitePast();
  never.error = absl::UnauthenticatedError("missing bearer token");
  EXPECT_EQ(RenderTopFrame(never, 0, 0),
            "redrive top  unix:/run/redrive.sock  2024-05-01T12:00:00Z  every 500ms  sort: name\n"
            "readiness ?  handlers 0  in flight 0  pending 0  retry 0  dlq 0  deliveries/s -  "
            "acks/s -  nacks/s -  dead letters/s -\n"
            "error: UNAUTHENTICATED: missing bearer token (retrying every 500ms)\n"
            "CHANNEL  HANDLER  CONN  INFL  PEND  LAG  RETRY  DLQ  OLDEST  PAUSED  DELIV  DLV/S  "
            "ACK/S  NACK/S  DL/S\n");
}

// ------------------------------------------------------------ flags

absl::StatusOr<TopPlan> Build(std::vector<std::string> args) {
  absl::StatusOr<ParsedArgs> p = ParseArgs(args, {});
  if (!p.ok()) return p.status();
  return BuildTop(*p);
}

std::string BuildError(std::vector<std::string> args) {
  absl::StatusOr<TopPlan> plan = Build(std::move(args));
  return plan.ok() ? "" : std::string(plan.status().message());
}

TEST(BuildTopTest, DefaultsAndFlags) {
  absl::StatusOr<TopPlan> d = Build({"top"});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->interval, absl::Seconds(1));
  EXPECT_EQ(d->iterations, 0u);
  EXPECT_EQ(d->sort, TopSort::kName);
  EXPECT_EQ(d->request.channel(), "");

  absl::StatusOr<TopPlan> p =
      Build({"top", "--interval", "250", "--iterations=3", "--sort", "lag", "--channel", "orders"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->interval, absl::Milliseconds(250));
  EXPECT_EQ(p->iterations, 3u);
  EXPECT_EQ(p->sort, TopSort::kLag);
  EXPECT_EQ(p->request.channel(), "orders");
}

TEST(BuildTopTest, BadValuesAreUsageErrors) {
  EXPECT_EQ(BuildError({"top", "--interval", "99"}),
            "--interval: '99' is not an integer in 100..60000");
  EXPECT_EQ(BuildError({"top", "--interval", "60001"}),
            "--interval: '60001' is not an integer in 100..60000");
  EXPECT_EQ(BuildError({"top", "--iterations", "-1"}),
            "--iterations: '-1' is not an integer in 0..1000000");
  EXPECT_EQ(BuildError({"top", "--sort", "size"}),
            "--sort: 'size' is not one of name, dlq, lag, rate");
  EXPECT_EQ(BuildError({"top", "--channel="}), "--channel: empty channel");
  EXPECT_EQ(BuildError({"--json", "top"}),
            "top has no --json output (use 'redrivectl --json handlers' in scripts)");
  EXPECT_EQ(BuildError({"top", "orders"}),
            "usage: redrivectl top [flags] (see redrivectl top --help)");
}

// ------------------------------------------------------------ the loop

// stdin and stdout that are not terminals: RunTop prints plain frames.
struct NotATerminal {
  NotATerminal() {
    if (pipe(fds) != 0) ADD_FAILURE() << "pipe";
  }
  ~NotATerminal() {
    close(fds[0]);
    close(fds[1]);
  }
  TopTerminal terminal() const { return {fds[0], fds[1]}; }
  int fds[2] = {-1, -1};
};

TEST(RunTopTest, PlainFramesUntilIterationsWithRatesFromTheSecond) {
  TopPlan plan;
  plan.interval = absl::Milliseconds(100);
  plan.iterations = 3;
  int calls = 0;
  TopSource source;
  source.list_handlers = [&calls]() -> absl::StatusOr<v1::ListHandlersResponse> {
    ++calls;
    if (calls == 2) return absl::UnavailableError("daemon restarting");
    return Response({WithCounters(Handler("orders", "billing"), 10 * calls, 0, 0, 0)});
  };
  source.ready = []() -> absl::StatusOr<bool> { return true; };
  std::istringstream in;
  std::ostringstream out, err;
  Interrupter interrupter;
  NotATerminal fds;
  const absl::Time start = absl::Now();
  EXPECT_EQ(RunTop(plan, "127.0.0.1:1", source, fds.terminal(), {in, out, err}, interrupter), 0);
  // Three refreshes 100 ms apart.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(err.str(), "");
  std::vector<std::string> frames = absl::StrSplit(out.str(), "\n\n");
  ASSERT_EQ(frames.size(), 3u) << out.str();
  // Rows: no rate on the first frame, the failed refresh keeps them (only
  // its frame has an error line), the third compares with the first
  // (10 -> 30 deliveries).
  std::vector<std::string> first = absl::StrSplit(frames[0], '\n');
  ASSERT_EQ(first.size(), 4u) << frames[0];
  EXPECT_EQ(
      first[1],
      "readiness SERVING  handlers 1  in flight 0  pending 0  retry 0  dlq 0  deliveries/s -  "
      "acks/s -  nacks/s -  dead letters/s -");
  EXPECT_EQ(
      first[3],
      "orders   billing     0     0     0    0      0    0       -      no     10      -      "
      "-       -     -");
  std::vector<std::string> second = absl::StrSplit(frames[1], '\n');
  ASSERT_EQ(second.size(), 5u) << frames[1];
  EXPECT_THAT(second[2], ::testing::StartsWith(
                             "error: UNAVAILABLE: daemon restarting (retrying every 100ms; rows "
                             "from "));
  EXPECT_EQ(second[4], first[3]);
  std::vector<std::string> third = absl::StrSplit(frames[2], '\n');
  ASSERT_EQ(third.size(), 5u) << frames[2];
  EXPECT_EQ(third[4], "");
  EXPECT_THAT(third[3], ::testing::StartsWith(
                            "orders   billing     0     0     0    0      0    0       -      no   "
                            "  30  "));
  // DLV/S: 20 deliveries over the ~200 ms from the first refresh.
  std::vector<std::string> cells = absl::StrSplit(third[3], ' ', absl::SkipEmpty());
  ASSERT_EQ(cells.size(), 15u) << third[3];
  double rate = 0;
  ASSERT_TRUE(absl::SimpleAtod(cells[11], &rate)) << third[3];
  EXPECT_GT(rate, 0);
  EXPECT_LE(rate, 110.0);       // (a refresh is timed after its call)
  EXPECT_EQ(cells[12], "0.0");  // ACK/S
}

TEST(RunTopTest, LastRefreshFailedExitsWithItsCodeAndAnInterruptStopsWithZero) {
  TopPlan plan;
  plan.interval = absl::Milliseconds(100);
  plan.iterations = 1;
  TopSource source;
  source.list_handlers = []() -> absl::StatusOr<v1::ListHandlersResponse> {
    return absl::UnauthenticatedError("missing bearer token");
  };
  source.ready = []() -> absl::StatusOr<bool> { return absl::UnavailableError("down"); };
  std::istringstream in;
  std::ostringstream out, err;
  Interrupter interrupter;
  NotATerminal fds;
  EXPECT_EQ(RunTop(plan, "a", source, fds.terminal(), {in, out, err}, interrupter), 16);
  EXPECT_THAT(out.str(), ::testing::HasSubstr(
                             "\nreadiness ?  handlers 0  in flight 0  pending 0  retry 0  dlq 0  "
                             "deliveries/s -  acks/s -  nacks/s -  dead letters/s -\n"
                             "error: UNAUTHENTICATED: missing bearer token (retrying every "
                             "100ms)\n"));

  // Until interrupted (iterations 0): the interrupt ends it with 0 although
  // every refresh failed.
  plan.iterations = 0;
  plan.interval = absl::Seconds(60);
  std::ostringstream out2;
  std::thread stopper([&interrupter] {
    // Until RunTop installed its hook (at most 10 s).
    for (int i = 0; i < 2000 && !interrupter.Interrupt(); ++i) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  const absl::Time start = absl::Now();
  EXPECT_EQ(RunTop(plan, "a", source, fds.terminal(), {in, out2, err}, interrupter), 0);
  stopper.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_THAT(out2.str(), ::testing::HasSubstr("error: UNAUTHENTICATED"));
}

}  // namespace
}  // namespace redrive::ctl
