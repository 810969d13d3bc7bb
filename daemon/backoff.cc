#include "daemon/backoff.h"

#include <algorithm>
#include <cmath>

namespace redrive {

bool RetriesExhausted(const v1::RetryPolicy& policy, uint32_t failed_attempt) {
  return !policy.unlimited() && failed_attempt > policy.max_retries();
}

absl::Duration RetryDelay(const v1::RetryPolicy& policy, uint32_t failed_attempt,
                          double unit_random) {
  const double initial = static_cast<double>(policy.initial_backoff_ms());
  const double cap = static_cast<double>(policy.max_backoff_ms());
  const uint32_t exponent = failed_attempt == 0 ? 0 : failed_attempt - 1;
  // Computed in log space so large exponents cannot overflow.
  double delay = cap;
  if (initial <= 0.0) {
    delay = 0.0;
  } else if (std::log(initial) + exponent * std::log(policy.multiplier()) < std::log(cap)) {
    delay = initial * std::pow(policy.multiplier(), exponent);
  }
  delay = std::min(delay, cap);
  const double r = std::clamp(unit_random, 0.0, 1.0);
  const double jittered = delay + delay * policy.jitter() * r;
  return absl::Milliseconds(static_cast<int64_t>(std::ceil(jittered)));
}

}  // namespace redrive
