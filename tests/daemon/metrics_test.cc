// Metrics (R-G2): the exposition text, exactly; histograms' buckets; label
// escaping; the cardinality bound; the catalogue covers every family.
#include "daemon/metrics.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace redrive {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The sample lines of `text` that start with `prefix`.
std::vector<std::string> Lines(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, prefix)) out.emplace_back(line);
  }
  return out;
}

MetricsOptions Options(size_t max_handlers = 10) {
  MetricsOptions o;
  o.max_handlers = max_handlers;
  o.version = "0.1.0";
  o.revision = "abc123";
  return o;
}

TEST(HistogramTest, CountsIntoTheFirstBucketAtOrAboveTheValue) {
  static constexpr double kBounds[] = {0.001, 0.01, 0.1};
  Histogram h(kBounds);
  h.Observe(absl::Microseconds(500));  // ≤ 0.001
  h.Observe(absl::Milliseconds(1));    // exactly 0.001: le is inclusive
  h.Observe(absl::Milliseconds(50));   // ≤ 0.1
  h.Observe(absl::Seconds(3));         // +Inf
  h.Observe(absl::Milliseconds(-5));   // clock went back: counted as 0
  const Histogram::Snapshot s = h.Read();
  EXPECT_THAT(s.cumulative, ::testing::ElementsAre(3, 3, 4, 5));
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum_seconds, 0.0005 + 0.001 + 0.05 + 3);
}

TEST(MetricsTest, HandlerCountersAreRenderedWithChannelAndHandlerLabels) {
  Metrics m(Options());
  HandlerMetrics* h = m.ForHandler("orders", "billing");
  h->deliveries.Add(3);
  h->acks.Add(2);
  h->DeadLettered("terminated");
  h->DeadLettered("max_retries");
  h->DeadLettered("max_retries");
  h->DeadLettered("something new");
  h->settle_latency.Observe(absl::Milliseconds(20));
  EXPECT_EQ(m.ForHandler("orders", "billing"), h);  // the same series again
  const std::string text = m.Render();
  EXPECT_THAT(text, HasSubstr("# HELP redrive_deliveries_total Deliveries handed to Subscribe "
                              "streams.\n# TYPE redrive_deliveries_total counter\n"
                              "redrive_deliveries_total{channel=\"orders\",handler=\"billing\"} "
                              "3\n"));
  EXPECT_THAT(
      Lines(text, "redrive_acks_total{"),
      ::testing::ElementsAre("redrive_acks_total{channel=\"orders\",handler=\"billing\"} 2"));
  EXPECT_THAT(
      Lines(text, "redrive_dead_letters_total{"),
      ::testing::ElementsAre(
          R"(redrive_dead_letters_total{channel="orders",handler="billing",reason="max_retries"} 2)",
          R"(redrive_dead_letters_total{channel="orders",handler="billing",reason="terminated"} 1)",
          R"(redrive_dead_letters_total{channel="orders",handler="billing",reason="poison"} 0)",
          R"(redrive_dead_letters_total{channel="orders",handler="billing",reason="disconnected"} 0)",
          R"(redrive_dead_letters_total{channel="orders",handler="billing",reason="lease_expired"} 0)",
          R"(redrive_dead_letters_total{channel="orders",handler="billing",reason="other"} 1)"));
  EXPECT_EQ(h->dead_letters_total(), 4u);
  const std::vector<std::string> buckets = Lines(text, "redrive_settle_latency_seconds_bucket{");
  ASSERT_EQ(buckets.size(), 17u);  // 16 bounds and +Inf
  EXPECT_EQ(
      buckets[4],
      R"(redrive_settle_latency_seconds_bucket{channel="orders",handler="billing",le="0.025"} 1)");
  EXPECT_EQ(
      buckets[3],
      R"(redrive_settle_latency_seconds_bucket{channel="orders",handler="billing",le="0.01"} 0)");
  EXPECT_EQ(
      buckets.back(),
      R"(redrive_settle_latency_seconds_bucket{channel="orders",handler="billing",le="+Inf"} 1)");
  EXPECT_THAT(
      Lines(text, "redrive_settle_latency_seconds_sum{"),
      ::testing::ElementsAre(
          R"(redrive_settle_latency_seconds_sum{channel="orders",handler="billing"} 0.02)"));
  EXPECT_THAT(Lines(text, "redrive_build_info"),
              ::testing::ElementsAre(R"(redrive_build_info{version="0.1.0",revision="abc123"} 1)"));
}

TEST(MetricsTest, GaugesComeFromTheLatestReadingOnly) {
  Metrics m(Options());
  HandlerGauges g;
  g.channel = "orders";
  g.handler_id = "billing";
  g.in_flight = 4;
  g.dlq_depth = 7;
  g.oldest_dead_letter_age_seconds = 12.5;
  g.lag = -1;  // unknown: no sample
  g.paused = true;
  m.SetHandlerGauges({g});
  std::string text = m.Render();
  EXPECT_THAT(Lines(text, "redrive_dlq_depth{"),
              ::testing::ElementsAre(R"(redrive_dlq_depth{channel="orders",handler="billing"} 7)"));
  EXPECT_THAT(Lines(text, "redrive_dlq_oldest_age_seconds{"),
              ::testing::ElementsAre(
                  R"(redrive_dlq_oldest_age_seconds{channel="orders",handler="billing"} 12.5)"));
  EXPECT_THAT(Lines(text, "redrive_paused{"),
              ::testing::ElementsAre(R"(redrive_paused{channel="orders",handler="billing"} 1)"));
  EXPECT_THAT(Lines(text, "redrive_in_flight{"),
              ::testing::ElementsAre(R"(redrive_in_flight{channel="orders",handler="billing"} 4)"));
  EXPECT_THAT(Lines(text, "redrive_consumer_lag{"), ::testing::IsEmpty());
  EXPECT_THAT(text, HasSubstr("# TYPE redrive_consumer_lag gauge\n"));  // the family stays
  m.SetHandlerGauges({});
  text = m.Render();
  EXPECT_THAT(Lines(text, "redrive_dlq_depth{"), ::testing::IsEmpty());
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabelValue(R"(a"b\c)"
                             "\nd"),
            R"(a\"b\\c\nd)");
  Metrics m(Options());
  m.ForHandler("we\"ird", "h\\1")->acks.Add();
  EXPECT_THAT(m.Render(), HasSubstr(R"(redrive_acks_total{channel="we\"ird",handler="h\\1"} 1)"));
}

TEST(MetricsTest, HandlersOverTheBoundShareTheOverflowSeries) {
  Metrics m(Options(/*max_handlers=*/2));
  HandlerMetrics* a = m.ForHandler("c", "a");
  HandlerMetrics* b = m.ForHandler("c", "b");
  HandlerMetrics* c = m.ForHandler("c", "c");
  HandlerMetrics* d = m.ForHandler("c", "d");
  EXPECT_NE(a, b);
  EXPECT_EQ(c, d);
  EXPECT_EQ(m.Find("c", "c"), nullptr);
  EXPECT_EQ(m.Find("c", "a"), a);
  c->acks.Add();
  d->acks.Add();
  std::vector<HandlerGauges> gauges(3);
  gauges[0].channel = "c";
  gauges[0].handler_id = "z";
  gauges[1].channel = "c";
  gauges[1].handler_id = "a";
  gauges[2].channel = "c";
  gauges[2].handler_id = "b";
  m.SetHandlerGauges(gauges);
  const std::string text = m.Render();
  EXPECT_THAT(
      Lines(text, "redrive_acks_total{"),
      ::testing::ElementsAre(R"(redrive_acks_total{channel="c",handler="a"} 0)",
                             R"(redrive_acks_total{channel="c",handler="b"} 0)",
                             R"(redrive_acks_total{channel="_overflow",handler="_overflow"} 2)"));
  EXPECT_THAT(Lines(text, "redrive_metrics_overflow_registrations_total"),
              ::testing::ElementsAre("redrive_metrics_overflow_registrations_total 2"));
  // Gauges: the first two by channel and handler id.
  EXPECT_THAT(Lines(text, "redrive_dlq_depth{"),
              ::testing::ElementsAre(R"(redrive_dlq_depth{channel="c",handler="a"} 0)",
                                     R"(redrive_dlq_depth{channel="c",handler="b"} 0)"));
  EXPECT_THAT(Lines(text, "redrive_metrics_dropped_handlers"),
              ::testing::ElementsAre("redrive_metrics_dropped_handlers 1"));
}

TEST(MetricsTest, DaemonMetricsAndPublishCodes) {
  Metrics m(Options());
  DaemonMetrics& d = m.daemon();
  d.publish_requests[0][0].Add(5);
  d.publish_requests[1][3].Add();  // PublishBatch INVALID_ARGUMENT
  d.publish_latency[0].Observe(absl::Microseconds(700));
  d.redis_up.Set(1);
  d.grpc_streams[0].Add(2);
  {
    GaugeHold hold(&d.grpc_streams[1]);
    EXPECT_EQ(d.grpc_streams[1].value(), 1);
  }
  EXPECT_EQ(d.grpc_streams[1].value(), 0);
  const std::string text = m.Render();
  EXPECT_THAT(
      Lines(text, "redrive_publish_requests_total{"),
      ::testing::ElementsAre(
          R"(redrive_publish_requests_total{rpc="Publish",code="OK"} 5)",
          R"(redrive_publish_requests_total{rpc="PublishBatch",code="OK"} 0)",
          R"(redrive_publish_requests_total{rpc="PublishBatch",code="INVALID_ARGUMENT"} 1)"));
  EXPECT_THAT(Lines(text, "redrive_publish_latency_seconds_bucket{rpc=\"Publish\",le=\"0.001\"}"),
              ::testing::ElementsAre(
                  R"(redrive_publish_latency_seconds_bucket{rpc="Publish",le="0.001"} 1)"));
  EXPECT_THAT(Lines(text, "redrive_redis_up"), ::testing::ElementsAre("redrive_redis_up 1"));
  EXPECT_THAT(Lines(text, "redrive_grpc_streams{"),
              ::testing::ElementsAre(R"(redrive_grpc_streams{kind="subscribe"} 2)",
                                     R"(redrive_grpc_streams{kind="tail"} 0)"));
  EXPECT_THAT(text, Not(HasSubstr("nan")));
}

// Every family rendered is in the catalogue (README documents the
// catalogue), once, and every catalogue entry is rendered.
TEST(MetricsTest, TheCatalogueIsExactlyWhatIsRendered) {
  Metrics m(Options());
  const std::string text = m.Render();
  std::vector<std::string> rendered;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      rendered.emplace_back(line.substr(0, line.find(' ')));
    }
  }
  std::vector<std::string> catalogue;
  std::set<std::string> unique;
  for (const MetricInfo& info : MetricCatalogue()) {
    catalogue.emplace_back(info.name);
    unique.insert(info.name);
    EXPECT_TRUE(absl::StartsWith(info.name, "redrive_")) << info.name;
    EXPECT_NE(std::string(info.help), "") << info.name;
  }
  EXPECT_EQ(unique.size(), catalogue.size());
  EXPECT_THAT(rendered, ::testing::UnorderedElementsAreArray(catalogue));
}

TEST(MetricsTest, DiscardedCountsGoNowhereVisible) {
  HandlerMetrics::Discarded().acks.Add();
  Metrics m(Options());
  EXPECT_THAT(Lines(m.Render(), "redrive_acks_total{"), ::testing::IsEmpty());
}

}  // namespace
}  // namespace redrive
