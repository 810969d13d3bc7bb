#include "daemon/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace redrive {

// Counts how often it is formatted: Log must not format a disabled line.
struct CountedArg {
  int* formatted;
};

}  // namespace redrive

template <>
struct fmt::formatter<redrive::CountedArg> : fmt::formatter<std::string_view> {
  template <typename Context>
  auto format(const redrive::CountedArg& a, Context& ctx) const {
    ++*a.formatted;
    return fmt::formatter<std::string_view>::format("counted", ctx);
  }
};

namespace redrive {
namespace {

using ::testing::ElementsAre;
using ::testing::MatchesRegex;

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";

// Installs a logger writing into a string with the daemon's formatter, as
// the default logger (what Log uses), and restores the previous one.
class LoggingTest : public ::testing::Test {
 protected:
  void Install(bool json, spdlog::level::level_enum level = spdlog::level::trace) {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out_);
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_formatter(MakeLogFormatter(json));
    logger->set_level(level);
    spdlog::set_default_logger(logger);
  }
  void TearDown() override {
    if (previous_) spdlog::set_default_logger(previous_);
  }

  std::vector<std::string> Lines() const {
    std::vector<std::string> lines = absl::StrSplit(out_.str(), '\n');
    EXPECT_EQ(lines.back(), "") << "the last line is not terminated";
    lines.pop_back();
    return lines;
  }

  // Every line parsed as JSON (a line that does not parse fails the test).
  std::vector<nlohmann::json> JsonLines() const {
    std::vector<nlohmann::json> out;
    for (const std::string& line : Lines()) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      EXPECT_TRUE(j.is_object()) << "not a JSON object: " << line;
      out.push_back(std::move(j));
    }
    return out;
  }

  static std::set<std::string> Keys(const nlohmann::json& j) {
    std::set<std::string> keys;
    for (const auto& [k, v] : j.items()) keys.insert(k);
    return keys;
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(LoggingTest, JsonLineCarriesFieldsAsKeysWithExactValues) {
  Install(/*json=*/true);
  const std::string entry_id = "1700000000000-0";
  LogWarn(LogFields()
              .Channel("orders")
              .Handler("billing")
              .EntryId(entry_id)
              .TraceId(kTraceId)
              .Reason("poison: header 0 runs past data_start")
              .Session(7)
              .Attempt(3),
          "entry is unreadable; delivered as {}", "raw bytes");
  std::vector<nlohmann::json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  const nlohmann::json& j = lines[0];
  EXPECT_EQ(Keys(j), (std::set<std::string>{"ts", "level", "msg", "channel", "handler", "entry_id",
                                            "trace_id", "reason", "session", "attempt"}));
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["msg"], "entry is unreadable; delivered as raw bytes");
  EXPECT_EQ(j["channel"], "orders");
  EXPECT_EQ(j["handler"], "billing");
  EXPECT_EQ(j["entry_id"], "1700000000000-0");
  EXPECT_EQ(j["trace_id"], kTraceId);
  EXPECT_EQ(j["reason"], "poison: header 0 runs past data_start");
  EXPECT_EQ(j["session"], 7);  // a JSON number
  EXPECT_TRUE(j["session"].is_number_unsigned());
  EXPECT_EQ(j["attempt"], 3);
  EXPECT_THAT(
      j["ts"].get<std::string>(),
      MatchesRegex(
          R"(20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{3}Z)"));
}

TEST_F(LoggingTest, JsonEscapesQuotesNewlinesControlCharactersAndBadUtf8) {
  Install(/*json=*/true);
  const std::string nasty = std::string("a \"quoted\" \\ back\nline\r\ttab \x01\x1f end ") +
                            "caf\xc3\xa9 bad\xff" + "\xe2\x82" + "!";
  LogError(LogFields().Reason(nasty).Error(std::string("nul\0byte", 8)), "msg \"{}\"\n{}", "x",
           nasty);
  std::vector<nlohmann::json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  const std::string expected = std::string("a \"quoted\" \\ back\nline\r\ttab \x01\x1f end ") +
                               "caf\xc3\xa9 bad\xef\xbf\xbd" + "\xef\xbf\xbd\xef\xbf\xbd" + "!";
  EXPECT_EQ(lines[0]["reason"], expected);
  EXPECT_EQ(lines[0]["error"], std::string("nul\0byte", 8));
  EXPECT_EQ(lines[0]["msg"], "msg \"x\"\n" + expected);
  EXPECT_EQ(lines[0]["level"], "error");
  // The raw line has no raw control character in it.
  const std::string raw = Lines()[0];
  for (char c : raw) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
}

TEST_F(LoggingTest, JsonEscapeWritesUnicodeEscapesForControlCharacters) {
  EXPECT_EQ(JsonEscape(std::string("\x01\x1f\x7f", 3)), "\\u0001\\u001f\x7f");
  EXPECT_EQ(JsonEscape("\"\\\n\r\t"), "\\\"\\\\\\n\\r\\t");
  EXPECT_EQ(JsonEscape("\xc3\xa9\xf0\x9f\x98\x80"), "\xc3\xa9\xf0\x9f\x98\x80");
  // Overlong, surrogate, out of range, truncated: each bad byte -> U+FFFD.
  EXPECT_EQ(JsonEscape("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(JsonEscape("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(JsonEscape("\xf4\x90\x80\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(JsonEscape("x\xe2\x82"), "x\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_F(LoggingTest, LineWithoutFieldsHasOnlyTsLevelMsg) {
  Install(/*json=*/true);
  spdlog::info("plain {}", 1);
  LogInfo(LogFields(), "no fields");
  std::vector<nlohmann::json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(Keys(lines[0]), (std::set<std::string>{"ts", "level", "msg"}));
  EXPECT_EQ(lines[0]["msg"], "plain 1");
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_EQ(Keys(lines[1]), (std::set<std::string>{"ts", "level", "msg"}));
}

TEST_F(LoggingTest, FieldsDoNotLeakIntoLaterLines) {
  Install(/*json=*/true);
  LogInfo(LogFields().Channel("orders"), "with");
  spdlog::info("without");
  std::vector<nlohmann::json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["channel"], "orders");
  EXPECT_FALSE(lines[1].contains("channel"));
}

TEST_F(LoggingTest, FieldsComeInVocabularyOrderLastValueWinsEmptyTextLeftOut) {
  Install(/*json=*/false);
  LogInfo(LogFields()
              .Error("boom")
              .Handler("first")
              .Channel("orders")
              .Handler("billing")
              .TraceId("")
              .EntryId("2-0"),
          "m");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], MatchesRegex(R"([0-9T:.-]+Z I m channel=orders handler=billing )"
                                     R"(entry_id=2-0 error=boom)"));
}

TEST_F(LoggingTest, TextModeQuotesValuesThatNeedIt) {
  Install(/*json=*/false);
  LogWarn(LogFields()
              .Channel("orders")
              .Reason("poison: \"bad\" header")
              .Error("a=b")
              .Stream("back\\slash")
              .Session(42)
              .Consumer("caf\xc3\xa9")
              .Peer("line\nbreak"),
          "entry is unreadable");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  const std::string& line = lines[0];
  const size_t w = line.find(" W ");
  ASSERT_NE(w, std::string::npos) << line;
  EXPECT_EQ(line.substr(w + 3),
            "entry is unreadable channel=orders reason=\"poison: \\\"bad\\\" header\" session=42 "
            "stream=\"back\\\\slash\" consumer=\"caf\xc3\xa9\" peer=\"line\\nbreak\" "
            "error=\"a=b\"");
}

TEST_F(LoggingTest, DisabledLevelFormatsNothing) {
  Install(/*json=*/true, spdlog::level::info);
  int formatted = 0;
  LogDebug(LogFields().Channel("orders"), "value {}", CountedArg{&formatted});
  EXPECT_EQ(formatted, 0);
  EXPECT_EQ(out_.str(), "");
  LogInfo(LogFields().Channel("orders"), "value {}", CountedArg{&formatted});
  EXPECT_EQ(formatted, 1);
  std::vector<nlohmann::json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["msg"], "value counted");
}

TEST(LogKeyTest, VocabularyNamesAreUniqueSnakeCase) {
  std::vector<std::string> names;
  for (int i = 0; i < kLogKeyCount; ++i) {
    names.emplace_back(LogKeyName(static_cast<LogKey>(i)));
  }
  EXPECT_THAT(names, ElementsAre("channel", "handler", "entry_id", "trace_id", "reason", "session",
                                 "delivery_id", "attempt", "stream", "group", "consumer",
                                 "dlq_entry_id", "job", "rpc", "peer", "error"));
}

}  // namespace
}  // namespace redrive
