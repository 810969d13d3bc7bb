// EncodeCommand (daemon/redis/resp.h): byte for byte what hiredis's own
// formatter produces, for the shapes the daemon sends.
#include "daemon/redis/resp.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

namespace redrive {
namespace {

std::string HiredisFormat(const std::vector<absl::string_view>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (absl::string_view a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int len =
      redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  EXPECT_GT(len, 0);
  std::string out(cmd, static_cast<size_t>(len));
  redisFreeCommand(cmd);
  return out;
}

TEST(RespTest, ASmallCommandIsExactlyRespMultiBulk) {
  EXPECT_EQ(EncodeCommand(std::vector<absl::string_view>{"PING"}), "*1\r\n$4\r\nPING\r\n");
  EXPECT_EQ(EncodeCommand(std::vector<absl::string_view>{"SET", "k", ""}),
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
}

TEST(RespTest, MatchesHiredisForBinaryEmptyAndLongArguments) {
  const std::string binary("a\0b\r\nc", 6);
  const std::string long_arg(100000, 'x');
  std::vector<absl::string_view> xack = {"XACK", "orders", "billing"};
  std::vector<std::string> ids;
  for (int i = 0; i < 1234; ++i)
    ids.push_back(std::to_string(1700000000000 + i) + "-" + std::to_string(i % 10));
  for (const std::string& id : ids) xack.push_back(id);
  const std::vector<std::vector<absl::string_view>> cases = {
      {"GET", ""},
      {"SET", binary, long_arg},
      {"XADD", "s", "*", "__data__", binary},
      xack,
      std::vector<absl::string_view>(10, "9"),
      std::vector<absl::string_view>(100, ""),
  };
  for (const auto& argv : cases) {
    EXPECT_EQ(EncodeCommand(argv), HiredisFormat(argv)) << argv.size() << " arguments";
  }
}

}  // namespace
}  // namespace redrive
