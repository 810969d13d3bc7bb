#include "daemon/check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <regex>
#include <string>

#include "daemon/logging.h"

namespace redrive {
namespace {

using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::StartsWith;

// Death tests fork; "threadsafe" re-executes the binary, which stays correct
// whatever threads the daemon library may have started. Logging is set up as
// redrived's main does (text on stderr); the child runs SetUp too.
class CheckDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    ASSERT_TRUE(InitLogging({"info", false}).ok());
  }
};

// Whether the output holds the line a failed check of this file logs, with
// `rest` (an ECMAScript regex) after the condition text. Where a test names
// the line, its check streams " at " << __LINE__ last and fits on one line,
// and `rest` ends in `at \1`: the logged line must equal it, however the file
// is formatted. (gtest's own POSIX regexes cannot hold a back-reference.)
MATCHER_P(LogsCheckFailure, rest, "") {
  return std::regex_search(
      arg,
      std::regex(R"(CHECK failed: \S*tests/daemon/check_test\.cc:(\d+): )" + std::string(rest)));
}

TEST_F(CheckDeathTest, FailedCheckLogsFileLineConditionAndMessageThroughTheDaemonLogger) {
  const int lost = 7;
  // The daemon's text format: timestamp, level letter C, message.
  EXPECT_DEATH(REDRIVE_CHECK(1 + 1 == 3) << "lost " << lost << " at " << __LINE__,
               AllOf(LogsCheckFailure(R"(1 \+ 1 == 3 lost 7 at \1\n)"),
                     ContainsRegex("Z C CHECK failed: ")));
}

TEST_F(CheckDeathTest, FailedCheckAbortsTheProcess) {
  EXPECT_EXIT(REDRIVE_CHECK(false), ::testing::KilledBySignal(SIGABRT),
              LogsCheckFailure(R"(false\n)"));
}

TEST_F(CheckDeathTest, JsonLogsCarryTheFailureAsOneCriticalLine) {
  EXPECT_DEATH(
      {
        (void)InitLogging({"info", true});
        REDRIVE_CHECK(sizeof(int) == 0) << "\"quoted\" at " << __LINE__;
      },
      AllOf(LogsCheckFailure(R"(sizeof\(int\) == 0 \\"quoted\\" at \1"\}\n)"),
            ContainsRegex(R"(\{"ts":"[^"]+","level":"critical","msg":"CHECK failed: )")));
}

TEST_F(CheckDeathTest, FailureIsPrintedEvenWithLoggingOff) {
  EXPECT_DEATH(
      {
        (void)InitLogging({"off", false});
        REDRIVE_CHECK(false) << "still visible at " << __LINE__;
      },
      AllOf(LogsCheckFailure(R"(false still visible at \1\n)"), StartsWith("CHECK failed: ")));
}

TEST(CheckTest, TrueConditionIsEvaluatedOnceAndSkipsTheMessage) {
  int evaluations = 0;
  int message_evaluations = 0;
  REDRIVE_CHECK(++evaluations == 1) << ++message_evaluations;
  EXPECT_EQ(evaluations, 1);
  EXPECT_EQ(message_evaluations, 0);
}

TEST(CheckTest, IsOneStatementUnderIfElse) {
  bool took_else = false;
  if (false)
    REDRIVE_CHECK(false) << "never";
  else
    took_else = true;
  EXPECT_TRUE(took_else);
}

#ifndef NDEBUG
TEST_F(CheckDeathTest, DebugCheckFailsInDebugBuilds) {
  EXPECT_DEATH(REDRIVE_DCHECK(2 < 1) << "debug only at " << __LINE__,
               LogsCheckFailure(R"(2 < 1 debug only at \1\n)"));
}
#else
TEST(CheckTest, DebugCheckIsNotEvaluatedInOptimizedBuilds) {
  int evaluations = 0;
  REDRIVE_DCHECK(++evaluations == 0) << "not evaluated";
  EXPECT_EQ(evaluations, 0);
}
#endif

}  // namespace
}  // namespace redrive
