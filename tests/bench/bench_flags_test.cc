#include "bench/bench_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace redrive_bench {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;

// A table like the benches': two required flags and two with defaults.
struct Args {
  int port = 0;
  std::string daemon;
  int count = 200;
  int zero_ok = 5;
};

class BenchFlagsTest : public ::testing::Test {
 protected:
  absl::Status Parse(std::vector<const char*> args) {
    args.insert(args.begin(), "bench");
    return ParseBenchFlags(flags_, static_cast<int>(args.size()), args.data(), &help_);
  }

  Args a_;
  const BenchFlag flags_[4] = {
      {"port", &a_.port, "the port", 1, true},
      {"daemon", &a_.daemon, "the address", 0, true},
      {"count", &a_.count, "how many", 1},
      {"zero-ok", &a_.zero_ok, "may be zero", 0},
  };
  bool help_ = true;
};

TEST_F(BenchFlagsTest, SetsEveryFlagGivenAndKeepsTheOtherDefaults) {
  EXPECT_THAT(Parse({"--port=6379", "--daemon=127.0.0.1:1", "--zero-ok=0"}), IsOk());
  EXPECT_FALSE(help_);
  EXPECT_EQ(a_.port, 6379);
  EXPECT_EQ(a_.daemon, "127.0.0.1:1");
  EXPECT_EQ(a_.count, 200);
  EXPECT_EQ(a_.zero_ok, 0);
}

TEST_F(BenchFlagsTest, TheLastOfARepeatedFlagWins) {
  EXPECT_THAT(Parse({"--port=1", "--daemon=d", "--count=3", "--count=4"}), IsOk());
  EXPECT_EQ(a_.count, 4);
}

TEST_F(BenchFlagsTest, RejectsUnknownMalformedAndOutOfRangeArguments) {
  const std::vector<std::pair<std::vector<const char*>, std::string>> cases = {
      {{"--port=1", "--daemon=d", "--nope=3"}, "unknown flag --nope=3"},
      {{"--port=1", "--daemon=d", "--count"}, "bad argument --count"},
      {{"--port=1", "--daemon=d", "count=3"}, "bad argument count=3"},
      {{"--port=1", "--daemon=d", "--count=x"}, "bad number in --count=x"},
      {{"--port=1", "--daemon=d", "--count=0"}, "bad number in --count=0 (want an integer >= 1)"},
      {{"--port=1", "--daemon=d", "--zero-ok=-1"}, "bad number in --zero-ok=-1"},
      {{"--daemon=d"}, "--port is required"},
      {{"--port=1"}, "--daemon is required"},
      {{"--port=1", "--daemon="}, "--daemon is required"},
  };
  for (const auto& [args, message] : cases) {
    const absl::Status s = Parse(args);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument)) << message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(message));
  }
}

TEST_F(BenchFlagsTest, HelpStopsParsingEvenAfterABadArgument) {
  EXPECT_THAT(Parse({"--nope=1", "--help"}), IsOk());
  EXPECT_TRUE(help_);
  EXPECT_THAT(Parse({"-h"}), IsOk());
  EXPECT_TRUE(help_);
}

TEST_F(BenchFlagsTest, UsageListsEveryFlagWithItsDefaultAndHelp) {
  EXPECT_EQ(BenchUsage("bench", "What it measures.", flags_),
            "usage: bench --port=N --daemon=S [--count=N] [--zero-ok=N]\n"
            "What it measures.\n"
            "  --port                   the port (required)\n"
            "  --daemon                 the address (required)\n"
            "  --count=200              how many\n"
            "  --zero-ok=5              may be zero\n");
}

}  // namespace
}  // namespace redrive_bench
