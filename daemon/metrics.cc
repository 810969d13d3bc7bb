#include "daemon/metrics.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/check.h"

namespace redrive {
namespace {

// Bucket upper bounds, seconds.
// Delivery to settlement: handlers run from milliseconds to minutes.
constexpr double kSettleBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,      2.5,   5,    10,    30,   60,  300};
// Publish: one Redis round trip plus gRPC.
constexpr double kPublishBuckets[] = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,   0.05,   0.1,   0.25,   0.5,   1};
// A PING.
constexpr double kRttBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                  0.01,   0.025,   0.05,   0.1,   0.25,   1};

constexpr const char* kGrpcCodeNames[kGrpcCodes] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};
constexpr const char* kPublishRpcNames[] = {"Publish", "PublishBatch"};
constexpr const char* kStreamKindNames[] = {"subscribe", "tail"};

constexpr absl::string_view kOverflow = "_overflow";

constexpr MetricInfo kCatalogue[] = {
#define REDRIVE_HANDLER_COUNTER_INFO(field, name, help) {name, "counter", "channel, handler", help},
    REDRIVE_HANDLER_COUNTERS(REDRIVE_HANDLER_COUNTER_INFO)
#undef REDRIVE_HANDLER_COUNTER_INFO
        {"redrive_dead_letters_total", "counter", "channel, handler, reason",
         "Entries appended to the handler's dead-letter stream, by reason."},
    {"redrive_settle_latency_seconds", "histogram", "channel, handler",
     "Time from a delivery to its ACK, NACK or TERMINATE."},
    {"redrive_in_flight", "gauge", "channel, handler",
     "Deliveries leased to this daemon's Subscribe streams and not settled."},
    {"redrive_connected_streams", "gauge", "channel, handler",
     "Subscribe streams connected to this daemon for the handler."},
    {"redrive_pending", "gauge", "channel, handler",
     "Entries delivered and not acknowledged (main and retry groups, all daemons)."},
    {"redrive_consumer_lag", "gauge", "channel, handler",
     "Entries of the channel's stream the handler's group has not read yet."},
    {"redrive_retry_depth", "gauge", "channel, handler",
     "Failed attempts waiting for their retry (due set and retry stream)."},
    {"redrive_dlq_depth", "gauge", "channel, handler", "Entries in the dead-letter stream."},
    {"redrive_dlq_oldest_age_seconds", "gauge", "channel, handler",
     "Age of the oldest dead letter; 0 when the DLQ is empty."},
    {"redrive_paused", "gauge", "channel, handler", "1 while the handler is paused."},
    {"redrive_publish_latency_seconds", "histogram", "rpc",
     "Time from receiving a Publish or PublishBatch to its reply."},
    {"redrive_publish_requests_total", "counter", "rpc, code",
     "Publish and PublishBatch calls by gRPC status code."},
    {"redrive_redis_rtt_seconds", "histogram", "", "Round-trip time of the health PING to Redis."},
    {"redrive_redis_up", "gauge", "", "1 while Redis answers the health PING."},
    {"redrive_redis_reconnects_total", "counter", "",
     "Connections to Redis established again after one was lost."},
    {"redrive_redis_primary_changes_total", "counter", "",
     "Times Sentinel named another primary (redis-sentinel:// only)."},
    {"redrive_grpc_streams", "gauge", "kind", "Open Subscribe and Tail streams."},
    {"redrive_metrics_collect_errors_total", "counter", "",
     "Refreshes of the Redis-derived gauges that failed (the last values stay)."},
    {"redrive_metrics_overflow_registrations_total", "counter", "",
     "Registrations counted under handler=\"_overflow\" (over --metrics-max-handlers)."},
    {"redrive_metrics_dropped_handlers", "gauge", "",
     "Handlers whose gauges were not exported at the last refresh (over "
     "--metrics-max-handlers)."},
    {"redrive_build_info", "gauge", "version, revision", "Always 1; the labels name the build."},
};

const MetricInfo& Info(absl::string_view name) {
  for (const MetricInfo& m : kCatalogue) {
    if (m.name == name) return m;
  }
  REDRIVE_CHECK(false) << "metric " << name << " is not in the catalogue";
  return kCatalogue[0];
}

std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat("%.9g", v);
}

// Writes the exposition, family by family.
class Writer {
 public:
  void Family(absl::string_view name) {
    const MetricInfo& m = Info(name);
    absl::StrAppend(&out_, "# HELP ", m.name, " ", m.help, "\n# TYPE ", m.name, " ", m.type, "\n");
  }
  // name{labels} value; `labels` is already formatted (may be empty).
  void Sample(absl::string_view name, absl::string_view labels, absl::string_view value) {
    absl::StrAppend(&out_, name);
    if (!labels.empty()) absl::StrAppend(&out_, "{", labels, "}");
    absl::StrAppend(&out_, " ", value, "\n");
  }
  void Sample(absl::string_view name, absl::string_view labels, uint64_t value) {
    Sample(name, labels, absl::StrCat(value));
  }
  void Histogram(absl::string_view name, absl::string_view labels, const Histogram& h) {
    const Histogram::Snapshot s = h.Read();
    const std::string prefix = labels.empty() ? "" : absl::StrCat(labels, ",");
    const std::string bucket = absl::StrCat(name, "_bucket");
    for (size_t i = 0; i < s.bounds.size(); ++i) {
      Sample(bucket, absl::StrCat(prefix, "le=\"", FormatDouble(s.bounds[i]), "\""),
             s.cumulative[i]);
    }
    Sample(bucket, absl::StrCat(prefix, "le=\"+Inf\""), s.cumulative.back());
    Sample(absl::StrCat(name, "_sum"), labels, FormatDouble(s.sum_seconds));
    Sample(absl::StrCat(name, "_count"), labels, s.count);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string HandlerLabels(absl::string_view channel, absl::string_view handler) {
  return absl::StrCat("channel=\"", EscapeLabelValue(channel), "\",handler=\"",
                      EscapeLabelValue(handler), "\"");
}

}  // namespace

Histogram::Histogram(absl::Span<const double> bounds_seconds)
    : bounds_(bounds_seconds.begin(), bounds_seconds.end()) {
  REDRIVE_CHECK(bounds_.size() <= kMaxBuckets) << "too many histogram buckets";
  REDRIVE_CHECK(std::is_sorted(bounds_.begin(), bounds_.end())) << "buckets must ascend";
  for (double b : bounds_) bounds_ns_.push_back(static_cast<int64_t>(std::llround(b * 1e9)));
}

void Histogram::Observe(absl::Duration d) {
  const int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(d));
  size_t i = 0;
  while (i < bounds_ns_.size() && ns > bounds_ns_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  s.count = running;
  s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

DeadLetterReason ParseDeadLetterReason(absl::string_view reason) {
#define REDRIVE_REASON_PARSE(id, name) \
  if (reason == (name)) return DeadLetterReason::id;
  REDRIVE_DEAD_LETTER_REASONS(REDRIVE_REASON_PARSE)
#undef REDRIVE_REASON_PARSE
  return DeadLetterReason::kOther;
}

absl::string_view DeadLetterReasonName(DeadLetterReason reason) {
  static constexpr const char* kNames[] = {
#define REDRIVE_REASON_NAME(id, name) name,
      REDRIVE_DEAD_LETTER_REASONS(REDRIVE_REASON_NAME)
#undef REDRIVE_REASON_NAME
  };
  static_assert(std::size(kNames) == kDeadLetterReasons);
  return kNames[static_cast<size_t>(reason)];
}

HandlerMetrics::HandlerMetrics() : settle_latency(kSettleBuckets) {}

uint64_t HandlerMetrics::dead_letters_total() const {
  uint64_t total = 0;
  for (const Counter& c : dead_letters) total += c.value();
  return total;
}

HandlerMetrics& HandlerMetrics::Discarded() {
  static HandlerMetrics* discarded = new HandlerMetrics();
  return *discarded;
}

DaemonMetrics::DaemonMetrics()
    : publish_latency{Histogram(kPublishBuckets), Histogram(kPublishBuckets)},
      redis_rtt(kRttBuckets) {}

Counter& RedisReconnects() {
  static Counter* counter = new Counter();
  return *counter;
}

Counter& RedisPrimaryChanges() {
  static Counter* counter = new Counter();
  return *counter;
}

absl::Span<const MetricInfo> MetricCatalogue() { return kCatalogue; }

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

Metrics::Metrics(MetricsOptions options) : options_(std::move(options)) {}

HandlerMetrics* Metrics::ForHandler(absl::string_view channel, absl::string_view handler_id) {
  absl::MutexLock lock(&mu_);
  Key key{std::string(channel), std::string(handler_id)};
  auto it = handlers_.find(key);
  if (it != handlers_.end()) return it->second.get();
  if (handlers_.size() >= options_.max_handlers) {
    ++overflowed_;
    if (overflow_ == nullptr) overflow_ = std::make_unique<HandlerMetrics>();
    return overflow_.get();
  }
  auto created = std::make_unique<HandlerMetrics>();
  HandlerMetrics* raw = created.get();
  handlers_.emplace(std::move(key), std::move(created));
  return raw;
}

const HandlerMetrics* Metrics::Find(absl::string_view channel, absl::string_view handler_id) const {
  absl::MutexLock lock(&mu_);
  auto it = handlers_.find(Key{std::string(channel), std::string(handler_id)});
  return it == handlers_.end() ? nullptr : it->second.get();
}

void Metrics::SetHandlerGauges(std::vector<HandlerGauges> gauges) {
  std::sort(gauges.begin(), gauges.end(), [](const HandlerGauges& a, const HandlerGauges& b) {
    return std::tie(a.channel, a.handler_id) < std::tie(b.channel, b.handler_id);
  });
  uint64_t dropped = 0;
  if (gauges.size() > options_.max_handlers) {
    dropped = gauges.size() - options_.max_handlers;
    gauges.resize(options_.max_handlers);
  }
  absl::MutexLock lock(&mu_);
  gauges_ = std::move(gauges);
  gauges_dropped_ = dropped;
}

std::string Metrics::Render() const {
  absl::MutexLock lock(&mu_);
  Writer w;
  // Every handler with counters, by channel and handler id, then overflow.
  std::vector<std::pair<std::string, const HandlerMetrics*>> rows;
  rows.reserve(handlers_.size() + 1);
  for (const auto& [key, m] : handlers_) {
    rows.emplace_back(HandlerLabels(key.first, key.second), m.get());
  }
  if (overflow_ != nullptr) rows.emplace_back(HandlerLabels(kOverflow, kOverflow), overflow_.get());

#define REDRIVE_HANDLER_COUNTER_RENDER(field, name, help) \
  w.Family(name);                                         \
  for (const auto& [labels, m] : rows) w.Sample(name, labels, m->field.value());
  REDRIVE_HANDLER_COUNTERS(REDRIVE_HANDLER_COUNTER_RENDER)
#undef REDRIVE_HANDLER_COUNTER_RENDER

  w.Family("redrive_dead_letters_total");
  for (const auto& [labels, m] : rows) {
    for (size_t r = 0; r < kDeadLetterReasons; ++r) {
      w.Sample("redrive_dead_letters_total",
               absl::StrCat(labels, ",reason=\"",
                            DeadLetterReasonName(static_cast<DeadLetterReason>(r)), "\""),
               m->dead_letters[r].value());
    }
  }
  w.Family("redrive_settle_latency_seconds");
  for (const auto& [labels, m] : rows) {
    w.Histogram("redrive_settle_latency_seconds", labels, m->settle_latency);
  }

  auto gauge = [&w](const std::vector<HandlerGauges>& gauges, absl::string_view name,
                    auto value_of) {
    w.Family(name);
    for (const HandlerGauges& g : gauges) {
      const std::optional<std::string> v = value_of(g);
      if (v.has_value()) w.Sample(name, HandlerLabels(g.channel, g.handler_id), *v);
    }
  };
  auto integer = [](int64_t v) -> std::optional<std::string> { return absl::StrCat(v); };
  gauge(gauges_, "redrive_in_flight", [&](const HandlerGauges& g) { return integer(g.in_flight); });
  gauge(gauges_, "redrive_connected_streams",
        [&](const HandlerGauges& g) { return integer(g.connected_streams); });
  gauge(gauges_, "redrive_pending", [&](const HandlerGauges& g) { return integer(g.pending); });
  gauge(gauges_, "redrive_consumer_lag", [&](const HandlerGauges& g) -> std::optional<std::string> {
    if (g.lag < 0) return std::nullopt;
    return absl::StrCat(g.lag);
  });
  gauge(gauges_, "redrive_retry_depth",
        [&](const HandlerGauges& g) { return integer(g.retry_depth); });
  gauge(gauges_, "redrive_dlq_depth", [&](const HandlerGauges& g) { return integer(g.dlq_depth); });
  gauge(gauges_, "redrive_dlq_oldest_age_seconds",
        [](const HandlerGauges& g) -> std::optional<std::string> {
          return FormatDouble(g.oldest_dead_letter_age_seconds);
        });
  gauge(gauges_, "redrive_paused",
        [&](const HandlerGauges& g) { return integer(g.paused ? 1 : 0); });

  w.Family("redrive_publish_latency_seconds");
  for (size_t rpc = 0; rpc < 2; ++rpc) {
    w.Histogram("redrive_publish_latency_seconds",
                absl::StrCat("rpc=\"", kPublishRpcNames[rpc], "\""), daemon_.publish_latency[rpc]);
  }
  w.Family("redrive_publish_requests_total");
  for (size_t rpc = 0; rpc < 2; ++rpc) {
    for (size_t code = 0; code < kGrpcCodes; ++code) {
      const uint64_t n = daemon_.publish_requests[rpc][code].value();
      // OK always (so the series exists from the start); others once seen.
      if (n == 0 && code != 0) continue;
      w.Sample(
          "redrive_publish_requests_total",
          absl::StrCat("rpc=\"", kPublishRpcNames[rpc], "\",code=\"", kGrpcCodeNames[code], "\""),
          n);
    }
  }
  w.Family("redrive_redis_rtt_seconds");
  w.Histogram("redrive_redis_rtt_seconds", "", daemon_.redis_rtt);
  w.Family("redrive_redis_up");
  w.Sample("redrive_redis_up", "", absl::StrCat(daemon_.redis_up.value()));
  w.Family("redrive_redis_reconnects_total");
  w.Sample("redrive_redis_reconnects_total", "", RedisReconnects().value());
  w.Family("redrive_redis_primary_changes_total");
  w.Sample("redrive_redis_primary_changes_total", "", RedisPrimaryChanges().value());
  w.Family("redrive_grpc_streams");
  for (size_t kind = 0; kind < 2; ++kind) {
    w.Sample("redrive_grpc_streams", absl::StrCat("kind=\"", kStreamKindNames[kind], "\""),
             absl::StrCat(daemon_.grpc_streams[kind].value()));
  }
  w.Family("redrive_metrics_collect_errors_total");
  w.Sample("redrive_metrics_collect_errors_total", "", daemon_.collect_errors.value());
  w.Family("redrive_metrics_overflow_registrations_total");
  w.Sample("redrive_metrics_overflow_registrations_total", "", overflowed_);
  w.Family("redrive_metrics_dropped_handlers");
  w.Sample("redrive_metrics_dropped_handlers", "", gauges_dropped_);
  w.Family("redrive_build_info");
  w.Sample("redrive_build_info",
           absl::StrCat("version=\"", EscapeLabelValue(options_.version), "\",revision=\"",
                        EscapeLabelValue(options_.revision), "\""),
           "1");
  return w.Take();
}

}  // namespace redrive
