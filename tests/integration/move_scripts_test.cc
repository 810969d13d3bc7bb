// The atomic move scripts against a real redis-server (R-D4).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/scripts.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::TestRedisServer;
using ::testing::ElementsAre;

constexpr char kStream[] = "orders";
constexpr char kGroup[] = "h1";
constexpr char kRetry[] = "orders.h1.retry";
constexpr char kRetryGroup[] = "h1-retry";
constexpr char kDue[] = "orders.h1.retry.due";
constexpr char kDlq[] = "orders.h1.dlq";
constexpr char kOwner[] = "h1-a";
constexpr char kScheduled[] = "h1:scheduled";

class MoveScriptsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestRedisServer::Start();
    ASSERT_NE(server_, nullptr);
    redis_ = server_->Connect();
    ASSERT_THAT(redis_->Command({"XGROUP", "CREATE", kStream, kGroup, "$", "MKSTREAM"}), IsOk());
  }

  // Publishes one entry and reads it as `consumer`; returns its id.
  std::string AddAndRead(const std::string& payload, const std::string& consumer = kOwner) {
    absl::StatusOr<RedisReply> id = redis_->Command({"XADD", kStream, "*", "__data__", payload});
    EXPECT_THAT(id, IsOk());
    EXPECT_THAT(redis_->Command({"XREADGROUP", "GROUP", kGroup, consumer, "COUNT", "1", "STREAMS",
                                 kStream, ">"}),
                IsOk());
    return id->str;
  }

  // (consumer, delivery count) of a pending entry, or ("", 0).
  std::pair<std::string, int64_t> PendingOwner(const std::string& stream, const std::string& group,
                                               const std::string& id) {
    absl::StatusOr<RedisReply> p = redis_->Command({"XPENDING", stream, group, id, id, "1"});
    if (!p.ok() || p->elements.empty()) return {"", 0};
    return {p->elements[0].elements[1].str, p->elements[0].elements[3].integer};
  }

  int64_t Integer(const RedisArgv& argv) {
    absl::StatusOr<RedisReply> r = redis_->Command(argv);
    return r.ok() ? r->integer : -99;
  }

  std::vector<std::string> Keys() { return ::redrive::testing::SortedKeys(*redis_); }

  absl::StatusOr<RedisReply> Schedule(const std::string& id, const std::string& owner,
                                      const std::string& delay_ms, const std::string& member) {
    return RunScript(*redis_, ScheduleRetryScript(), {kStream, kDue},
                     {kGroup, id, owner, kScheduled, delay_ms, member});
  }
  // Redis's clock in ms.
  int64_t RedisNowMs() {
    absl::StatusOr<RedisReply> t = redis_->Command({"TIME"});
    int64_t s = 0, us = 0;
    EXPECT_TRUE(absl::SimpleAtoi(t->elements[0].str, &s) &&
                absl::SimpleAtoi(t->elements[1].str, &us));
    return s * 1000 + us / 1000;
  }

  absl::StatusOr<RedisReply> MoveDue(RedisCommander& redis, const std::string& id,
                                     const std::string& member, const std::string& data) {
    return RunScript(
        redis, MoveDueScript(), {kStream, kRetry, kDue},
        {kGroup, id, member, kRetryGroup, kScheduled, "__data__", data, "x-redrive-attempt", "2"});
  }

  std::unique_ptr<TestRedisServer> server_;
  std::unique_ptr<RedisConnection> redis_;
};

// Every file of daemon/lua/ is embedded, under its file name, and the SHA-1
// CMake computed is the name Redis gives the script (SCRIPT LOAD).
TEST_F(MoveScriptsTest, EveryLuaFileIsEmbeddedUnderTheNameRedisGivesIt) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(REDRIVE_LUA_DIR)) {
    if (e.path().extension() == ".lua") files.push_back(e.path().stem().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> embedded;
  for (const EmbeddedLua& s : EmbeddedLuaScripts()) {
    embedded.emplace_back(s.name);
    std::ifstream in(absl::StrCat(REDRIVE_LUA_DIR, "/", s.name, ".lua"), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_EQ(bytes.str(), s.source) << s.name;
    absl::StatusOr<RedisReply> loaded = redis_->Command({"SCRIPT", "LOAD", s.source});
    ASSERT_THAT(loaded, IsOk());
    EXPECT_EQ(loaded->str, s.sha1) << s.name;
  }
  EXPECT_EQ(embedded, files);
  EXPECT_EQ(files.size(), 11u);
  EXPECT_EQ(&LuaScriptNamed("move_due"), &MoveDueScript());
}

TEST_F(MoveScriptsTest, ScheduleHandsTheEntryToTheScheduledConsumerOnlyForItsOwner) {
  const std::string id = AddAndRead("p1");
  // Someone else's entry: nothing happens.
  absl::StatusOr<RedisReply> r = Schedule(id, "h1-b", "1000", "m1");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, 0);
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, kOwner);
  EXPECT_THAT(Keys(), ElementsAre(kStream));
  // The owner schedules it: due at Redis's clock + the delay.
  const int64_t before = RedisNowMs();
  r = Schedule(id, kOwner, "12345", "m1");
  const int64_t after = RedisNowMs();
  ASSERT_THAT(r, IsOk());
  EXPECT_GE(r->integer, before + 12345);
  EXPECT_LE(r->integer, after + 12345);
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, kScheduled);
  absl::StatusOr<RedisReply> due = redis_->Command({"ZRANGE", kDue, "0", "-1", "WITHSCORES"});
  ASSERT_THAT(due, IsOk());
  ASSERT_EQ(due->elements.size(), 2u);
  EXPECT_EQ(due->elements[0].str, "m1");
  EXPECT_EQ(due->elements[1].str, absl::StrCat(r->integer));
  // An acknowledged entry cannot be scheduled.
  const std::string acked = AddAndRead("p2");
  ASSERT_THAT(redis_->Command({"XACK", kStream, kGroup, acked}), IsOk());
  r = Schedule(acked, kOwner, "0", "m2");
  EXPECT_EQ(r->integer, 0);
  EXPECT_EQ(Integer({"ZCARD", kDue}), 1);
}

TEST_F(MoveScriptsTest, MoveDueWritesOneRetryEntryAndAcksTheSource) {
  const std::string id = AddAndRead("payload-1");
  ASSERT_GT(Schedule(id, kOwner, "0", "member-1")->integer, 0);
  absl::StatusOr<RedisReply> moved = MoveDue(*redis_, id, "member-1", "payload-1");
  ASSERT_THAT(moved, IsOk());
  ASSERT_TRUE(moved->is_string()) << moved->DebugString();
  // Source settled, due index empty (and so gone), one retry entry.
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, "");
  EXPECT_THAT(Keys(), ElementsAre(kStream, kRetry));
  absl::StatusOr<RedisReply> entries = redis_->Command({"XRANGE", kRetry, "-", "+"});
  ASSERT_EQ(entries->elements.size(), 1u);
  EXPECT_EQ(entries->elements[0].elements[0].str, moved->str);
  std::vector<std::string> fields;
  for (const RedisReply& f : entries->elements[0].elements[1].elements) fields.push_back(f.str);
  EXPECT_THAT(fields, ElementsAre("__data__", "payload-1", "x-redrive-attempt", "2"));
  // The retry group was created before the XADD: it reads the new entry.
  absl::StatusOr<RedisReply> read = redis_->Command(
      {"XREADGROUP", "GROUP", kRetryGroup, "h1-a", "COUNT", "10", "STREAMS", kRetry, ">"});
  ASSERT_THAT(read, IsOk());
  ASSERT_TRUE(read->is_array());
  EXPECT_EQ(read->elements[0].elements[1].elements.size(), 1u);
  // Moving again (a racing daemon) does nothing.
  absl::StatusOr<RedisReply> again = MoveDue(*redis_, id, "member-1", "payload-1");
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->integer, 0);
  EXPECT_EQ(Integer({"XLEN", kRetry}), 1);
}

TEST_F(MoveScriptsTest, MoveDueOfASettledEntryWritesNothing) {
  const std::string id = AddAndRead("late-ack");
  ASSERT_GT(Schedule(id, kOwner, "0", "m")->integer, 0);
  ASSERT_THAT(redis_->Command({"XACK", kStream, kGroup, id}), IsOk());
  absl::StatusOr<RedisReply> moved = MoveDue(*redis_, id, "m", "late-ack");
  ASSERT_THAT(moved, IsOk());
  EXPECT_EQ(moved->integer, -1);
  EXPECT_THAT(Keys(), ElementsAre(kStream));
}

TEST_F(MoveScriptsTest, MoveDueWaitsForTheDueTimeOnRedisClock) {
  const std::string id = AddAndRead("early");
  ASSERT_GT(Schedule(id, kOwner, "60000", "m")->integer, 0);
  absl::StatusOr<RedisReply> moved = MoveDue(*redis_, id, "m", "early");
  ASSERT_THAT(moved, IsOk());
  EXPECT_EQ(moved->integer, -3);
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, kScheduled);
  EXPECT_EQ(Integer({"ZCARD", kDue}), 1);
  EXPECT_THAT(Keys(), ElementsAre(kStream, kDue));
}

TEST_F(MoveScriptsTest, MoveDueOfAnEntryItsOwnerTookBackWritesNothing) {
  const std::string id = AddAndRead("extended");
  ASSERT_GT(Schedule(id, kOwner, "0", "m")->integer, 0);
  // A late EXTEND by the client that held it: the owner claims it back.
  ASSERT_THAT(redis_->Command({"XCLAIM", kStream, kGroup, kOwner, "0", id, "JUSTID"}), IsOk());
  absl::StatusOr<RedisReply> moved = MoveDue(*redis_, id, "m", "extended");
  ASSERT_THAT(moved, IsOk());
  EXPECT_EQ(moved->integer, -1);
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, kOwner);
  EXPECT_THAT(Keys(), ElementsAre(kStream));  // the member is gone, no retry entry
}

TEST_F(MoveScriptsTest, MoveDueThatFailsMidwayKeepsTheMember) {
  const std::string id = AddAndRead("typed");
  ASSERT_GT(Schedule(id, kOwner, "0", "m")->integer, 0);
  ASSERT_THAT(redis_->Command({"SET", kRetry, "not a stream"}), IsOk());
  absl::StatusOr<RedisReply> moved = MoveDue(*redis_, id, "m", "typed");
  EXPECT_FALSE(moved.ok());
  // Nothing lost: still scheduled, still pending, tried again later.
  EXPECT_EQ(Integer({"ZCARD", kDue}), 1);
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, kScheduled);
}

TEST_F(MoveScriptsTest, RacingMoversWriteExactlyOneRetryEntryEach) {
  constexpr int kEntries = 200;
  std::vector<std::string> ids;
  for (int i = 0; i < kEntries; ++i) {
    ids.push_back(AddAndRead("e" + std::to_string(i)));
    ASSERT_GT(Schedule(ids.back(), kOwner, "0", "m" + std::to_string(i))->integer, 0);
  }
  std::atomic<int> wins{0};
  std::vector<std::thread> movers;
  for (int t = 0; t < 3; ++t) {
    movers.emplace_back([&] {
      auto conn = server_->Connect();
      for (int i = 0; i < kEntries; ++i) {
        absl::StatusOr<RedisReply> r =
            MoveDue(*conn, ids[static_cast<size_t>(i)], "m" + std::to_string(i), "data");
        if (r.ok() && r->is_string()) wins.fetch_add(1);
      }
    });
  }
  for (std::thread& t : movers) t.join();
  EXPECT_EQ(wins.load(), kEntries);
  EXPECT_EQ(Integer({"XLEN", kRetry}), kEntries);
  EXPECT_EQ(Integer({"EXISTS", kDue}), 0);
  absl::StatusOr<RedisReply> pending = redis_->Command({"XPENDING", kStream, kGroup});
  EXPECT_EQ(pending->elements[0].integer, 0);
}

TEST_F(MoveScriptsTest, DeadLetterChecksTheOwnerAndMovesAtomically) {
  const std::string id = AddAndRead("poison");
  absl::StatusOr<RedisReply> r =
      RunScript(*redis_, DeadLetterScript(), {kStream, kDlq},
                {kGroup, id, "h1-b", "0", "evict", "reason", "max_retries"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, 0);
  EXPECT_THAT(Keys(), ElementsAre(kStream));
  r = RunScript(*redis_, DeadLetterScript(), {kStream, kDlq},
                {kGroup, id, kOwner, "0", "evict", "reason", "max_retries", "__data__", "poison"});
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->is_array());
  ASSERT_EQ(r->elements.size(), 2u);
  EXPECT_TRUE(r->elements[0].is_string());
  EXPECT_EQ(r->elements[1].integer, 0);
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, "");
  absl::StatusOr<RedisReply> dlq = redis_->Command({"XRANGE", kDlq, "-", "+"});
  ASSERT_EQ(dlq->elements.size(), 1u);
  std::vector<std::string> fields;
  for (const RedisReply& f : dlq->elements[0].elements[1].elements) fields.push_back(f.str);
  EXPECT_THAT(fields, ElementsAre("reason", "max_retries", "__data__", "poison"));
  // Already gone: a second dead-lettering does nothing; "" means any owner.
  r = RunScript(*redis_, DeadLetterScript(), {kStream, kDlq},
                {kGroup, id, "", "0", "evict", "x", "y"});
  EXPECT_EQ(r->integer, 0);
  EXPECT_EQ(Integer({"XLEN", kDlq}), 1);
}

TEST_F(MoveScriptsTest, DeadLetterCapEvictsTheOldestOrHolds) {
  const std::string a = AddAndRead("a");
  const std::string b = AddAndRead("b");
  const std::string c = AddAndRead("c");
  auto dead = [&](const std::string& id, const char* overflow) {
    return RunScript(*redis_, DeadLetterScript(), {kStream, kDlq},
                     {kGroup, id, kOwner, "2", overflow, "__data__", id});
  };
  ASSERT_THAT(dead(a, "evict"), IsOk());
  ASSERT_THAT(dead(b, "evict"), IsOk());
  // Full with "hold": nothing moves, the entry stays pending.
  absl::StatusOr<RedisReply> r = dead(c, "hold");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, -2);
  EXPECT_EQ(PendingOwner(kStream, kGroup, c).first, kOwner);
  EXPECT_EQ(Integer({"XLEN", kDlq}), 2);
  // Full with "evict": exactly the oldest goes.
  r = dead(c, "evict");
  ASSERT_THAT(r, IsOk());
  ASSERT_TRUE(r->is_array());
  EXPECT_EQ(r->elements[1].integer, 1);
  absl::StatusOr<RedisReply> dlq = redis_->Command({"XRANGE", kDlq, "-", "+"});
  ASSERT_EQ(dlq->elements.size(), 2u);
  EXPECT_EQ(dlq->elements[0].elements[1].elements[1].str, b);
  EXPECT_EQ(dlq->elements[1].elements[1].elements[1].str, c);
}

TEST_F(MoveScriptsTest, DeleteIdleConsumerKeepsAConsumerWithPendingEntries) {
  const std::string id = AddAndRead("p", "h1-dead");
  absl::StatusOr<RedisReply> r =
      RunScript(*redis_, DeleteIdleConsumerScript(), {kStream}, {kGroup, "h1-dead"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, 0);
  ASSERT_THAT(redis_->Command({"XACK", kStream, kGroup, id}), IsOk());
  r = RunScript(*redis_, DeleteIdleConsumerScript(), {kStream}, {kGroup, "h1-dead"});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, 1);
  absl::StatusOr<RedisReply> consumers = redis_->Command({"XINFO", "CONSUMERS", kStream, kGroup});
  ASSERT_THAT(consumers, IsOk());
  EXPECT_EQ(consumers->elements.size(), 0u);
}

TEST_F(MoveScriptsTest, TouchLeavesEntriesOfOtherConsumersAlone) {
  const std::string mine = AddAndRead("mine");
  const std::string theirs = AddAndRead("theirs", "h1-other");
  absl::StatusOr<RedisReply> r =
      RunScript(*redis_, TouchScript(), {kStream}, {kGroup, kOwner, "86400001", mine, theirs});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, 1);
  EXPECT_EQ(PendingOwner(kStream, kGroup, theirs).first, "h1-other");
  absl::StatusOr<RedisReply> p = redis_->Command({"XPENDING", kStream, kGroup, mine, mine, "1"});
  ASSERT_THAT(p, IsOk());
  EXPECT_GE(p->elements[0].elements[2].integer, 86400001);  // released: idle past any lease
  r = RunScript(*redis_, TouchScript(), {kStream}, {kGroup, kOwner, "", mine});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->integer, 1);
  p = redis_->Command({"XPENDING", kStream, kGroup, mine, mine, "1"});
  EXPECT_LT(p->elements[0].elements[2].integer, 60000);  // reset
}

TEST_F(MoveScriptsTest, FallsBackToEvalAfterScriptFlush) {
  const std::string id = AddAndRead("p");
  ASSERT_THAT(redis_->Command({"SCRIPT", "FLUSH"}), IsOk());
  absl::StatusOr<RedisReply> r = Schedule(id, kOwner, "5", "m");
  ASSERT_THAT(r, IsOk());
  EXPECT_GT(r->integer, 0);
  EXPECT_EQ(PendingOwner(kStream, kGroup, id).first, kScheduled);
  absl::StatusOr<RedisReply> exists =
      redis_->Command({"SCRIPT", "EXISTS", ScheduleRetryScript().sha1});
  EXPECT_EQ(exists->elements[0].integer, 1);
}

// ---------------------------------------------------------------- trimming
// Issue 10 item 10: retry streams grew for ever.

class TrimRetryTest : public MoveScriptsTest {
 protected:
  // Appends entries "<n>-0" for n in first..last to the retry stream.
  void AddEntries(int first, int last) {
    std::vector<RedisArgv> commands;
    std::vector<std::string> ids;
    ids.reserve(last - first + 1);
    for (int n = first; n <= last; ++n) ids.push_back(absl::StrCat(n, "-0"));
    for (const std::string& id : ids) commands.push_back({"XADD", kRetry, id, "__data__", "x"});
    ASSERT_THAT(redis_->Pipeline(commands), IsOk());
  }
  // Reads up to `count` new entries as `group`; acks them unless `keep`.
  std::vector<std::string> ReadAs(const std::string& group, int count, bool ack = true) {
    absl::StatusOr<RedisReply> r = redis_->Command(
        {"XREADGROUP", "GROUP", group, "c", "COUNT", absl::StrCat(count), "STREAMS", kRetry, ">"});
    EXPECT_THAT(r, IsOk());
    std::vector<std::string> ids;
    if (!r.ok() || !r->is_array() || r->elements.empty()) return ids;
    for (const RedisReply& e : r->elements[0].elements[1].elements)
      ids.push_back(e.elements[0].str);
    if (ack && !ids.empty()) Ack(group, ids);
    return ids;
  }
  void Ack(const std::string& group, const std::vector<std::string>& ids) {
    RedisArgv argv = {"XACK", kRetry, group};
    for (const std::string& id : ids) argv.push_back(id);
    ASSERT_THAT(redis_->Command(argv), IsOk());
  }
  // Runs the script: {removed, minid, capped}.
  std::tuple<int64_t, std::string, int64_t> Trim(int limit = 10000, int retention_ms = 0) {
    absl::StatusOr<RedisReply> r = RunScript(*redis_, TrimRetryScript(), {kRetry},
                                             {absl::StrCat(limit), absl::StrCat(retention_ms)});
    EXPECT_THAT(r, IsOk());
    if (!r.ok() || r->elements.size() != 3) return {-1, "", -1};
    return {r->elements[0].integer, r->elements[1].str, r->elements[2].integer};
  }
  int64_t XLen() { return ::redrive::testing::XLenOf(*redis_, kRetry); }
  std::string FirstId() {
    std::vector<StreamEntry> all = ::redrive::testing::XRangeAll(*redis_, kRetry);
    return all.empty() ? "" : all.front().id;
  }
};

TEST_F(TrimRetryTest, NeverTrimsAnEntryPendingOrUnreadInAnyGroup) {
  AddEntries(1, 1000);
  ASSERT_THAT(redis_->Command({"XGROUP", "CREATE", kRetry, kRetryGroup, "0"}), IsOk());
  ASSERT_THAT(redis_->Command({"XGROUP", "CREATE", kRetry, "other", "0"}), IsOk());
  // The retry group read everything and acked all but 500; the other group
  // read and acked 1..700 and has not read 701..1000.
  std::vector<std::string> read = ReadAs(kRetryGroup, 1000, /*ack=*/false);
  ASSERT_EQ(read.size(), 1000u);
  read.erase(read.begin() + 499);
  Ack(kRetryGroup, read);
  ASSERT_EQ(ReadAs("other", 700).size(), 700u);

  // The lowest pending entry (500) bounds it: exactly 1..499 go.
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{499}, std::string("500-0"), int64_t{0}));
  EXPECT_EQ(XLen(), 501);
  EXPECT_EQ(FirstId(), "500-0");
  // 500 settled: the other group's unread 701.. bound it now.
  Ack(kRetryGroup, {"500-0"});
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{201}, std::string("700-1"), int64_t{0}));
  EXPECT_EQ(XLen(), 300);
  EXPECT_EQ(FirstId(), "701-0");
  // Read but pending in the other group: nothing goes.
  ASSERT_EQ(ReadAs("other", 300, /*ack=*/false).size(), 300u);
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{0}, std::string("701-0"), int64_t{0}));
  EXPECT_EQ(XLen(), 300);
  // Everything settled everywhere: the stream is empty (and still exists).
  std::vector<std::string> rest;
  for (int n = 701; n <= 1000; ++n) rest.push_back(absl::StrCat(n, "-0"));
  Ack("other", rest);
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{300}, std::string("1000-1"), int64_t{0}));
  EXPECT_EQ(XLen(), 0);
  // A new entry no group has read stays.
  AddEntries(2000, 2000);
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{0}, std::string("1000-1"), int64_t{0}));
  EXPECT_EQ(XLen(), 1);
  EXPECT_THAT(Keys(), ElementsAre(kStream, kRetry));
}

TEST_F(TrimRetryTest, WithoutGroupsOrStreamNothingIsTrimmed) {
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{0}, std::string(""), int64_t{0}));
  AddEntries(1, 10);
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{0}, std::string(""), int64_t{0}));
  EXPECT_EQ(XLen(), 10);
  // A group created at the start that has read nothing keeps everything.
  ASSERT_THAT(redis_->Command({"XGROUP", "CREATE", kRetry, kRetryGroup, "0"}), IsOk());
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{0}, std::string("0-1"), int64_t{0}));
  EXPECT_EQ(XLen(), 10);
}

TEST_F(TrimRetryTest, EachPassIsBoundedByTheLimit) {
  AddEntries(1, 1000);
  ASSERT_THAT(redis_->Command({"XGROUP", "CREATE", kRetry, kRetryGroup, "0"}), IsOk());
  ASSERT_EQ(ReadAs(kRetryGroup, 1000).size(), 1000u);
  int64_t total = 0;
  int passes = 0;
  while (XLen() > 0 && passes < 50) {
    const int64_t removed = std::get<0>(Trim(/*limit=*/100));
    ++passes;
    // The documented bound: `limit` whole-node entries, then at most 128.
    EXPECT_GT(removed, 0);
    EXPECT_LE(removed, 100 + 128);
    total += removed;
  }
  EXPECT_EQ(total, 1000);
  EXPECT_EQ(XLen(), 0);
  EXPECT_GE(passes, 5);  // 1000 entries cannot go in fewer passes of <= 228
}

TEST_F(TrimRetryTest, SequenceNumbersPastDoublePrecisionAreExact) {
  // The successor of "5-18446744073709551615" is "6-0".
  ASSERT_THAT(redis_->Command({"XADD", kRetry, "5-18446744073709551614", "f", "v"}), IsOk());
  ASSERT_THAT(redis_->Command({"XADD", kRetry, "5-18446744073709551615", "f", "v"}), IsOk());
  ASSERT_THAT(redis_->Command({"XADD", kRetry, "6-0", "f", "v"}), IsOk());
  ASSERT_THAT(redis_->Command({"XGROUP", "CREATE", kRetry, kRetryGroup, "0"}), IsOk());
  ASSERT_EQ(ReadAs(kRetryGroup, 1).size(), 1u);
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{1}, std::string("5-18446744073709551615"), int64_t{0}));
  EXPECT_EQ(FirstId(), "5-18446744073709551615");
  ASSERT_EQ(ReadAs(kRetryGroup, 1).size(), 1u);
  EXPECT_EQ(Trim(), std::make_tuple(int64_t{1}, std::string("6-0"), int64_t{0}));
  EXPECT_EQ(FirstId(), "6-0");
}

TEST_F(TrimRetryTest, AcknowledgedEntriesYoungerThanTheRetentionStay) {
  const int64_t now = RedisNowMs();
  for (int64_t ms : {now - 30000, now - 29000, now - 28000, now + 1000, now + 2000}) {
    ASSERT_THAT(redis_->Command({"XADD", kRetry, absl::StrCat(ms, "-0"), "f", "v"}), IsOk());
  }
  ASSERT_THAT(redis_->Command({"XGROUP", "CREATE", kRetry, kRetryGroup, "0"}), IsOk());
  ASSERT_EQ(ReadAs(kRetryGroup, 5).size(), 5u);
  // 10 s of retention: the three entries 28..30 s old go, the rest stay
  // (capped: they go later).
  auto [removed, minid, capped] = Trim(10000, /*retention_ms=*/10000);
  EXPECT_EQ(removed, 3);
  EXPECT_EQ(capped, 1);
  EXPECT_EQ(XLen(), 2);
  EXPECT_EQ(FirstId(), absl::StrCat(now + 1000, "-0"));
  // A day of retention keeps them all.
  EXPECT_EQ(std::get<0>(Trim(10000, 86400000)), 0);
  EXPECT_EQ(XLen(), 2);
}

}  // namespace
}  // namespace redrive
