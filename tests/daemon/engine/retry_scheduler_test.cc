// RetryScheduler (daemon/engine/retry_scheduler.h): a failed attempt is
// scheduled (schedule_retry.lua, ScheduleRetryOp) after the policy's backoff
// or the NACK's delay, or dead-lettered when the policy is exhausted or the
// verb was TERMINATE; entries a sweep reclaimed fail as LEASE_EXPIRED and
// poison goes straight to the DLQ; Return hands entries back as attempt 0;
// the due mover probes the due zset, reads a batch and moves each due member
// (MoveDueOp), dead-letters poison and drops what it cannot use.
#include "daemon/engine/retry_scheduler.h"

#include "daemon/backoff.h"
#include "tests/daemon/engine/engine_test_base.h"
#include "tests/testing/envelope_bytes.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr absl::Duration kHeldRetry = absl::Seconds(30);
const int64_t kT0Ms = 1'700'000'000'000;

v1::Register TwoRetries() {
  v1::Register r = BaseRegister();
  r.mutable_retry_policy()->set_max_retries(2);
  r.mutable_retry_policy()->set_initial_backoff_ms(1000);
  r.mutable_retry_policy()->set_multiplier(2.0);
  r.mutable_retry_policy()->set_max_backoff_ms(300000);
  return r;
}

std::string FieldOf(const FieldList& fields, absl::string_view name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return v;
  }
  return "<none>";
}

std::string JsonEnvelope(const std::string& body) {
  return SpecEnvelope({{"content-type", "application/json"}}, body);
}

class RetrySchedulerTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.tick = absl::Milliseconds(100);
    options_.min_sweep = absl::Seconds(5);
    options_.error_backoff = absl::Milliseconds(100);
    options_.move_batch = 128;
    loop_.RunSync([this] {
      dl_ = std::make_unique<DeadLetterer>(ctx_);
      RetryScheduler::Hooks hooks;
      hooks.schedule_failed = [this](const HandlerRef& ref, uint8_t source) {
        schedule_failed_.emplace_back(ref.key, source);
      };
      hooks.moved = [this](const HandlerRef& ref, uint8_t source) {
        moved_.emplace_back(ref.key, source);
      };
      hooks.draining = [this] { return draining_; };
      rs_ = std::make_unique<RetryScheduler>(ctx_, *dl_, std::move(hooks));
      rs_->Add(ref_);
      dl_->Add(ref_);
    });
    Answer<ReadEntryCall>([](const ReadEntryCall& c) -> ReadEntryCall::Reply {
      return std::optional<StreamEntry>(DataEntry(c.id, JsonEnvelope("{\"n\":5}")));
    });
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] {
      rs_.reset();
      dl_.reset();
    });
  }
  void Fail(const Entry& e, FailKind kind, std::optional<absl::Duration> delay = std::nullopt) {
    Run([&] { rs_->Fail(ref_, spec_, e, kind, "boom", "E_BOOM", delay, kHeldRetry); });
  }
  DueMember Decode(const std::string& raw) {
    absl::StatusOr<DueMember> m = DecodeDueMember(raw);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : DueMember{};
  }
  std::string Member(int source, const std::string& id, uint32_t attempt = 1) {
    FailureRecord f;
    f.attempt = attempt;
    f.outcome = "nack";
    f.error = "boom";
    f.consumer = "billing-i1";
    f.at_ms = kT0Ms - 5000;
    return EncodeDueMember(DueMember{source, id, f});
  }
  // The due zset as the mover finds it: `members` (raw, due ms).
  void DueZset(std::vector<DueEntry> members) {
    Answer<EarliestDueCall>([members](const EarliestDueCall&) -> EarliestDueCall::Reply {
      if (members.empty()) return std::optional<DueEntry>();
      return std::optional<DueEntry>(members.front());
    });
    Answer<DueBatchCall>([members](const DueBatchCall& c) -> DueBatchCall::Reply {
      std::vector<DueEntry> out(members.begin(),
                                members.begin() + std::min<size_t>(c.limit, members.size()));
      return out;
    });
  }
  void AnswerMove(MoveDueResult::Kind kind) {
    Answer<MoveDueCall>([kind](const MoveDueCall&) -> MoveDueCall::Reply {
      MoveDueResult r;
      r.kind = kind;
      r.retry_id = "100-0";
      return r;
    });
  }
  void MaybeMove(absl::Time now) {
    SetNow(now);
    Run([&] { rs_->MaybeMove(ref_, spec_, now); });
  }

  std::unique_ptr<DeadLetterer> dl_;
  std::unique_ptr<RetryScheduler> rs_;
  const SpecPtr spec_ = MakeSpec(TwoRetries());
  // Loop thread.
  std::vector<std::pair<std::string, uint8_t>> schedule_failed_, moved_;
  bool draining_ = false;
};

TEST_F(RetrySchedulerTest, AFailureIsScheduledAfterThePolicysBackoff) {
  Fail(Entry{"5-0", 1, kMain}, FailKind::kNack);
  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 1u);
  const ScheduleRetryOp& op = calls[0].op;
  EXPECT_EQ(op.owner.stream, "orders");
  EXPECT_EQ(op.owner.group, "billing");
  EXPECT_EQ(op.owner.consumer, "billing-i1");
  EXPECT_EQ(op.due_zset, spec_->keys.due_zset);
  EXPECT_EQ(op.id, "5-0");
  EXPECT_EQ(op.scheduled_consumer, ScheduledConsumerName("billing"));
  // 1000 ms × 2^0 plus jitter 0.1 × unit_random 0.5.
  EXPECT_EQ(op.delay, absl::Milliseconds(1050));
  const DueMember m = Decode(op.member);
  EXPECT_EQ(m.source, 0);
  EXPECT_EQ(m.entry_id, "5-0");
  EXPECT_EQ(m.failure.attempt, 1u);
  EXPECT_EQ(m.failure.outcome, "nack");
  EXPECT_EQ(m.failure.error, "boom");
  EXPECT_EQ(m.failure.error_code, "E_BOOM");
  EXPECT_EQ(m.failure.consumer, "billing-i1");
  EXPECT_EQ(m.failure.at_ms, kT0Ms);
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.retries_scheduled, 1u);
  EXPECT_EQ(s.dead_letters, 0u);
  EXPECT_THAT(Calls<ReadEntryCall>(), IsEmpty());
}

TEST_F(RetrySchedulerTest, TheBackoffGrowsWithTheAttempt) {
  Fail(Entry{"5-0", 2, kRetry}, FailKind::kExpired);
  ASSERT_EQ(Calls<ScheduleRetryCall>().size(), 1u);
  const ScheduleRetryOp op = Calls<ScheduleRetryCall>()[0].op;
  EXPECT_EQ(op.delay, absl::Milliseconds(2100));  // 2000 + 2000 × 0.1 × 0.5
  EXPECT_EQ(op.delay, RetryDelay(spec_->retry_policy, 2, 0.5));
  EXPECT_EQ(op.owner.stream, "orders.billing.retry");
  EXPECT_EQ(op.owner.group, "billing-retry");
  EXPECT_EQ(Decode(op.member).source, 1);
  EXPECT_EQ(Decode(op.member).failure.outcome, "lease_expired");
  EXPECT_EQ(Decode(op.member).failure.attempt, 2u);
}

TEST_F(RetrySchedulerTest, ANackDelayReplacesTheBackoff) {
  Fail(Entry{"5-0", 1, kMain}, FailKind::kNack, absl::Seconds(7));
  ASSERT_EQ(Calls<ScheduleRetryCall>().size(), 1u);
  EXPECT_EQ(Calls<ScheduleRetryCall>()[0].op.delay, absl::Seconds(7));
}

TEST_F(RetrySchedulerTest, AnExhaustedPolicyDeadLettersAsMaxRetries) {
  Fail(Entry{"5-0", 3, kRetry}, FailKind::kNack);  // max_retries 2: the third call was the last
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  ASSERT_EQ(Calls<ReadEntryCall>().size(), 1u);
  EXPECT_EQ(Calls<ReadEntryCall>()[0].stream, "orders.billing.retry");
  EXPECT_EQ(Calls<ReadEntryCall>()[0].id, "5-0");
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  const DeadLetterOp op = Calls<DeadLetterCall>()[0].op;
  EXPECT_EQ(op.from.consumer, "billing-i1");
  EXPECT_EQ(FieldOf(op.fields, kReasonField), "max_retries");
  EXPECT_EQ(FieldOf(op.fields, kLastErrorField), "boom");
  EXPECT_EQ(Stats().retries_scheduled, 0u);
}

TEST_F(RetrySchedulerTest, AnExhaustedPolicyAfterADisconnectDeadLettersAsDisconnected) {
  Fail(Entry{"5-0", 3, kMain}, FailKind::kDisconnected);
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  EXPECT_EQ(FieldOf(Calls<DeadLetterCall>()[0].op.fields, kReasonField), "disconnected");
}

TEST_F(RetrySchedulerTest, ATerminateDeadLettersAtOnce) {
  Fail(Entry{"5-0", 1, kMain}, FailKind::kTerminated);
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  EXPECT_EQ(FieldOf(Calls<DeadLetterCall>()[0].op.fields, kReasonField), "terminated");
}

TEST_F(RetrySchedulerTest, ReturnHandsEntriesBackAsAttemptZeroWithNoDelay) {
  Run([&] { rs_->Return(ref_, spec_, kRetry, {"5-0", "6-0"}); });
  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const ScheduleRetryOp& op = calls[i].op;
    EXPECT_EQ(op.owner.stream, "orders.billing.retry");
    EXPECT_EQ(op.owner.consumer, "billing-i1");
    EXPECT_EQ(op.delay, absl::ZeroDuration());
    const DueMember m = Decode(op.member);
    EXPECT_EQ(m.source, 1);
    EXPECT_EQ(m.entry_id, i == 0 ? "5-0" : "6-0");
    // Attempt 0 as sent (DecodeDueMember reads any attempt below 1 as 1).
    EXPECT_THAT(op.member, ::testing::HasSubstr("\"attempt\":0"));
    EXPECT_EQ(m.failure.outcome, "returned");
    EXPECT_EQ(m.failure.consumer, "billing-i1");
    EXPECT_EQ(m.failure.at_ms, kT0Ms);
  }
  EXPECT_EQ(calls[0].op.id, "5-0");
  EXPECT_EQ(calls[1].op.id, "6-0");
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.returned, 2u);
  EXPECT_EQ(s.retries_scheduled, 0u);
}

TEST_F(RetrySchedulerTest, AFailedScheduleCountsAnErrorAndCallsTheHook) {
  Answer<ScheduleRetryCall>([](const ScheduleRetryCall&) -> ScheduleRetryCall::Reply {
    return absl::UnavailableError("connection lost");
  });
  Fail(Entry{"5-0", 1, kRetry}, FailKind::kNack);
  EXPECT_EQ(Stats().redis_errors, 1u);
  loop_.RunSync([&] {
    EXPECT_THAT(schedule_failed_, ElementsAre(Pair(kKey, kRetry)));
    EXPECT_EQ(tracker_.in_progress(), 0u);
  });
}

TEST_F(RetrySchedulerTest, AReturnAlreadyDueIsMovedAtOnceUnlessDraining) {
  Answer<ScheduleRetryCall>([](const ScheduleRetryCall&) -> ScheduleRetryCall::Reply {
    return ScheduleRetryResult{ScheduleRetryResult::Kind::kScheduled, kT0};
  });
  Run([&] { rs_->Return(ref_, spec_, kMain, {"5-0"}); });
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);
  EXPECT_EQ(Calls<EarliestDueCall>()[0].due_zset, spec_->keys.due_zset);
  loop_.RunSync([&] { draining_ = true; });
  SetNow(kT0 + absl::Seconds(10));  // the mover may look again
  Run([&] { rs_->Return(ref_, spec_, kMain, {"6-0"}); });
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);
}

TEST_F(RetrySchedulerTest, ADelayedRetryIsNotMovedBeforeItsTick) {
  Answer<ScheduleRetryCall>([](const ScheduleRetryCall&) -> ScheduleRetryCall::Reply {
    return ScheduleRetryResult{ScheduleRetryResult::Kind::kScheduled,
                               kT0 + absl::Milliseconds(1050)};
  });
  MaybeMove(kT0);  // a new handler looks at once; the zset is empty
  ASSERT_EQ(Calls<EarliestDueCall>().size(), 1u);
  Fail(Entry{"5-0", 1, kMain}, FailKind::kNack);
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);  // not due: no move now
  MaybeMove(kT0 + absl::Milliseconds(1049));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);
  MaybeMove(kT0 + absl::Milliseconds(1050));  // the schedule's due time
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 2u);
}

TEST_F(RetrySchedulerTest, AnEmptyZsetIsProbedAgainAfterMinSweep) {
  MaybeMove(kT0);
  ASSERT_EQ(Calls<EarliestDueCall>().size(), 1u);
  EXPECT_THAT(Calls<DueBatchCall>(), IsEmpty());
  MaybeMove(kT0 + absl::Seconds(5) - absl::Milliseconds(1));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);
  MaybeMove(kT0 + absl::Seconds(5));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 2u);
}

TEST_F(RetrySchedulerTest, AMemberNotYetDueIsProbedAgainAtItsDueTimeWithinASecond) {
  DueZset({{Member(0, "5-0"), kT0Ms + 300}});
  MaybeMove(kT0);
  EXPECT_THAT(Calls<DueBatchCall>(), IsEmpty());
  MaybeMove(kT0 + absl::Milliseconds(299));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);
  // Far in the future now (another daemon moved the first): looked at again
  // within a second all the same.
  DueZset({{Member(0, "6-0"), kT0Ms + 60'000}});
  MaybeMove(kT0 + absl::Milliseconds(300));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 2u);
  EXPECT_THAT(Calls<DueBatchCall>(), IsEmpty());
  MaybeMove(kT0 + absl::Milliseconds(1300) - absl::Milliseconds(1));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 2u);
  MaybeMove(kT0 + absl::Milliseconds(1300));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 3u);
}

TEST_F(RetrySchedulerTest, ADueMemberIsMovedIntoTheRetryStream) {
  const std::string raw = Member(0, "5-0");
  DueZset({{raw, kT0Ms - 1}});
  AnswerMove(MoveDueResult::Kind::kMoved);
  MaybeMove(kT0);
  ASSERT_EQ(Calls<DueBatchCall>().size(), 1u);
  EXPECT_EQ(Calls<DueBatchCall>()[0].due_zset, spec_->keys.due_zset);
  EXPECT_EQ(Calls<DueBatchCall>()[0].limit, 129u);  // move_batch + 1
  ASSERT_EQ(Calls<ReadEntryCall>().size(), 1u);
  EXPECT_EQ(Calls<ReadEntryCall>()[0].stream, "orders");
  EXPECT_EQ(Calls<ReadEntryCall>()[0].id, "5-0");
  ASSERT_EQ(Calls<MoveDueCall>().size(), 1u);
  const MoveDueOp op = Calls<MoveDueCall>()[0].op;
  EXPECT_EQ(op.from.stream, "orders");
  EXPECT_EQ(op.from.group, "billing");
  EXPECT_EQ(op.from.consumer, ScheduledConsumerName("billing"));
  EXPECT_EQ(op.retry_stream, "orders.billing.retry");
  EXPECT_EQ(op.retry_group, "billing-retry");
  EXPECT_EQ(op.due_zset, spec_->keys.due_zset);
  EXPECT_EQ(op.id, "5-0");
  EXPECT_EQ(op.member, raw);
  const StreamEntry entry = DataEntry("5-0", JsonEnvelope("{\"n\":5}"));
  EXPECT_EQ(op.fields, *RetryEntryFields(entry, *ReadRetryState(entry), Decode(raw).failure));
  EXPECT_EQ(FieldOf(op.fields, "__data__"),
            JsonEnvelope("{\"n\":5,\"_retry_count\":\"1\",\"_original_message_id\":\"5-0\"}"));
  EXPECT_EQ(FieldOf(op.fields, kLastErrorField), "boom");
  EXPECT_EQ(Stats().retries_moved, 1u);
  loop_.RunSync([&] {
    EXPECT_THAT(moved_, ElementsAre(Pair(kKey, kMain)));
    EXPECT_EQ(tracker_.in_progress(), 0u);
  });
  EXPECT_THAT(Calls<RemoveDueCall>(), IsEmpty());
}

TEST_F(RetrySchedulerTest, NotDueOnRedisClockLooksAgainAfterATick) {
  DueZset({{Member(0, "5-0"), kT0Ms}});
  AnswerMove(MoveDueResult::Kind::kNotDue);
  MaybeMove(kT0);
  ASSERT_EQ(Calls<MoveDueCall>().size(), 1u);
  EXPECT_EQ(Stats().retries_moved, 0u);
  MaybeMove(kT0 + absl::Milliseconds(99));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);
  MaybeMove(kT0 + absl::Milliseconds(100));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 2u);
  loop_.RunSync([&] { EXPECT_THAT(moved_, IsEmpty()); });
}

TEST_F(RetrySchedulerTest, AtMostMoveBatchMembersPerPassAndMoreGoOnNextTick) {
  options_.move_batch = 2;
  DueZset({{Member(0, "5-0"), kT0Ms - 3},
           {Member(0, "6-0"), kT0Ms - 2},
           {Member(1, "7-0"), kT0Ms - 1}});
  AnswerMove(MoveDueResult::Kind::kMoved);
  MaybeMove(kT0);
  ASSERT_EQ(Calls<DueBatchCall>().size(), 1u);
  EXPECT_EQ(Calls<DueBatchCall>()[0].limit, 3u);
  const std::vector<ReadEntryCall> reads = Calls<ReadEntryCall>();
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[0].id, "5-0");
  EXPECT_EQ(reads[1].id, "6-0");
  MaybeMove(kT0);  // at once, same time
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 2u);
}

TEST_F(RetrySchedulerTest, APoisonMemberIsDeadLetteredAndRemovedOnlyOnceMoved) {
  Answer<ReadEntryCall>([](const ReadEntryCall& c) -> ReadEntryCall::Reply {
    return std::optional<StreamEntry>(DataEntry(c.id, "{\"n\":4,\"_retry_count\":\"abc\"}"));
  });
  const std::string raw = Member(1, "4-0", 2);
  DueZset({{raw, kT0Ms}});
  Answer<DeadLetterCall>([](const DeadLetterCall&) -> DeadLetterCall::Reply {
    DeadLetterResult r;
    r.kind = DeadLetterResult::Kind::kHeld;
    return r;
  });
  MaybeMove(kT0);
  EXPECT_THAT(Calls<MoveDueCall>(), IsEmpty());
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  const DeadLetterOp op = Calls<DeadLetterCall>()[0].op;
  EXPECT_EQ(op.from.stream, "orders.billing.retry");
  EXPECT_EQ(op.from.group, "billing-retry");
  EXPECT_EQ(op.from.consumer, ScheduledConsumerName("billing"));
  EXPECT_EQ(op.id, "4-0");
  EXPECT_EQ(FieldOf(op.fields, kReasonField), "poison");
  EXPECT_EQ(FieldOf(op.fields, kLastErrorCodeField), "POISON");
  EXPECT_EQ(Stats().poison, 1u);
  EXPECT_THAT(Calls<RemoveDueCall>(), IsEmpty());  // held: the member stays
  Answer<DeadLetterCall>([](const DeadLetterCall&) -> DeadLetterCall::Reply {
    DeadLetterResult r;
    r.kind = DeadLetterResult::Kind::kDeadLettered;
    return r;
  });
  MaybeMove(kT0 + absl::Seconds(1));
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 2u);
  const std::vector<RemoveDueCall> removed = Calls<RemoveDueCall>();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].due_zset, spec_->keys.due_zset);
  EXPECT_EQ(removed[0].member, raw);
  EXPECT_EQ(Stats().dead_letters, 1u);
  loop_.RunSync([&] { EXPECT_EQ(tracker_.in_progress(), 0u); });
}

TEST_F(RetrySchedulerTest, AMemberRedriveDidNotWriteIsRemoved) {
  DueZset({{"not a member", kT0Ms - 1}, {Member(0, "5-0"), kT0Ms}});
  AnswerMove(MoveDueResult::Kind::kMoved);
  MaybeMove(kT0);
  const std::vector<RemoveDueCall> removed = Calls<RemoveDueCall>();
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].due_zset, spec_->keys.due_zset);
  EXPECT_EQ(removed[0].member, "not a member");
  ASSERT_EQ(Calls<ReadEntryCall>().size(), 1u);
  EXPECT_EQ(Calls<ReadEntryCall>()[0].id, "5-0");
  EXPECT_EQ(Calls<MoveDueCall>().size(), 1u);
}

TEST_F(RetrySchedulerTest, AnEntryGoneFromTheStreamDropsItsRetry) {
  Answer<ReadEntryCall>(
      [](const ReadEntryCall&) -> ReadEntryCall::Reply { return std::optional<StreamEntry>(); });
  const std::string raw = Member(0, "5-0");
  DueZset({{raw, kT0Ms}});
  MaybeMove(kT0);
  EXPECT_THAT(Calls<MoveDueCall>(), IsEmpty());
  ASSERT_EQ(Calls<RemoveDueCall>().size(), 1u);
  EXPECT_EQ(Calls<RemoveDueCall>()[0].member, raw);
  ASSERT_EQ(Calls<AckCall>().size(), 1u);
  EXPECT_EQ(Calls<AckCall>()[0].stream, "orders");
  EXPECT_EQ(Calls<AckCall>()[0].group, "billing");
  EXPECT_EQ(Calls<AckCall>()[0].ids, (Ids{"5-0"}));
}

TEST_F(RetrySchedulerTest, AFailedProbeLooksAgainAfterErrorBackoff) {
  Answer<EarliestDueCall>([](const EarliestDueCall&) -> EarliestDueCall::Reply {
    return absl::UnavailableError("down");
  });
  MaybeMove(kT0);
  EXPECT_EQ(Stats().redis_errors, 1u);
  MaybeMove(kT0 + absl::Milliseconds(99));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 1u);
  MaybeMove(kT0 + absl::Milliseconds(100));
  EXPECT_EQ(Calls<EarliestDueCall>().size(), 2u);
}

TEST_F(RetrySchedulerTest, AForgottenHandlerIsNotMoved) {
  Run([&] { rs_->Forget(ref_); });
  MaybeMove(kT0);
  EXPECT_THAT(Calls<EarliestDueCall>(), IsEmpty());
}

// ---------------------------------------------------------------- Reclaimed, Poison, Return

TEST_F(RetrySchedulerTest, ReclaimedEntriesAreFailedAttemptsWhoseLeaseExpired) {
  std::vector<std::string> deleted;
  StreamEntry gone;
  gone.id = "1-0";
  gone.deleted = true;
  Run([&] {
    deleted =
        rs_->Reclaimed(ref_, spec_, kRetry, "billing-i9",
                       {gone, DataEntry("2-0", JsonEnvelope("{\"n\":2,\"_retry_count\":\"1\"}")),
                        DataEntry("4-0", JsonEnvelope("{\"n\":4}"))},
                       kHeldRetry);
  });
  EXPECT_THAT(deleted, ElementsAre("1-0"));  // for the caller to acknowledge
  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].op.id, "2-0");
  EXPECT_EQ(calls[0].op.owner.stream, "orders.billing.retry");
  EXPECT_EQ(calls[0].op.owner.consumer, "billing-i1");
  EXPECT_EQ(calls[0].op.delay, absl::Milliseconds(2100));  // the backoff of attempt 2
  const DueMember m = Decode(calls[0].op.member);
  EXPECT_EQ(m.source, 1);
  EXPECT_EQ(m.failure.attempt, 2u);
  EXPECT_EQ(m.failure.outcome, "lease_expired");
  EXPECT_EQ(m.failure.error, "lease expired on consumer billing-i9");
  EXPECT_EQ(m.failure.error_code, "LEASE_EXPIRED");
  EXPECT_EQ(m.failure.consumer, "billing-i1");
  EXPECT_EQ(calls[1].op.id, "4-0");
  EXPECT_EQ(calls[1].op.delay, absl::Milliseconds(1050));  // attempt 1
  EXPECT_EQ(Decode(calls[1].op.member).failure.attempt, 1u);
  EXPECT_THAT(Calls<DeadLetterCall>(), IsEmpty());
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.reclaimed, 2u);  // not the deleted one
  EXPECT_EQ(s.retries_scheduled, 2u);
  EXPECT_EQ(s.poison, 0u);
}

TEST_F(RetrySchedulerTest, AReclaimedPoisonEntryIsDeadLetteredWithItsFieldsAtHand) {
  std::vector<std::string> deleted;
  Run([&] {
    deleted = rs_->Reclaimed(ref_, spec_, kMain, "billing-i9",
                             {DataEntry("3-0", "{\"n\":3,\"_retry_count\":\"abc\"}")}, kHeldRetry);
  });
  EXPECT_THAT(deleted, IsEmpty());
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  EXPECT_THAT(Calls<ReadEntryCall>(), IsEmpty());
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  const DeadLetterOp op = Calls<DeadLetterCall>()[0].op;
  EXPECT_EQ(op.from.stream, "orders");
  EXPECT_EQ(op.from.group, "billing");
  EXPECT_EQ(op.from.consumer, "billing-i1");
  EXPECT_EQ(op.id, "3-0");
  EXPECT_EQ(FieldOf(op.fields, kReasonField), "poison");
  EXPECT_EQ(FieldOf(op.fields, kLastErrorCodeField), "POISON");
  EXPECT_THAT(FieldOf(op.fields, kLastErrorField), ::testing::HasSubstr("_retry_count"));
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.reclaimed, 1u);
  EXPECT_EQ(s.poison, 1u);
  EXPECT_EQ(s.retries_scheduled, 0u);
}

TEST_F(RetrySchedulerTest, AReclaimedEntryPastItsPolicyIsDeadLetteredAndHeldForHeldRetry) {
  Answer<DeadLetterCall>([](const DeadLetterCall&) -> DeadLetterCall::Reply {
    DeadLetterResult r;
    r.kind = DeadLetterResult::Kind::kHeld;
    return r;
  });
  Run([&] {
    rs_->Reclaimed(ref_, spec_, kMain, "billing-i9",
                   {DataEntry("5-0", JsonEnvelope("{\"n\":5,\"_retry_count\":\"2\"}"))},
                   kHeldRetry);
  });
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  ASSERT_EQ(Calls<ReadEntryCall>().size(), 1u);
  EXPECT_EQ(Calls<ReadEntryCall>()[0].id, "5-0");
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  EXPECT_EQ(FieldOf(Calls<DeadLetterCall>()[0].op.fields, kReasonField), "max_retries");
  EXPECT_EQ(FieldOf(Calls<DeadLetterCall>()[0].op.fields, kLastErrorCodeField), "LEASE_EXPIRED");
  // Held by a full DLQ: tried again after the held_retry Reclaimed was given.
  Run([&] { dl_->RetryDue(ref_, spec_, kT0 + kHeldRetry - absl::Milliseconds(1), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 1u);
  Run([&] { dl_->RetryDue(ref_, spec_, kT0 + kHeldRetry, kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 2u);
}

TEST_F(RetrySchedulerTest, PoisonGoesToTheDeadLetterQueueWithItsRawBytes) {
  const StreamEntry poison = DataEntry("6-0", "not an envelope");
  Run([&] {
    rs_->Poison(spec_, kRetry, poison, absl::DataLossError("poison: corrupt envelope"),
                FailKind::kNack);
  });
  EXPECT_THAT(Calls<ReadEntryCall>(), IsEmpty());
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  const DeadLetterOp op = Calls<DeadLetterCall>()[0].op;
  EXPECT_EQ(op.from.stream, "orders.billing.retry");
  EXPECT_EQ(op.from.group, "billing-retry");
  EXPECT_EQ(op.from.consumer, "billing-i1");
  EXPECT_EQ(op.dlq_stream, spec_->keys.dlq_stream);
  EXPECT_EQ(op.id, "6-0");
  EXPECT_EQ(FieldOf(op.fields, kReasonField), "poison");
  EXPECT_EQ(FieldOf(op.fields, kLastErrorField), "poison: corrupt envelope");
  EXPECT_EQ(FieldOf(op.fields, kLastErrorCodeField), "POISON");
  // The raw bytes, base64 in EggAI's poison wrapping.
  EXPECT_THAT(FieldOf(op.fields, "__data__"),
              ::testing::HasSubstr("\"_dlq_raw_b64\":\"bm90IGFuIGVudmVsb3Bl\""));
  EXPECT_EQ(Stats().poison, 1u);
  loop_.RunSync([&] { EXPECT_EQ(tracker_.in_progress(), 0u); });
}

TEST_F(RetrySchedulerTest, ReturnOfEntriesHandsEachSourceBackInItsOrder) {
  Run([&] {
    rs_->Return(ref_, spec_,
                std::vector<Entry>{{"1-0", 3, kMain}, {"2-0", 1, kRetry}, {"3-0", 2, kMain}});
  });
  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].op.id, "1-0");
  EXPECT_EQ(calls[0].op.owner.stream, "orders");
  EXPECT_EQ(calls[1].op.id, "3-0");
  EXPECT_EQ(calls[1].op.owner.stream, "orders");
  EXPECT_EQ(calls[2].op.id, "2-0");
  EXPECT_EQ(calls[2].op.owner.stream, "orders.billing.retry");
  for (const ScheduleRetryCall& c : calls) {
    EXPECT_EQ(c.op.delay, absl::ZeroDuration());
    EXPECT_EQ(Decode(c.op.member).failure.outcome, "returned");
    EXPECT_THAT(c.op.member, ::testing::HasSubstr("\"attempt\":0"));  // whatever the attempt was
  }
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.returned, 3u);
  EXPECT_EQ(s.retries_scheduled, 0u);
  Run([&] { rs_->Return(ref_, spec_, std::vector<Entry>{}); });
  EXPECT_EQ(Calls<ScheduleRetryCall>().size(), 3u);
}

}  // namespace
}  // namespace redrive::testing
