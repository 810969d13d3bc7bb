// GoogleTest matchers for absl::Status / absl::StatusOr (abseil 20220623 has
// none): EXPECT_THAT(s, IsOk()); EXPECT_THAT(s, StatusIs(kInvalidArgument,
// HasSubstr("channel"))).
#ifndef REDRIVE_TESTS_TESTING_STATUS_MATCHERS_H_
#define REDRIVE_TESTS_TESTING_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace redrive::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Unwraps a StatusOr that must be OK; records a test failure (and returns
// a default value) otherwise.
template <typename T>
T TakeOk(absl::StatusOr<T> result) {
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return T{};
  return *std::move(result);
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code, "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher, "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code && ::testing::Matches(message_matcher)(std::string(s.message()));
}

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_STATUS_MATCHERS_H_
