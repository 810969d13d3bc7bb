// Waiting on conditions in tests (never on fixed sleeps).
#ifndef REDRIVE_TESTS_TESTING_WAIT_H_
#define REDRIVE_TESTS_TESTING_WAIT_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace redrive::testing {

// Polls `condition` every few milliseconds until it holds or `timeout`
// passes; returns its last value.
template <typename F>
bool WaitFor(F condition, absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return condition();
}

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_WAIT_H_
