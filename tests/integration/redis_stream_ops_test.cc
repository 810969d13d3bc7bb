// RedisStreamOps against a real redis-server: every StreamOps operation
// through HiredisAsync on an EventLoop, with the state it leaves read back
// on a second (synchronous) connection.
#include "daemon/redis/redis_stream_ops.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "daemon/event_loop.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/hiredis_async.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::LastDeliveredId;
using ::redrive::testing::PendingCount;
using ::redrive::testing::SortedKeys;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::XRangeAll;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

using Pairs = std::vector<std::pair<std::string, std::string>>;

constexpr char kStream[] = "orders";
constexpr char kGroup[] = "h1";
constexpr char kOwner[] = "h1-a";
constexpr char kOther[] = "h1-b";
constexpr char kScheduled[] = "h1:scheduled";
constexpr char kRetry[] = "orders.h1.retry";
constexpr char kRetryGroup[] = "h1-retry";
constexpr char kDue[] = "orders.h1.retry.due";
constexpr char kDlq[] = "orders.h1.dlq";
constexpr absl::Duration kWait = absl::Seconds(10);

const GroupRef kOwnerRef{kStream, kGroup, kOwner};

class RedisStreamOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestRedisServer::Start();
    ASSERT_NE(server_, nullptr);
    redis_ = server_->Connect();
    loop_.RunSync([this] {
      RedisConnectionOptions options;
      options.address = server_->address();
      async_ = std::make_unique<HiredisAsync>(loop_, options);
      ops_ = std::make_unique<RedisStreamOps>(*async_);
    });
    ASSERT_TRUE(::redrive::testing::WaitFor([this] {
      bool up = false;
      loop_.RunSync([&] { up = async_->connected(); });
      return up;
    }));
  }

  void TearDown() override {
    loop_.RunSync([this] {
      ops_.reset();
      async_.reset();
    });
  }

  // Runs `start(callback)` on the loop, checks that the callback did not run
  // inside the call, and waits for the result.
  template <typename R>
  R Run(const std::function<void(std::function<void(R)>)>& start) {
    auto result = std::make_shared<std::optional<R>>();
    auto done = std::make_shared<absl::Notification>();
    loop_.RunSync([&] {
      start([result, done](R r) {
        *result = std::move(r);
        done->Notify();
      });
      EXPECT_FALSE(done->HasBeenNotified()) << "answered inside the call";
    });
    EXPECT_TRUE(done->WaitForNotificationWithTimeout(kWait));
    return result->has_value() ? std::move(**result) : R(absl::DeadlineExceededError("no reply"));
  }
  absl::Status RunDone(const std::function<void(DoneCallback)>& start) {
    return Run<absl::Status>(start);
  }
  template <typename T>
  absl::StatusOr<T> RunOp(const std::function<void(OpCallback<T>)>& start) {
    return Run<absl::StatusOr<T>>(start);
  }

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) {
    absl::StatusOr<RedisReply> r = CheckReply(redis_->Command(argv));
    EXPECT_THAT(r, IsOk()) << argv[0];
    return r;
  }
  void Do(const RedisArgv& argv) { (void)Command(argv); }
  std::string Add(const std::string& stream, const Pairs& fields) {
    RedisArgv argv = {"XADD", stream, "*"};
    for (const auto& [name, value] : fields) {
      argv.push_back(name);
      argv.push_back(value);
    }
    absl::StatusOr<RedisReply> id = Command(argv);
    return id.ok() ? id->str : "";
  }
  void CreateGroupSync(const std::string& stream = kStream, const std::string& group = kGroup) {
    Do({"XGROUP", "CREATE", stream, group, "$", "MKSTREAM"});
  }
  // Adds one entry and reads it as `consumer` (synchronously); its id.
  std::string AddAndRead(const std::string& payload, const std::string& consumer = kOwner) {
    const std::string id = Add(kStream, {{"__data__", payload}});
    Do({"XREADGROUP", "GROUP", kGroup, consumer, "COUNT", "1", "STREAMS", kStream, ">"});
    return id;
  }
  // (owner, idle ms) of a pending entry; ("", -1) when not pending.
  std::pair<std::string, int64_t> Pending(const std::string& id,
                                          const std::string& stream = kStream) {
    absl::StatusOr<RedisReply> p = Command({"XPENDING", stream, kGroup, id, id, "1"});
    if (!p.ok() || p->elements.empty()) return {"", -1};
    return {p->elements[0].elements[1].str, p->elements[0].elements[2].integer};
  }
  void SetIdle(const std::string& id, const std::string& consumer, int64_t idle_ms) {
    Do({"XCLAIM", kStream, kGroup, consumer, "0", id, "IDLE", absl::StrCat(idle_ms), "JUSTID"});
  }
  int64_t RedisNowMs() {
    absl::StatusOr<RedisReply> t = Command({"TIME"});
    int64_t s = 0, us = 0;
    EXPECT_TRUE(absl::SimpleAtoi(t->elements[0].str, &s) &&
                absl::SimpleAtoi(t->elements[1].str, &us));
    return s * 1000 + us / 1000;
  }
  ScheduleRetryOp Schedule(const std::string& id, const std::string& member, absl::Duration delay) {
    return ScheduleRetryOp{kOwnerRef, kDue, id, kScheduled, delay, member};
  }

  std::unique_ptr<TestRedisServer> server_;
  std::unique_ptr<RedisConnection> redis_;
  EventLoop loop_;
  std::unique_ptr<HiredisAsync> async_;
  std::unique_ptr<RedisStreamOps> ops_;
};

// ---------------------------------------------------------------- groups

TEST_F(RedisStreamOpsTest, CreateGroupMakesTheStreamAndKeepsAnExistingGroupsPosition) {
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->CreateGroup(kStream, kGroup, "$", d); }), IsOk());
  EXPECT_THAT(SortedKeys(*redis_), ElementsAre(kStream));
  EXPECT_EQ(LastDeliveredId(*redis_, kStream, kGroup), "0-0");
  const std::string id = AddAndRead("p1");
  // Twice: OK (BUSYGROUP), and the group stays where it was.
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->CreateGroup(kStream, kGroup, "0", d); }), IsOk());
  EXPECT_EQ(LastDeliveredId(*redis_, kStream, kGroup), id);
}

TEST_F(RedisStreamOpsTest, CreateGroupOverAStringIsWrongType) {
  Do({"SET", "plain", "v"});
  absl::Status s = RunDone([&](DoneCallback d) { ops_->CreateGroup("plain", kGroup, "$", d); });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal, HasSubstr("WRONGTYPE")));
  EXPECT_EQ(RedisErrorOf(s), RedisError::kWrongType);
}

// ---------------------------------------------------------------- reading

TEST_F(RedisStreamOpsTest, ReadGroupReturnsNewEntriesWithTheirFieldsUpToCount) {
  CreateGroupSync();
  const std::string a = Add(kStream, {{"k1", "v1"}, {"k2", "v2"}});
  const std::string b = Add(kStream, {{"__data__", std::string("x\0y", 3)}});
  const std::string c = Add(kStream, {{"k3", "v3"}});
  auto read = [&](uint32_t count, bool no_ack) {
    return RunOp<std::vector<StreamEntry>>([&](OpCallback<std::vector<StreamEntry>> d) {
      ops_->ReadGroup(kOwnerRef, count, no_ack, d);
    });
  };
  absl::StatusOr<std::vector<StreamEntry>> first = read(2, false);
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].id, a);
  EXPECT_THAT((*first)[0].fields, ElementsAre(Pair("k1", "v1"), Pair("k2", "v2")));
  EXPECT_FALSE((*first)[0].deleted);
  EXPECT_EQ((*first)[1].id, b);
  EXPECT_THAT((*first)[1].fields, ElementsAre(Pair("__data__", std::string("x\0y", 3))));
  EXPECT_EQ(Pending(a).first, kOwner);
  EXPECT_EQ(Pending(b).first, kOwner);
  // NOACK: read and acknowledged at once.
  absl::StatusOr<std::vector<StreamEntry>> second = read(10, true);
  ASSERT_THAT(second, IsOk());
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].id, c);
  EXPECT_THAT((*second)[0].fields, ElementsAre(Pair("k3", "v3")));
  EXPECT_EQ(Pending(c).first, "");
  EXPECT_EQ(PendingCount(*redis_, kStream, kGroup), 2);
  // Nothing new.
  absl::StatusOr<std::vector<StreamEntry>> third = read(10, false);
  ASSERT_THAT(third, IsOk());
  EXPECT_TRUE(third->empty());
}

TEST_F(RedisStreamOpsTest, ReadGroupOfAMissingGroupIsNoGroup) {
  Add(kStream, {{"k", "v"}});
  absl::StatusOr<std::vector<StreamEntry>> r =
      RunOp<std::vector<StreamEntry>>([&](OpCallback<std::vector<StreamEntry>> d) {
        ops_->ReadGroup(GroupRef{kStream, "missing", kOwner}, 10, false, d);
      });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInternal, HasSubstr("NOGROUP")));
  EXPECT_EQ(RedisErrorOf(r.status()), RedisError::kNoGroup);
}

TEST_F(RedisStreamOpsTest, ClaimTakesEntriesIdleLongEnoughWithTheirFields) {
  CreateGroupSync();
  const std::string a = AddAndRead("pa");
  const std::string b = AddAndRead("pb");
  const std::string gone = AddAndRead("pc");
  Do({"XDEL", kStream, gone});
  SetIdle(a, kOwner, 60000);
  auto claim = [&](absl::Duration min_idle, std::vector<std::string> ids) {
    return RunOp<std::vector<StreamEntry>>([&](OpCallback<std::vector<StreamEntry>> d) {
      ops_->Claim(GroupRef{kStream, kGroup, kOther}, min_idle, ids, d);
    });
  };
  // Only `a` has been idle 30 s.
  absl::StatusOr<std::vector<StreamEntry>> claimed = claim(absl::Seconds(30), {a, b});
  ASSERT_THAT(claimed, IsOk());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].id, a);
  EXPECT_THAT((*claimed)[0].fields, ElementsAre(Pair("__data__", "pa")));
  EXPECT_EQ(Pending(a).first, kOther);
  EXPECT_EQ(Pending(b).first, kOwner);
  // Min-idle 0 takes `b`; the deleted entry is dropped from the PEL (Redis 7
  // returns no element for it).
  claimed = claim(absl::ZeroDuration(), {b, gone});
  ASSERT_THAT(claimed, IsOk());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].id, b);
  EXPECT_EQ(Pending(b).first, kOther);
  EXPECT_EQ(Pending(gone).first, "");
  // No ids: an empty answer.
  claimed = claim(absl::ZeroDuration(), {});
  ASSERT_THAT(claimed, IsOk());
  EXPECT_TRUE(claimed->empty());
}

TEST_F(RedisStreamOpsTest, ReadEntryReturnsTheEntryOrNothing) {
  const std::string id = Add(kStream, {{"a", "1"}, {"b", "2"}});
  auto read = [&](const std::string& which) {
    return RunOp<std::optional<StreamEntry>>(
        [&](OpCallback<std::optional<StreamEntry>> d) { ops_->ReadEntry(kStream, which, d); });
  };
  absl::StatusOr<std::optional<StreamEntry>> e = read(id);
  ASSERT_THAT(e, IsOk());
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->id, id);
  EXPECT_THAT((*e)->fields, ElementsAre(Pair("a", "1"), Pair("b", "2")));
  e = read("1-1");
  ASSERT_THAT(e, IsOk());
  EXPECT_FALSE(e->has_value());
}

TEST_F(RedisStreamOpsTest, AckSettlesTheIdsWithOrWithoutACallback) {
  CreateGroupSync();
  const std::string a = AddAndRead("pa");
  const std::string b = AddAndRead("pb");
  const std::string c = AddAndRead("pc");
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->Ack(kStream, kGroup, {a, b}, d); }), IsOk());
  EXPECT_EQ(Pending(a).first, "");
  EXPECT_EQ(Pending(b).first, "");
  EXPECT_EQ(Pending(c).first, kOwner);
  // A null callback; the barrier's reply comes after the ack's.
  EXPECT_THAT(RunDone([&](DoneCallback d) {
                ops_->Ack(kStream, kGroup, {c}, nullptr);
                ops_->Barrier(d);
              }),
              IsOk());
  EXPECT_EQ(PendingCount(*redis_, kStream, kGroup), 0);
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->Ack(kStream, kGroup, {}, d); }), IsOk());
}

// ---------------------------------------------------------------- pending

TEST_F(RedisStreamOpsTest, PendingConsumersListsThoseWithPendingEntries) {
  auto consumers = [&](const std::string& group) {
    return RunOp<std::vector<std::string>>(
        [&](OpCallback<std::vector<std::string>> d) { ops_->PendingConsumers(kStream, group, d); });
  };
  // No stream, no group: nobody.
  absl::StatusOr<std::vector<std::string>> r = consumers(kGroup);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->empty());
  CreateGroupSync();
  r = consumers(kGroup);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->empty());
  AddAndRead("p1", kOther);
  AddAndRead("p2", kOwner);
  AddAndRead("p3", kOwner);
  Do({"XGROUP", "CREATECONSUMER", kStream, kGroup, "h1-idle"});
  r = consumers(kGroup);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, ElementsAre(kOwner, kOther));
  r = consumers("missing");
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->empty());
}

TEST_F(RedisStreamOpsTest, IdlePendingListsTheConsumersIdleIdsUpToCount) {
  CreateGroupSync();
  const std::string a = AddAndRead("pa");
  const std::string b = AddAndRead("pb");
  const std::string c = AddAndRead("pc");
  const std::string other = AddAndRead("po", kOther);
  SetIdle(a, kOwner, 60000);
  SetIdle(c, kOwner, 60000);
  SetIdle(other, kOther, 60000);
  auto idle = [&](uint32_t count) {
    return RunOp<std::vector<std::string>>([&](OpCallback<std::vector<std::string>> d) {
      ops_->IdlePending(kOwnerRef, absl::Seconds(30), count, d);
    });
  };
  absl::StatusOr<std::vector<std::string>> r = idle(10);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, ElementsAre(a, c));
  r = idle(1);
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, ElementsAre(a));
  EXPECT_EQ(Pending(b).first, kOwner);  // not idle: not listed
}

TEST_F(RedisStreamOpsTest, ConsumersReportsNamePendingAndIdle) {
  CreateGroupSync();
  AddAndRead("p1");
  const std::string b = AddAndRead("p2");
  Do({"XGROUP", "CREATECONSUMER", kStream, kGroup, kOther});
  SetIdle(b, kOwner, 0);
  absl::StatusOr<std::vector<ConsumerInfo>> r = RunOp<std::vector<ConsumerInfo>>(
      [&](OpCallback<std::vector<ConsumerInfo>> d) { ops_->Consumers(kStream, kGroup, d); });
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, kOwner);
  EXPECT_EQ((*r)[0].pending, 2);
  EXPECT_GE((*r)[0].idle_ms, 0);
  EXPECT_LT((*r)[0].idle_ms, 10000);
  EXPECT_EQ((*r)[1].name, kOther);
  EXPECT_EQ((*r)[1].pending, 0);
  EXPECT_GE((*r)[1].idle_ms, 0);
  EXPECT_LT((*r)[1].idle_ms, 10000);
}

TEST_F(RedisStreamOpsTest, DeleteIdleConsumerDeletesOnlyAConsumerWithNothingPending) {
  CreateGroupSync();
  AddAndRead("p1", kOwner);
  Do({"XGROUP", "CREATECONSUMER", kStream, kGroup, kOther});
  auto remove = [&](const std::string& consumer) {
    return RunOp<bool>(
        [&](OpCallback<bool> d) { ops_->DeleteIdleConsumer(kStream, kGroup, consumer, d); });
  };
  absl::StatusOr<bool> r = remove(kOwner);
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(*r);
  r = remove(kOther);
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(*r);
  absl::StatusOr<RedisReply> left = Command({"XINFO", "CONSUMERS", kStream, kGroup});
  ASSERT_EQ(left->elements.size(), 1u);
  EXPECT_EQ(left->elements[0].elements[1].str, kOwner);
}

TEST_F(RedisStreamOpsTest, TouchResetsOrReleasesOnlyTheConsumersOwnEntries) {
  CreateGroupSync();
  const std::string mine = AddAndRead("pa");
  const std::string theirs = AddAndRead("pb", kOther);
  SetIdle(mine, kOwner, 60000);
  SetIdle(theirs, kOther, 60000);
  EXPECT_THAT(RunDone([&](DoneCallback d) {
                ops_->Touch(kOwnerRef, {mine, theirs}, false, d);
              }),
              IsOk());
  EXPECT_EQ(Pending(mine).first, kOwner);
  EXPECT_LT(Pending(mine).second, 10000);
  EXPECT_EQ(Pending(theirs).first, kOther);
  EXPECT_GE(Pending(theirs).second, 60000);
  // Released: idle past every lease (24 h).
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->Touch(kOwnerRef, {mine}, true, d); }), IsOk());
  EXPECT_EQ(Pending(mine).first, kOwner);
  EXPECT_GE(Pending(mine).second, 86400001);
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->Touch(kOwnerRef, {}, true, d); }), IsOk());
}

// ---------------------------------------------------------------- due zset

TEST_F(RedisStreamOpsTest, EarliestDueAndDueBatchReadTheZsetInDueOrder) {
  auto earliest = [&] {
    return RunOp<std::optional<DueEntry>>(
        [&](OpCallback<std::optional<DueEntry>> d) { ops_->EarliestDue(kDue, d); });
  };
  auto batch = [&](uint32_t limit) {
    return RunOp<std::vector<DueEntry>>(
        [&](OpCallback<std::vector<DueEntry>> d) { ops_->DueBatch(kDue, limit, d); });
  };
  absl::StatusOr<std::optional<DueEntry>> first = earliest();
  ASSERT_THAT(first, IsOk());
  EXPECT_FALSE(first->has_value());
  absl::StatusOr<std::vector<DueEntry>> due = batch(10);
  ASSERT_THAT(due, IsOk());
  EXPECT_TRUE(due->empty());

  Do({"ZADD", kDue, "1733300003000", "m3", "1733300001000", "m1", "1733300002000", "m2"});
  first = earliest();
  ASSERT_THAT(first, IsOk());
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->member, "m1");
  EXPECT_EQ((*first)->due_ms, 1733300001000);
  due = batch(2);
  ASSERT_THAT(due, IsOk());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].member, "m1");
  EXPECT_EQ((*due)[0].due_ms, 1733300001000);
  EXPECT_EQ((*due)[1].member, "m2");
  EXPECT_EQ((*due)[1].due_ms, 1733300002000);

  // RemoveDue has no callback: a barrier orders the check after it.
  EXPECT_THAT(RunDone([&](DoneCallback d) {
                ops_->RemoveDue(kDue, "m1");
                ops_->Barrier(d);
              }),
              IsOk());
  due = batch(10);
  ASSERT_THAT(due, IsOk());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].member, "m2");
  EXPECT_EQ((*due)[1].member, "m3");
  EXPECT_EQ((*due)[1].due_ms, 1733300003000);
}

// ---------------------------------------------------------------- scripts

TEST_F(RedisStreamOpsTest, ScheduleRetryHandsTheEntryOverOnlyForItsOwner) {
  CreateGroupSync();
  const std::string id = AddAndRead("p1");
  auto schedule = [&](ScheduleRetryOp op) {
    return RunOp<ScheduleRetryResult>(
        [&](OpCallback<ScheduleRetryResult> d) { ops_->ScheduleRetry(op, d); });
  };
  ScheduleRetryOp not_ours = Schedule(id, "m1", absl::Seconds(5));
  not_ours.owner.consumer = kOther;
  absl::StatusOr<ScheduleRetryResult> r = schedule(not_ours);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, ScheduleRetryResult::Kind::kNotOwner);
  EXPECT_EQ(Pending(id).first, kOwner);
  EXPECT_THAT(SortedKeys(*redis_), ElementsAre(kStream));

  const int64_t before = RedisNowMs();
  r = schedule(Schedule(id, "m1", absl::Milliseconds(12345)));
  const int64_t after = RedisNowMs();
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->kind, ScheduleRetryResult::Kind::kScheduled);
  const int64_t due_ms = absl::ToUnixMillis(r->due);
  EXPECT_GE(due_ms, before + 12345);
  EXPECT_LE(due_ms, after + 12345);
  EXPECT_EQ(Pending(id).first, kScheduled);
  absl::StatusOr<RedisReply> zset = Command({"ZRANGE", kDue, "0", "-1", "WITHSCORES"});
  ASSERT_EQ(zset->elements.size(), 2u);
  EXPECT_EQ(zset->elements[0].str, "m1");
  EXPECT_EQ(zset->elements[1].str, absl::StrCat(due_ms));
}

TEST_F(RedisStreamOpsTest, MoveDueMovesADueEntryAndReportsEveryOtherOutcome) {
  CreateGroupSync();
  auto move = [&](const std::string& id, const std::string& member) {
    MoveDueOp op{GroupRef{kStream, kGroup, kScheduled},
                 kRetry,
                 kRetryGroup,
                 kDue,
                 id,
                 member,
                 FieldList{{"__data__", "payload"}, {"x-redrive-attempt", "2"}}};
    return RunOp<MoveDueResult>([&](OpCallback<MoveDueResult> d) { ops_->MoveDue(op, d); });
  };
  auto schedule = [&](const std::string& id, const std::string& member, absl::Duration delay) {
    return RunOp<ScheduleRetryResult>([&](OpCallback<ScheduleRetryResult> d) {
      ops_->ScheduleRetry(Schedule(id, member, delay), d);
    });
  };
  // Not in the zset: gone.
  absl::StatusOr<MoveDueResult> r = move("1-1", "nobody");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, MoveDueResult::Kind::kGone);

  // Due later: nothing changes.
  const std::string later = AddAndRead("later");
  ASSERT_THAT(schedule(later, "m-later", absl::Minutes(10)), IsOk());
  r = move(later, "m-later");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, MoveDueResult::Kind::kNotDue);
  EXPECT_EQ(Pending(later).first, kScheduled);

  // Due now: one retry entry, the source acked, the member gone.
  const std::string id = AddAndRead("now");
  ASSERT_THAT(schedule(id, "m-now", absl::ZeroDuration()), IsOk());
  r = move(id, "m-now");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->kind, MoveDueResult::Kind::kMoved);
  std::vector<StreamEntry> retry = XRangeAll(*redis_, kRetry);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].id, r->retry_id);
  EXPECT_THAT(retry[0].fields,
              ElementsAre(Pair("__data__", "payload"), Pair("x-redrive-attempt", "2")));
  EXPECT_EQ(Pending(id).first, "");
  EXPECT_EQ(LastDeliveredId(*redis_, kRetry, kRetryGroup), "0-0");  // created before the add

  // Settled meanwhile: the member is dropped, nothing written.
  const std::string settled = AddAndRead("settled");
  ASSERT_THAT(schedule(settled, "m-settled", absl::ZeroDuration()), IsOk());
  Do({"XACK", kStream, kGroup, settled});
  r = move(settled, "m-settled");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, MoveDueResult::Kind::kNotPending);
  absl::StatusOr<RedisReply> members = Command({"ZRANGE", kDue, "0", "-1"});
  ASSERT_EQ(members->elements.size(), 1u);
  EXPECT_EQ(members->elements[0].str, "m-later");
  EXPECT_EQ(XRangeAll(*redis_, kRetry).size(), 1u);
}

TEST_F(RedisStreamOpsTest, DeadLetterAppendsHoldsEvictsOrFindsNothingPending) {
  CreateGroupSync();
  auto dead_letter = [&](const std::string& id, const std::string& owner, uint32_t cap, bool hold) {
    DeadLetterOp op{GroupRef{kStream, kGroup, owner},
                    kDlq,
                    id,
                    cap,
                    hold,
                    FieldList{{"__data__", id}, {"reason", "max_retries"}}};
    return RunOp<DeadLetterResult>(
        [&](OpCallback<DeadLetterResult> d) { ops_->DeadLetter(op, d); });
  };
  const std::string a = AddAndRead("pa");
  const std::string b = AddAndRead("pb");
  const std::string c = AddAndRead("pc");

  // Someone else's: nothing changes.
  absl::StatusOr<DeadLetterResult> r = dead_letter(a, kOther, 0, false);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, DeadLetterResult::Kind::kNotPending);
  EXPECT_EQ(Pending(a).first, kOwner);

  r = dead_letter(a, kOwner, 1, true);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->kind, DeadLetterResult::Kind::kDeadLettered);
  EXPECT_EQ(r->evicted, 0);
  std::vector<StreamEntry> dlq = XRangeAll(*redis_, kDlq);
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].id, r->dlq_id);
  EXPECT_THAT(dlq[0].fields, ElementsAre(Pair("__data__", a), Pair("reason", "max_retries")));
  EXPECT_EQ(Pending(a).first, "");

  // At the cap, hold: nothing changes.
  r = dead_letter(b, kOwner, 1, true);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, DeadLetterResult::Kind::kHeld);
  EXPECT_EQ(Pending(b).first, kOwner);
  EXPECT_EQ(XRangeAll(*redis_, kDlq).size(), 1u);

  // At the cap, evict: the oldest goes; any owner ("").
  r = dead_letter(b, "", 1, false);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->kind, DeadLetterResult::Kind::kDeadLettered);
  EXPECT_EQ(r->evicted, 1);
  dlq = XRangeAll(*redis_, kDlq);
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].id, r->dlq_id);
  EXPECT_THAT(dlq[0].fields, ElementsAre(Pair("__data__", b), Pair("reason", "max_retries")));

  // Acknowledged already: not pending.
  Do({"XACK", kStream, kGroup, c});
  r = dead_letter(c, kOwner, 0, false);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->kind, DeadLetterResult::Kind::kNotPending);
}

TEST_F(RedisStreamOpsTest, TrimRetryRemovesWhatEveryGroupAcknowledged) {
  auto trim = [&](absl::Duration retention) {
    return RunOp<TrimRetryResult>(
        [&](OpCallback<TrimRetryResult> d) { ops_->TrimRetry(kRetry, 100, retention, d); });
  };
  // No stream (no group): nothing applies.
  absl::StatusOr<TrimRetryResult> r = trim(absl::ZeroDuration());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->removed, 0);
  EXPECT_EQ(r->min_id, "");
  EXPECT_FALSE(r->more);

  CreateGroupSync(kRetry, kRetryGroup);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Add(kRetry, {{"n", absl::StrCat(i)}}));
  Do({"XREADGROUP", "GROUP", kRetryGroup, kOwner, "COUNT", "4", "STREAMS", kRetry, ">"});
  Do({"XACK", kRetry, kRetryGroup, ids[0], ids[1]});
  // A retention of an hour keeps everything (capped by it).
  r = trim(absl::Hours(1));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->removed, 0);
  EXPECT_TRUE(r->more);
  EXPECT_EQ(XRangeAll(*redis_, kRetry).size(), 4u);
  // Without: the two acknowledged ones go, up to the lowest pending id.
  r = trim(absl::ZeroDuration());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->removed, 2);
  EXPECT_EQ(r->min_id, ids[2]);
  EXPECT_TRUE(r->more);
  std::vector<StreamEntry> left = XRangeAll(*redis_, kRetry);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].id, ids[2]);
  r = trim(absl::ZeroDuration());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->removed, 0);
  EXPECT_EQ(r->min_id, ids[2]);
  EXPECT_FALSE(r->more);
}

// ---------------------------------------------------------------- hashes

TEST_F(RedisStreamOpsTest, HashOperationsSetReadTestAndDeleteFields) {
  constexpr char kKey[] = "redrive:handlers";
  auto fields = [&] {
    return RunOp<Pairs>([&](OpCallback<Pairs> d) { ops_->HashFields(kKey, d); });
  };
  auto has = [&](const std::string& field) {
    return RunOp<bool>([&](OpCallback<bool> d) { ops_->HashHas(kKey, field, d); });
  };
  absl::StatusOr<Pairs> all = fields();
  ASSERT_THAT(all, IsOk());
  EXPECT_TRUE(all->empty());
  EXPECT_THAT(RunDone([&](DoneCallback d) {
                ops_->HashSet(kKey, {{"orders h1", "x"}, {"orders h2", std::string("\0y", 2)}}, d);
              }),
              IsOk());
  all = fields();
  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(*all, ElementsAre(Pair("orders h1", "x"), Pair("orders h2", std::string("\0y", 2))));
  absl::StatusOr<bool> present = has("orders h1");
  ASSERT_THAT(present, IsOk());
  EXPECT_TRUE(*present);
  present = has("orders h9");
  ASSERT_THAT(present, IsOk());
  EXPECT_FALSE(*present);
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->HashDelete(kKey, "orders h1", d); }), IsOk());
  // Null callbacks, ordered by a barrier.
  EXPECT_THAT(RunDone([&](DoneCallback d) {
                ops_->HashSet(kKey, {{"orders h3", "z"}}, nullptr);
                ops_->HashDelete(kKey, "orders h2", nullptr);
                ops_->Barrier(d);
              }),
              IsOk());
  all = fields();
  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(*all, ElementsAre(Pair("orders h3", "z")));
  EXPECT_THAT(RunDone([&](DoneCallback d) { ops_->HashSet(kKey, {}, d); }), IsOk());
}

TEST_F(RedisStreamOpsTest, HashOfAnotherTypeIsWrongType) {
  Do({"SET", "plain", "v"});
  absl::StatusOr<Pairs> all =
      RunOp<Pairs>([&](OpCallback<Pairs> d) { ops_->HashFields("plain", d); });
  EXPECT_EQ(RedisErrorOf(all.status()), RedisError::kWrongType);
}

}  // namespace
}  // namespace redrive
