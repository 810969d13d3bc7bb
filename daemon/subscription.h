// Registration of a Subscribe stream: validation of every Register field and
// the effective settings (defaults filled in) with the exact Redis names
// (R-B1, R-B2, R-B8, R-D1).
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_SUBSCRIPTION_H_
#define REDRIVE_DAEMON_SUBSCRIPTION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/metrics.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

inline constexpr uint32_t kDefaultMaxInFlight = 64;
inline constexpr uint32_t kMaxMaxInFlight = 10000;
inline constexpr uint32_t kDefaultLeaseMs = 30000;
inline constexpr uint32_t kMinLeaseMs = 1000;
inline constexpr uint32_t kMaxDurationMs = 86'400'000;
inline constexpr uint32_t kDefaultMaxRetries = 5;
inline constexpr uint32_t kMaxMaxRetries = 1000;
inline constexpr uint32_t kDefaultInitialBackoffMs = 1000;
inline constexpr double kDefaultMultiplier = 2.0;
inline constexpr uint32_t kDefaultMaxBackoffMs = 300000;
inline constexpr double kDefaultJitter = 0.1;
inline constexpr uint64_t kMaxDeadLetterCap = 100'000'000;

// The effective settings of one registration.
struct SubscriptionSpec {
  std::string channel;
  std::string handler_id;
  HandlerKeys keys;
  std::string consumer;  // this daemon's consumer in the handler's groups
  bool auto_ack = false;
  // Effective retry policy; unset for auto-ack registrations.
  bool has_retry_policy = false;
  v1::RetryPolicy retry_policy;
  v1::DeadLetterPolicy dead_letter_policy;
  uint32_t max_in_flight = kDefaultMaxInFlight;
  absl::Duration lease = absl::Milliseconds(kDefaultLeaseMs);
  v1::StartPosition start;  // kind never START_UNSPECIFIED
  std::string consumer_label;
  // Where the engine counts this handler's traffic: the daemon's Metrics
  // (set at registration; owned there, outlives the engine) or nowhere.
  HandlerMetrics* metrics = &HandlerMetrics::Discarded();
};

// Validates `reg` and fills in defaults. INVALID_ARGUMENT naming the field
// ("register.max_in_flight 0 is outside 1..10000", ...) for any bad value,
// including auto_ack combined with a retry or dead-letter policy.
absl::StatusOr<SubscriptionSpec> ResolveRegistration(const v1::Register& reg, KeyStyle style,
                                                     absl::string_view instance_id);

// OK when `incoming` may join a handler already registered on this daemon as
// `registered` (same channel and handler id): both agree on auto_ack and on
// every field of the effective retry and dead-letter policies. Otherwise
// FAILED_PRECONDITION naming the first field that differs and both values,
// e.g. "register.retry_policy.max_retries: 3 differs from the registered 5
// (...)". Per-stream settings (max_in_flight, lease_ms, start,
// consumer_label) may differ.
absl::Status CheckSamePolicy(const SubscriptionSpec& registered, const SubscriptionSpec& incoming);

// The Registered reply for `spec`.
v1::Registered MakeRegistered(const SubscriptionSpec& spec, absl::string_view instance_id);

// The XGROUP CREATE id for a start position: "$", "0" or the entry id.
std::string GroupStartId(const v1::StartPosition& start);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_SUBSCRIPTION_H_
