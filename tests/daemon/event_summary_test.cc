// EventSummary (issue 10 item 14b): one info line per handler per interval
// instead of one per dead letter or expired lease. The clock is injected.
#include "daemon/event_summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace redrive {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixMillis(1'700'000'000'000);

TEST(EventSummaryTest, OneLinePerHandlerPerIntervalWithReasonsAndLeases) {
  EventSummary summary(absl::Seconds(10), kT0);
  for (int i = 0; i < 1000; ++i) summary.DeadLettered("orders", "billing", "max_retries");
  summary.DeadLettered("orders", "billing", "terminated");
  summary.DeadLettered("orders", "billing", "disconnected");
  for (int i = 0; i < 3; ++i) summary.LeaseExpired("orders", "billing");
  summary.LeaseExpired("orders", "audit");
  summary.DeadLettered("audit-log", "billing", "poison");

  // Not due yet: nothing, and nothing lost.
  EXPECT_THAT(summary.Report(kT0 + absl::Milliseconds(9999)), IsEmpty());
  EXPECT_THAT(summary.Report(kT0 + absl::Seconds(10)),
              ElementsAre("handler 'billing' on 'audit-log' in the last 10s: 1 dead-lettered "
                          "(poison 1)",
                          "handler 'audit' on 'orders' in the last 10s: 1 lease expired",
                          "handler 'billing' on 'orders' in the last 10s: 1002 dead-lettered "
                          "(disconnected 1, max_retries 1000, terminated 1), 3 leases expired"));
  // The counts started again; the next report is due 10 s after that one.
  summary.LeaseExpired("orders", "billing");
  EXPECT_THAT(summary.Report(kT0 + absl::Seconds(19)), IsEmpty());
  EXPECT_THAT(summary.Report(kT0 + absl::Seconds(20)),
              ElementsAre("handler 'billing' on 'orders' in the last 10s: 1 lease expired"));
  // A quiet interval reports nothing.
  EXPECT_THAT(summary.Report(kT0 + absl::Seconds(30)), IsEmpty());
}

TEST(EventSummaryTest, ReportNowIgnoresTheDueTimeAndNamesTheRealWindow) {
  EventSummary summary(absl::Seconds(10), kT0);
  summary.DeadLettered("orders", "billing", "max_retries");
  EXPECT_THAT(summary.ReportNow(kT0 + absl::Milliseconds(2500)),
              ElementsAre("handler 'billing' on 'orders' in the last 2.5s: 1 dead-lettered "
                          "(max_retries 1)"));
  EXPECT_THAT(summary.ReportNow(kT0 + absl::Seconds(3)), IsEmpty());
  // A late report names how long its window really was.
  summary.LeaseExpired("orders", "billing");
  summary.LeaseExpired("orders", "billing");
  EXPECT_THAT(summary.Report(kT0 + absl::Seconds(25)),
              ElementsAre("handler 'billing' on 'orders' in the last 22s: 2 leases expired"));
}

}  // namespace
}  // namespace redrive
