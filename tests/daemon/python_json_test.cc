// The Python-compatible JSON reader and emitter (expected strings produced by
// Python 3.11's json.dumps(json.loads(b), separators=(",", ":"))).
#include "daemon/python_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::StatusIs;
using ::redrive::testing::TakeOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Compact(absl::string_view text) { return TakeOk(PythonCompactJson(text)); }

TEST(PythonCompactJsonTest, EscapesControlAndNonAsciiCharactersLikePython) {
  EXPECT_EQ(Compact("{\"c\":\"\\u0000\\u0001\\u001f\x7f\xc2\x80 \\/\\b\\f\\n\\r\\t\\\"\\\\ "
                    "\xc3\xa9\"}"),
            R"({"c":"\u0000\u0001\u001f\u007f\u0080 /\b\f\n\r\t\"\\ \u00e9"})");
}

TEST(PythonCompactJsonTest, WritesSurrogatePairsAndKeepsLoneSurrogates) {
  EXPECT_EQ(Compact("{\"s\":\"\xf0\x9f\x98\x80 \\ud83d\\ude00 \\ud83d \\ude00 \\uD83D\\uDE00 "
                    "\xf4\x8f\xbf\xbf\"}"),
            R"({"s":"\ud83d\ude00 \ud83d\ude00 \ud83d \ude00 \ud83d\ude00 \udbff\udfff"})");
  // UTF-8-encoded surrogates (json.loads(bytes) decodes with surrogatepass).
  EXPECT_EQ(Compact("{\"s\":\"\xed\xa0\xbd\xed\xb8\x80\"}"), R"({"s":"\ud83d\ude00"})");
  // A high surrogate followed by a non-surrogate escape stays lone.
  EXPECT_EQ(Compact(R"(["\ud800\u0041"])"), R"(["\ud800A"])");
}

TEST(PythonCompactJsonTest, NumbersPrintAsPythonPrintsThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1.0", "1.0"},
      {"1e100", "1e+100"},
      {"1E5", "100000.0"},
      {"1.50", "1.5"},
      {"2.5e+3", "2500.0"},
      {"0.1", "0.1"},
      {"1e16", "1e+16"},
      {"1e15", "1000000000000000.0"},
      {"0.0001", "0.0001"},
      {"0.00001", "1e-05"},
      {"1E-7", "1e-07"},
      {"5e-324", "5e-324"},
      {"123456789012345678901234.0", "1.2345678901234569e+23"},
      {"-0.0", "-0.0"},
      {"1e400", "Infinity"},
      {"-1e400", "-Infinity"},
      {"1e-400", "0.0"},
      {"-1e-400", "-0.0"},
      {"NaN", "NaN"},
      {"-Infinity", "-Infinity"},
      // Integers keep their digits exactly, at any size; only -0 changes.
      {"12345678901234567890123456789", "12345678901234567890123456789"},
      {"-9007199254740993", "-9007199254740993"},
      {"-0", "0"},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(Compact(in), want) << in;
    EXPECT_EQ(Compact(absl::StrCat("{\"n\":", in, "}")), absl::StrCat("{\"n\":", want, "}")) << in;
  }
}

TEST(PythonCompactJsonTest, ObjectsAndWhitespaceBehaveLikePythonDicts) {
  EXPECT_EQ(Compact(R"({"a":1,"b":2,"a":3})"), R"({"a":3,"b":2})");
  EXPECT_EQ(Compact(R"({"\u0061":1,"a":2})"), R"({"a":2})");
  EXPECT_EQ(Compact("\xef\xbb\xbf {\"k\" : [ true , false , null ] }\r\n"),
            R"({"k":[true,false,null]})");
}

TEST(PythonCompactJsonTest, RejectsWhatPythonRejects) {
  for (const std::string& bad :
       {std::string(""), std::string("{\"a\":1,}"), std::string("[1,]"), std::string("01"),
        std::string("1."), std::string(".5"), std::string("+1"), std::string("{\"a\":1} x"),
        std::string("\"\x01\""), std::string("\"\xff\""), std::string("\"\xc0\x80\""),
        std::string("\"\\x\""), std::string("\"\\u12\""), std::string("{1:2}"), std::string("nul"),
        std::string("\"\xf4\x90\x80\x80\"")}) {
    EXPECT_THAT(PythonCompactJson(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(PythonCompactJsonTest, NestingIsBounded) {
  const auto nested = [](int depth) {
    return absl::StrCat(std::string(static_cast<size_t>(depth), '['),
                        std::string(static_cast<size_t>(depth), ']'));
  };
  EXPECT_EQ(Compact(nested(kMaxJsonDepth)), nested(kMaxJsonDepth));
  EXPECT_THAT(PythonCompactJson(nested(kMaxJsonDepth + 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too deep")));
}

TEST(PythonJsonTreeTest, ObjectMembersAreSetAndRemovedLikeADict) {
  std::optional<JsonNode> object = ParsePythonJsonObject(R"({"b":1,"_x":"1","c":[1.50]})");
  ASSERT_TRUE(object.has_value());
  EXPECT_THAT(object->keys, ElementsAre("b", "_x", "c"));
  ASSERT_NE(FindMember(*object, "_x"), nullptr);
  EXPECT_EQ(FindMember(*object, "_x")->text, "\"1\"");
  EXPECT_EQ(FindMember(*object, "nope"), nullptr);
  SetMember(&*object, "_x", "\"2\"");       // in place
  SetMember(&*object, "d", "null");         // appended
  SetDefaultMember(&*object, "b", "7");     // kept
  SetDefaultMember(&*object, "e", "true");  // appended
  EXPECT_EQ(EmitPythonJson(*object), R"({"b":1,"_x":"2","c":[1.5],"d":null,"e":true})");
  constexpr absl::string_view kGone[] = {"_x", "e", "absent"};
  EXPECT_TRUE(RemoveMembers(&*object, kGone));
  EXPECT_EQ(EmitPythonJson(*object), R"({"b":1,"c":[1.5],"d":null})");
  EXPECT_FALSE(RemoveMembers(&*object, kGone));
}

TEST(PythonJsonTreeTest, OnlyObjectsParseAsObjects) {
  EXPECT_FALSE(ParsePythonJsonObject("[1]").has_value());
  EXPECT_FALSE(ParsePythonJsonObject("\"{}\"").has_value());
  EXPECT_FALSE(ParsePythonJsonObject("{").has_value());
  EXPECT_FALSE(ParsePythonJsonObject("").has_value());
  EXPECT_TRUE(ParsePythonJsonObject(" {} ").has_value());
}

TEST(PythonJsonTreeTest, StringsAndFloatsPrintAsPythonPrintsThem) {
  EXPECT_EQ(TakeOk(PythonString("a\"\xc3\xa9\n")), R"("a\"\u00e9\n")");
  EXPECT_THAT(PythonString("\xff"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(PythonFloat("1E5"), "100000.0");
  EXPECT_EQ(PythonFloat("0.00001"), "1e-05");
  EXPECT_EQ(PythonFloat("-1e400"), "-Infinity");
}

}  // namespace
}  // namespace redrive
