// DeadLetterer (daemon/engine/dead_letterer.h): reads the entry again and
// dead-letters it with dead_letter.lua (DeadLetterOp: the DLQ, its cap and
// overflow, the owner); held (swept past) until it has left; a move held by
// a full DLQ is tried again after held_retry, a failed one after
// 10 × error_backoff; an entry gone from the stream is acked.
#include "daemon/engine/dead_letterer.h"

#include "absl/container/flat_hash_set.h"
#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Outcome = DeadLetterer::Outcome;

constexpr absl::Duration kHeldRetry = absl::Seconds(30);

v1::Register CappedRegister() {
  v1::Register r = BaseRegister();
  r.mutable_dead_letter_policy()->set_max_len(100);
  r.mutable_dead_letter_policy()->set_overflow(v1::DeadLetterPolicy::OVERFLOW_HOLD);
  return r;
}

FailureRecord Failure(uint32_t attempt) {
  FailureRecord f;
  f.attempt = attempt;
  f.outcome = "nack";
  f.error = "boom";
  f.error_code = "E_BOOM";
  f.consumer = "billing-i1";
  f.at_ms = 1'700'000'000'000;
  return f;
}

std::string FieldOf(const FieldList& fields, absl::string_view name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return v;
  }
  return "<none>";
}

DeadLetterResult Result(DeadLetterResult::Kind kind, int64_t evicted = 0) {
  DeadLetterResult r;
  r.kind = kind;
  r.dlq_id = "9-0";
  r.evicted = evicted;
  return r;
}

class DeadLettererTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.error_backoff = absl::Milliseconds(100);
    loop_.RunSync([this] {
      dl_ = std::make_unique<DeadLetterer>(ctx_);
      dl_->Add(ref_);
    });
    // The entry is there unless a test says otherwise.
    Answer<ReadEntryCall>([](const ReadEntryCall& c) -> ReadEntryCall::Reply {
      return std::optional<StreamEntry>(DataEntry(c.id, "{\"n\":5}"));
    });
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] { dl_.reset(); });
  }
  void AnswerDeadLetter(absl::StatusOr<DeadLetterResult> r) {
    Answer<DeadLetterCall>([r](const DeadLetterCall&) { return r; });
  }
  absl::flat_hash_set<std::string> Held(uint8_t source) { return Held(source, ref_); }
  absl::flat_hash_set<std::string> Held(uint8_t source, const HandlerRef& ref) {
    absl::flat_hash_set<std::string> held;
    loop_.RunSync([&] { dl_->AddHeld(ref, source, held); });
    return held;
  }
  void DeadLetterById(const Entry& e, const SpecPtr& spec, const HandlerRef& ref = {kKey, 1}) {
    loop_.RunSync(
        [&] { dl_->DeadLetterById(ref, spec, e, Failure(e.attempt), "max_retries", kHeldRetry); });
  }
  size_t InProgress() {
    size_t n = 0;
    loop_.RunSync([&] { n = tracker_.in_progress(); });
    return n;
  }

  std::unique_ptr<DeadLetterer> dl_;
  const SpecPtr capped_ = MakeSpec(CappedRegister());
};

TEST_F(DeadLettererTest, ReadsTheEntryAndDeadLettersItPendingUnderOurConsumer) {
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kDeadLettered));
  DeadLetterById(Entry{"5-0", 6, kMain}, capped_);
  Settle();
  const std::vector<ReadEntryCall> reads = Calls<ReadEntryCall>();
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].stream, "orders");
  EXPECT_EQ(reads[0].id, "5-0");
  const std::vector<DeadLetterCall> calls = Calls<DeadLetterCall>();
  ASSERT_EQ(calls.size(), 1u);
  const DeadLetterOp& op = calls[0].op;
  EXPECT_EQ(op.from.stream, "orders");
  EXPECT_EQ(op.from.group, "billing");
  EXPECT_EQ(op.from.consumer, "billing-i1");
  EXPECT_EQ(op.dlq_stream, capped_->keys.dlq_stream);
  EXPECT_EQ(op.id, "5-0");
  EXPECT_EQ(op.max_len, 100u);
  EXPECT_TRUE(op.hold_when_full);
  const StreamEntry read = DataEntry("5-0", "{\"n\":5}");
  EXPECT_EQ(op.fields,
            DeadLetterFields(read, ReadRetryState(read), Failure(6),
                             DeadLetterContext{"max_retries", "orders", "billing", "orders", kT0}));
  EXPECT_EQ(FieldOf(op.fields, kReasonField), "max_retries");
  EXPECT_EQ(FieldOf(op.fields, kSourceStreamField), "orders");
  EXPECT_EQ(FieldOf(op.fields, kSourceIdField), "5-0");
  EXPECT_EQ(FieldOf(op.fields, kLastErrorField), "boom");
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.dead_letters, 1u);
  EXPECT_EQ(s.dlq_evictions, 0u);
  EXPECT_EQ(s.redis_errors, 0u);
  EXPECT_THAT(Held(kMain), IsEmpty());
  EXPECT_EQ(InProgress(), 0u);
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());
}

TEST_F(DeadLettererTest, ARetryEntryLeavesTheRetryStreamOfAnUncappedDlq) {
  DeadLetterById(Entry{"7-0", 2, kRetry}, spec_);
  Settle();
  ASSERT_EQ(Calls<ReadEntryCall>().size(), 1u);
  EXPECT_EQ(Calls<ReadEntryCall>()[0].stream, "orders.billing.retry");
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 1u);
  const DeadLetterOp op = Calls<DeadLetterCall>()[0].op;
  EXPECT_EQ(op.from.stream, "orders.billing.retry");
  EXPECT_EQ(op.from.group, "billing-retry");
  EXPECT_EQ(op.from.consumer, "billing-i1");
  EXPECT_EQ(op.max_len, 0u);
  EXPECT_FALSE(op.hold_when_full);
}

TEST_F(DeadLettererTest, AnEntryIsHeldWhileItIsBeingDeadLettered) {
  loop_.RunSync([&] {
    dl_->DeadLetterById(ref_, capped_, Entry{"5-0", 6, kMain}, Failure(6), "max_retries",
                        kHeldRetry);
    dl_->DeadLetterById(ref_, capped_, Entry{"6-0", 6, kRetry}, Failure(6), "terminated",
                        kHeldRetry);
    absl::flat_hash_set<std::string> main, retry, other;
    dl_->AddHeld(ref_, kMain, main);
    dl_->AddHeld(ref_, kRetry, retry);
    dl_->AddHeld({"orders/shipping", 2}, kMain, other);
    EXPECT_THAT(main, UnorderedElementsAre("5-0"));
    EXPECT_THAT(retry, UnorderedElementsAre("6-0"));
    EXPECT_THAT(other, IsEmpty());
    EXPECT_EQ(tracker_.in_progress(), 2u);
  });
  Settle();
  EXPECT_THAT(Held(kMain), IsEmpty());  // kNotPending (the fake's default): not ours, released
  EXPECT_THAT(Held(kRetry), IsEmpty());
  EXPECT_EQ(Stats().dead_letters, 0u);
}

TEST_F(DeadLettererTest, AMoveHeldByAFullDlqIsTriedAgainAfterHeldRetry) {
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kHeld));
  DeadLetterById(Entry{"5-0", 6, kMain}, capped_);
  Settle();
  EXPECT_EQ(Stats().dlq_held, 1u);
  EXPECT_EQ(Stats().dead_letters, 0u);
  EXPECT_THAT(Held(kMain), UnorderedElementsAre("5-0"));  // still ours to move
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + kHeldRetry - absl::Milliseconds(1), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 1u);
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kDeadLettered, 2));
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + kHeldRetry, kHeldRetry); });
  ASSERT_EQ(Calls<ReadEntryCall>().size(), 2u);
  EXPECT_EQ(Calls<ReadEntryCall>()[1].id, "5-0");
  ASSERT_EQ(Calls<DeadLetterCall>().size(), 2u);
  EXPECT_EQ(FieldOf(Calls<DeadLetterCall>()[1].op.fields, kReasonField), "max_retries");
  EXPECT_EQ(Stats().dead_letters, 1u);
  EXPECT_EQ(Stats().dlq_evictions, 2u);
  EXPECT_THAT(Held(kMain), IsEmpty());
  // Nothing left to retry.
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + absl::Hours(1), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 2u);
}

TEST_F(DeadLettererTest, AFailedMoveIsTriedAgainAfterTenErrorBackoffs) {
  AnswerDeadLetter(absl::UnavailableError("connection lost"));
  DeadLetterById(Entry{"5-0", 6, kMain}, capped_);
  Settle();
  EXPECT_EQ(Stats().redis_errors, 1u);
  EXPECT_THAT(Held(kMain), UnorderedElementsAre("5-0"));
  EXPECT_EQ(InProgress(), 0u);
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + absl::Milliseconds(999), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 1u);
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + absl::Seconds(1), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 2u);
  EXPECT_EQ(Calls<DeadLetterCall>().size(), 2u);
}

TEST_F(DeadLettererTest, AFailedReadIsTriedAgainAfterTenErrorBackoffs) {
  Answer<ReadEntryCall>([](const ReadEntryCall&) -> ReadEntryCall::Reply {
    return absl::UnavailableError("connection lost");
  });
  DeadLetterById(Entry{"5-0", 6, kMain}, capped_);
  Settle();
  EXPECT_EQ(Stats().redis_errors, 1u);
  EXPECT_THAT(Calls<DeadLetterCall>(), IsEmpty());
  EXPECT_THAT(Held(kMain), UnorderedElementsAre("5-0"));
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + absl::Milliseconds(999), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 1u);
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + absl::Seconds(1), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 2u);
}

TEST_F(DeadLettererTest, AnEntryGoneFromTheStreamIsAckedAndReleased) {
  Answer<ReadEntryCall>(
      [](const ReadEntryCall&) -> ReadEntryCall::Reply { return std::optional<StreamEntry>(); });
  DeadLetterById(Entry{"5-0", 6, kRetry}, capped_);
  Settle();
  EXPECT_THAT(Calls<DeadLetterCall>(), IsEmpty());
  const std::vector<AckCall> acks = Calls<AckCall>();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].stream, "orders.billing.retry");
  EXPECT_EQ(acks[0].group, "billing-retry");
  EXPECT_EQ(acks[0].ids, (Ids{"5-0"}));
  EXPECT_THAT(Held(kRetry), IsEmpty());
  EXPECT_EQ(Stats().dead_letters, 0u);
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + absl::Hours(1), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 1u);
}

TEST_F(DeadLettererTest, DeadLetterWithFieldsAtHandTellsDoneTheOutcome) {
  std::vector<Outcome> outcomes;  // loop thread
  const StreamEntry entry = DataEntry("8-0", "{\"n\":8}");
  FailureRecord f = Failure(1);
  f.outcome = "poison";
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kDeadLettered));
  Run([&] {
    dl_->DeadLetter(capped_, kRetry, entry, ReadRetryState(entry), f, "poison", "",
                    [&](Outcome o) { outcomes.push_back(o); });
  });
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kHeld));
  Run([&] {
    dl_->DeadLetter(capped_, kRetry, entry, ReadRetryState(entry), f, "poison", "",
                    [&](Outcome o) { outcomes.push_back(o); });
  });
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kNotPending));
  Run([&] {
    dl_->DeadLetter(capped_, kRetry, entry, ReadRetryState(entry), f, "poison", "",
                    [&](Outcome o) { outcomes.push_back(o); });
  });
  AnswerDeadLetter(absl::UnavailableError("down"));
  Run([&] {
    dl_->DeadLetter(capped_, kRetry, entry, ReadRetryState(entry), f, "poison", "",
                    [&](Outcome o) { outcomes.push_back(o); });
  });
  EXPECT_THAT(outcomes,
              ElementsAre(Outcome::kMoved, Outcome::kHeld, Outcome::kGone, Outcome::kFailed));
  const std::vector<DeadLetterCall> calls = Calls<DeadLetterCall>();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].op.from.stream, "orders.billing.retry");
  EXPECT_EQ(calls[0].op.from.group, "billing-retry");
  EXPECT_EQ(calls[0].op.from.consumer, "");  // pending under any consumer
  EXPECT_EQ(calls[0].op.id, "8-0");
  EXPECT_EQ(FieldOf(calls[0].op.fields, kReasonField), "poison");
  EXPECT_EQ(FieldOf(calls[0].op.fields, kSourceStreamField), "orders.billing.retry");
  EXPECT_THAT(Calls<ReadEntryCall>(), IsEmpty());
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.dead_letters, 1u);
  EXPECT_EQ(s.dlq_held, 1u);
  EXPECT_EQ(s.redis_errors, 1u);
}

TEST_F(DeadLettererTest, AForgottenHandlersMovesAreNotRetried) {
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kHeld));
  DeadLetterById(Entry{"5-0", 6, kMain}, capped_);
  Settle();
  Run([&] { dl_->Forget(ref_); });
  EXPECT_THAT(Held(kMain), IsEmpty());
  Run([&] { dl_->RetryDue(ref_, capped_, kT0 + absl::Hours(1), kHeldRetry); });
  EXPECT_EQ(Calls<ReadEntryCall>().size(), 1u);
}

TEST_F(DeadLettererTest, AReplyForAnEarlierHandlerGenerationIsNotRetriedByTheNewOne) {
  AnswerDeadLetter(Result(DeadLetterResult::Kind::kHeld));
  loop_.RunSync([&] {
    dl_->DeadLetterById({kKey, 1}, capped_, Entry{"5-0", 6, kMain}, Failure(6), "max_retries",
                        kHeldRetry);
    dl_->Forget(ref_);  // the handler left before the reply ...
    dl_->Add({kKey, 2});
    dl_->DeadLetterById({kKey, 2}, capped_, Entry{"6-0", 6, kMain}, Failure(6), "max_retries",
                        kHeldRetry);  // ... and came back
  });
  Settle();
  EXPECT_THAT(Held(kMain, {kKey, 2}), UnorderedElementsAre("6-0"));
  EXPECT_THAT(Held(kMain), IsEmpty());  // (the first generation is forgotten)
  Run([&] { dl_->RetryDue({kKey, 2}, capped_, kT0 + kHeldRetry, kHeldRetry); });
  const std::vector<ReadEntryCall> reads = Calls<ReadEntryCall>();
  ASSERT_EQ(reads.size(), 3u);
  EXPECT_EQ(reads[2].id, "6-0");
}

}  // namespace
}  // namespace redrive::testing
