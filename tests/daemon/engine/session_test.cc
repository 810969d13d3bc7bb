// EngineSession (daemon/engine/session.h): its free slots, the Registered
// reply, deliveries completed, queued and leased, the verbs applied to its
// leases (settled, extended, or answered with a notice) and counted, expired
// and stale leases, the ids it holds. SessionRing: round robin over the
// attached sessions with a free slot. DirtySessions: each listed outbox
// written to its own sink once per flush.
#include "daemon/engine/session.h"

#include <memory>
#include <string>
#include <vector>

#include "tests/daemon/engine/engine_test_base.h"
#include "tests/fakes/fake_session_sink.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::UnorderedElementsAre;
using Outcome = LeaseTable::Outcome;

const int64_t kT0Ms = 1'700'000'000'000;

v1::Register Reg(uint32_t max_in_flight, uint32_t lease_ms) {
  v1::Register r = BaseRegister();
  r.set_max_in_flight(max_in_flight);
  r.set_lease_ms(lease_ms);
  return r;
}

v1::Register TwoRetries() {
  v1::Register r = BaseRegister();
  r.mutable_retry_policy()->set_max_retries(2);
  return r;
}

v1::Delivery Payload(const std::string& body) {
  v1::Delivery d;
  d.set_payload(body);
  d.set_content_type("application/json");
  return d;
}

v1::Verb Verb(uint64_t id) {
  v1::Verb v;
  v.set_delivery_id(id);
  return v;
}
v1::Verb Ack(uint64_t id) {
  v1::Verb v = Verb(id);
  v.mutable_ack();
  return v;
}
v1::Verb Nack(uint64_t id, const std::string& reason, const std::string& code) {
  v1::Verb v = Verb(id);
  v.mutable_nack()->set_reason(reason);
  v.mutable_nack()->set_error_code(code);
  return v;
}
v1::Verb Extend(uint64_t id, uint32_t lease_ms) {
  v1::Verb v = Verb(id);
  v.mutable_extend()->set_lease_ms(lease_ms);
  return v;
}
v1::Verb Terminate(uint64_t id, const std::string& reason, const std::string& code) {
  v1::Verb v = Verb(id);
  v.mutable_terminate()->set_reason(reason);
  v.mutable_terminate()->set_error_code(code);
  return v;
}
v1::Verbs Verbs(std::vector<v1::Verb> list) {
  v1::Verbs verbs;
  for (v1::Verb& v : list) *verbs.add_verbs() = std::move(v);
  return verbs;
}

// A session of handler "billing" on "orders" (max_in_flight 3, lease 60 s)
// whose handler was registered with a 30 s lease and max_retries 2.
class EngineSessionTest : public ::testing::Test {
 protected:
  void Deliver(uint64_t delivery_id, Entry entry, absl::Time now = kT0,
               v1::Delivery message = Payload("{}")) {
    s_.Deliver(delivery_id, std::move(entry), *handler_spec_, message, now);
  }
  VerbOutcome Apply(std::vector<v1::Verb> verbs, absl::Time now = kT0) {
    return s_.Apply(Verbs(std::move(verbs)), now, stats_);
  }
  std::vector<v1::Delivery> Flushed() {
    s_.outbox.FlushTo(*sink_);
    return sink_->deliveries();
  }

  const std::shared_ptr<FakeSessionSink> sink_ = std::make_shared<FakeSessionSink>();
  const SpecPtr handler_spec_ = MakeSpec(TwoRetries());
  EngineSession s_{4, sink_, *MakeSpec(Reg(3, 60000))};
  DispatcherStats stats_;
};

TEST_F(EngineSessionTest, HasNoFreeSlotsBeforeItIsAttached) {
  EXPECT_FALSE(s_.attached);
  EXPECT_EQ(s_.free_slots(), 0u);
  s_.Attach(kInstance);
  EXPECT_TRUE(s_.attached);
  EXPECT_EQ(s_.free_slots(), 3u);
}

TEST_F(EngineSessionTest, EachDeliveryTakesASlotUntilNoneIsFreeAtMaxInFlight) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain});
  EXPECT_EQ(s_.free_slots(), 2u);
  Deliver(2, Entry{"2-0", 1, kMain});
  Deliver(3, Entry{"3-0", 1, kMain});
  EXPECT_EQ(s_.free_slots(), 0u);
  Apply({Ack(2)});
  EXPECT_EQ(s_.free_slots(), 1u);
}

TEST_F(EngineSessionTest, HasNoFreeSlotsOnceStopped) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain});
  s_.stopped = true;
  EXPECT_EQ(s_.free_slots(), 0u);
  Apply({Ack(1)});
  EXPECT_EQ(s_.free_slots(), 0u);
}

TEST_F(EngineSessionTest, AttachSendsTheRegisteredReplyToTheSink) {
  s_.Attach(kInstance);
  const std::vector<v1::SubscribeResponse> sent = sink_->responses();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(sent[0].has_registered());
  const v1::Registered& r = sent[0].registered();
  EXPECT_EQ(r.SerializeAsString(), MakeRegistered(s_.spec, kInstance).SerializeAsString());
  EXPECT_EQ(r.channel(), "orders");
  EXPECT_EQ(r.handler_id(), "billing");
  EXPECT_EQ(r.max_in_flight(), 3u);
  EXPECT_EQ(r.lease_ms(), 60000u);
  EXPECT_EQ(r.instance_id(), "i1");
  EXPECT_EQ(r.names().consumer(), "billing-i1");
  EXPECT_EQ(sink_->finish_calls(), 0);
}

TEST_F(EngineSessionTest, DeliverCompletesTheMessageQueuesItAndLeasesIt) {
  s_.Attach(kInstance);
  Deliver(7, Entry{"5-0", 2, kMain}, kT0, Payload("{\"n\":5}"));
  EXPECT_THAT(sink_->deliveries(), IsEmpty());  // queued in the outbox until a flush
  const std::vector<v1::Delivery> ds = Flushed();
  ASSERT_EQ(ds.size(), 1u);
  const v1::Delivery& d = ds[0];
  EXPECT_EQ(d.delivery_id(), 7u);
  EXPECT_EQ(d.channel(), "orders");
  EXPECT_EQ(d.stream(), "orders");
  EXPECT_EQ(d.entry_id(), "5-0");
  EXPECT_EQ(d.original_entry_id(), "5-0");
  EXPECT_EQ(d.attempt(), 2u);
  EXPECT_EQ(d.max_attempts(), 3u);  // max_retries 2 + the first attempt
  // The session's lease (60 s), not the handler's (30 s).
  EXPECT_EQ(d.lease_deadline_unix_ms(), kT0Ms + 60000);
  EXPECT_EQ(d.payload(), "{\"n\":5}");
  EXPECT_EQ(d.content_type(), "application/json");
  const LeaseTable::Flight* f = s_.leases.Find(7);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->entry.id, "5-0");
  EXPECT_EQ(f->entry.attempt, 2u);
  EXPECT_EQ(f->entry.source, kMain);
  EXPECT_EQ(f->deadline, kT0 + absl::Seconds(60));
  EXPECT_EQ(f->idle_since, kT0);
  EXPECT_EQ(s_.leases.size(), 1u);
}

TEST_F(EngineSessionTest, ARetryStreamDeliveryNamesTheRetryStreamAndKeepsItsOriginalId) {
  s_.Attach(kInstance);
  v1::Delivery m = Payload("{}");
  m.set_original_entry_id("1-0");
  Deliver(8, Entry{"9-0", 3, kRetry}, kT0 + absl::Seconds(1), std::move(m));
  const std::vector<v1::Delivery> ds = Flushed();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].stream(), "orders.billing.retry");
  EXPECT_EQ(ds[0].entry_id(), "9-0");
  EXPECT_EQ(ds[0].original_entry_id(), "1-0");
  EXPECT_EQ(ds[0].attempt(), 3u);
  EXPECT_EQ(ds[0].lease_deadline_unix_ms(), kT0Ms + 61000);
  ASSERT_NE(s_.leases.Find(8), nullptr);
  EXPECT_EQ(s_.leases.Find(8)->entry.source, kRetry);
}

TEST_F(EngineSessionTest, MaxAttemptsIsSetOnlyForAFiniteRetryPolicy) {
  s_.Attach(kInstance);
  v1::Register unlimited = BaseRegister();
  unlimited.mutable_retry_policy()->set_unlimited(true);
  v1::Register auto_ack = BaseRegister();
  auto_ack.set_auto_ack(true);
  v1::Delivery message = Payload("{}");
  s_.Deliver(1, Entry{"1-0", 1, kMain}, *MakeSpec(), message, kT0);
  message = Payload("{}");
  s_.Deliver(2, Entry{"2-0", 1, kMain}, *MakeSpec(unlimited), message, kT0);
  message = Payload("{}");
  s_.Deliver(3, Entry{"3-0", 1, kMain}, *MakeSpec(auto_ack), message, kT0);
  const std::vector<v1::Delivery> ds = Flushed();
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds[0].max_attempts(), 6u);  // the default max_retries 5
  EXPECT_EQ(ds[1].max_attempts(), 0u);  // unlimited
  EXPECT_EQ(ds[2].max_attempts(), 0u);  // no retry policy
}

TEST_F(EngineSessionTest, AnAckSettlesItsDeliveryAndReturnsTheEntry) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain});
  Deliver(2, Entry{"2-0", 2, kRetry});
  const VerbOutcome out = Apply({Ack(2)}, kT0 + absl::Seconds(1));
  ASSERT_EQ(out.acked.size(), 1u);
  EXPECT_EQ(out.acked[0].id, "2-0");
  EXPECT_EQ(out.acked[0].attempt, 2u);
  EXPECT_EQ(out.acked[0].source, kRetry);
  EXPECT_THAT(out.failed, IsEmpty());
  EXPECT_THAT(out.extended[kMain], IsEmpty());
  EXPECT_THAT(out.extended[kRetry], IsEmpty());
  EXPECT_EQ(out.notices, 0u);
  EXPECT_EQ(s_.leases.Find(2), nullptr);
  EXPECT_THAT(s_.leases.SettledAs(2), Optional(Outcome::kAcked));
  EXPECT_NE(s_.leases.Find(1), nullptr);
  EXPECT_EQ(stats_.acks, 1u);
  EXPECT_EQ(stats_.notices, 0u);
  Flushed();
  EXPECT_THAT(sink_->notices(), IsEmpty());
}

TEST_F(EngineSessionTest, ANackSettlesItsDeliveryAsAFailureLeftToThePolicysBackoff) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 2, kMain});
  const VerbOutcome out = Apply({Nack(1, "boom", "E_BOOM")});
  EXPECT_THAT(out.acked, IsEmpty());
  ASSERT_EQ(out.failed.size(), 1u);
  const VerbOutcome::Failure& f = out.failed[0];
  EXPECT_EQ(f.entry.id, "1-0");
  EXPECT_EQ(f.entry.attempt, 2u);
  EXPECT_EQ(f.entry.source, kMain);
  EXPECT_EQ(f.kind, FailKind::kNack);
  EXPECT_EQ(f.error, "boom");
  EXPECT_EQ(f.error_code, "E_BOOM");
  EXPECT_EQ(f.delay, std::nullopt);
  EXPECT_THAT(s_.leases.SettledAs(1), Optional(Outcome::kNacked));
  EXPECT_TRUE(s_.leases.empty());
  EXPECT_EQ(stats_.nacks, 1u);
  EXPECT_EQ(stats_.acks, 0u);
}

TEST_F(EngineSessionTest, ANackDelayIsCarriedAsTheFailuresDelayZeroIncluded) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain});
  Deliver(2, Entry{"2-0", 1, kRetry});
  v1::Verb later = Nack(1, "", "");
  later.mutable_nack()->set_delay_ms(2500);
  v1::Verb now = Nack(2, "", "");
  now.mutable_nack()->set_delay_ms(0);
  const VerbOutcome out = Apply({later, now});
  ASSERT_EQ(out.failed.size(), 2u);
  EXPECT_EQ(out.failed[0].entry.id, "1-0");
  EXPECT_THAT(out.failed[0].delay, Optional(absl::Milliseconds(2500)));
  EXPECT_EQ(out.failed[1].entry.id, "2-0");
  EXPECT_THAT(out.failed[1].delay, Optional(absl::ZeroDuration()));
  EXPECT_EQ(stats_.nacks, 2u);
}

TEST_F(EngineSessionTest, AnExtendMovesTheDeadlineFromNowAndZeroMeansTheSessionsLease) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain});
  Deliver(2, Entry{"2-0", 1, kRetry});
  const absl::Time now = kT0 + absl::Seconds(5);
  const VerbOutcome out = Apply({Extend(1, 120000), Extend(2, 0)}, now);
  EXPECT_THAT(out.acked, IsEmpty());
  EXPECT_THAT(out.failed, IsEmpty());
  EXPECT_THAT(out.extended[kMain], ElementsAre("1-0"));
  EXPECT_THAT(out.extended[kRetry], ElementsAre("2-0"));
  ASSERT_NE(s_.leases.Find(1), nullptr);
  ASSERT_NE(s_.leases.Find(2), nullptr);
  EXPECT_EQ(s_.leases.Find(1)->deadline, now + absl::Seconds(120));
  EXPECT_EQ(s_.leases.Find(1)->idle_since, now);
  EXPECT_EQ(s_.leases.Find(2)->deadline, now + absl::Seconds(60));  // not the handler's 30 s
  EXPECT_EQ(s_.leases.Find(2)->idle_since, now);
  EXPECT_EQ(s_.free_slots(), 1u);  // still in flight
  EXPECT_EQ(stats_.extends, 2u);
}

TEST_F(EngineSessionTest, ATerminateSettlesItsDeliveryAsATerminatedFailure) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kRetry});
  const VerbOutcome out = Apply({Terminate(1, "bad order", "E_BAD")});
  ASSERT_EQ(out.failed.size(), 1u);
  const VerbOutcome::Failure& f = out.failed[0];
  EXPECT_EQ(f.entry.id, "1-0");
  EXPECT_EQ(f.entry.source, kRetry);
  EXPECT_EQ(f.kind, FailKind::kTerminated);
  EXPECT_EQ(f.error, "bad order");
  EXPECT_EQ(f.error_code, "E_BAD");
  EXPECT_EQ(f.delay, std::nullopt);
  EXPECT_THAT(s_.leases.SettledAs(1), Optional(Outcome::kTerminated));
  EXPECT_EQ(stats_.terminates, 1u);
}

TEST_F(EngineSessionTest, VerbsNotInFlightOrInvalidAreNoticedCountedAndQueued) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain});
  Deliver(2, Entry{"2-0", 1, kMain});
  const VerbOutcome out =
      Apply({Ack(1), Ack(1), Nack(1, "late", ""), Ack(99), Verb(2), Extend(2, kMaxDurationMs + 1)},
            kT0 + absl::Seconds(1));
  EXPECT_EQ(out.notices, 4u);  // the repeated ACK is silent
  ASSERT_EQ(out.acked.size(), 1u);
  EXPECT_EQ(out.acked[0].id, "1-0");
  EXPECT_THAT(out.failed, IsEmpty());
  EXPECT_THAT(out.extended[kMain], IsEmpty());
  EXPECT_EQ(stats_.notices, 4u);
  EXPECT_EQ(stats_.acks, 1u);
  EXPECT_EQ(stats_.nacks, 0u);
  EXPECT_EQ(stats_.extends, 0u);
  // The invalid verbs left delivery 2 as it was.
  ASSERT_NE(s_.leases.Find(2), nullptr);
  EXPECT_EQ(s_.leases.Find(2)->deadline, kT0 + absl::Seconds(60));
  EXPECT_THAT(sink_->notices(), IsEmpty());  // queued until a flush
  Flushed();
  const std::vector<v1::Notice> ns = sink_->notices();
  ASSERT_EQ(ns.size(), 4u);
  EXPECT_EQ(ns[0].delivery_id(), 1u);
  EXPECT_EQ(ns[0].code(), v1::Notice::ALREADY_SETTLED);
  EXPECT_EQ(ns[0].message(), "delivery 1 was already settled");
  EXPECT_EQ(ns[1].delivery_id(), 99u);
  EXPECT_EQ(ns[1].code(), v1::Notice::UNKNOWN_DELIVERY);
  EXPECT_EQ(ns[1].message(), "no delivery 99 on this stream");
  EXPECT_EQ(ns[2].delivery_id(), 2u);
  EXPECT_EQ(ns[2].code(), v1::Notice::INVALID_VERB);
  EXPECT_EQ(ns[2].message(), "verb has no action");
  EXPECT_EQ(ns[3].delivery_id(), 2u);
  EXPECT_EQ(ns[3].code(), v1::Notice::INVALID_VERB);
  EXPECT_EQ(ns[3].message(), "extend.lease_ms 86400001 is outside 0..86400000");
}

TEST_F(EngineSessionTest, TakeExpiredSettlesTheLeasesDueAtNowInDeliveryOrder) {
  s_.Attach(kInstance);
  EXPECT_THAT(s_.TakeExpired(kT0, stats_), IsEmpty());
  Deliver(3, Entry{"3-0", 1, kMain}, kT0);
  Deliver(1, Entry{"1-0", 2, kRetry}, kT0);
  Deliver(2, Entry{"2-0", 1, kMain}, kT0 + absl::Seconds(1));
  EXPECT_THAT(s_.TakeExpired(kT0 + absl::Seconds(60) - absl::Milliseconds(1), stats_), IsEmpty());
  const std::vector<Entry> expired = s_.TakeExpired(kT0 + absl::Seconds(60), stats_);
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(expired[0].id, "1-0");
  EXPECT_EQ(expired[0].attempt, 2u);
  EXPECT_EQ(expired[0].source, kRetry);
  EXPECT_EQ(expired[1].id, "3-0");
  EXPECT_EQ(stats_.lease_expiries, 2u);
  EXPECT_THAT(s_.leases.SettledAs(1), Optional(Outcome::kExpired));
  EXPECT_THAT(s_.leases.SettledAs(3), Optional(Outcome::kExpired));
  EXPECT_EQ(s_.leases.size(), 1u);
  const std::vector<Entry> later = s_.TakeExpired(kT0 + absl::Seconds(61), stats_);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].id, "2-0");
  EXPECT_EQ(stats_.lease_expiries, 3u);
  // A verb after the expiry changes nothing.
  EXPECT_EQ(Apply({Ack(1)}).notices, 1u);
  EXPECT_EQ(stats_.acks, 0u);
}

TEST_F(EngineSessionTest, TakeStaleListsFlightsOutlivingTheHandlersLeaseOnceIdleForAThird) {
  const absl::Duration handler_lease = absl::Seconds(30);
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain}, kT0);
  Deliver(2, Entry{"2-0", 1, kRetry}, kT0);
  Deliver(4, Entry{"4-0", 1, kMain}, kT0 + absl::Seconds(5));
  Deliver(5, Entry{"5-0", 1, kMain}, kT0);
  Apply({Extend(5, 20000)}, kT0);  // deadline within the handler's lease: never touched
  {
    std::vector<std::string> ids[2];
    s_.TakeStale(kT0 + absl::Seconds(10), handler_lease, ids);  // idle exactly a third
    EXPECT_THAT(ids[kMain], IsEmpty());
    EXPECT_THAT(ids[kRetry], IsEmpty());
  }
  const absl::Time now = kT0 + absl::Seconds(10) + absl::Milliseconds(1);
  {
    std::vector<std::string> ids[2];
    s_.TakeStale(now, handler_lease, ids);
    EXPECT_THAT(ids[kMain], ElementsAre("1-0"));
    EXPECT_THAT(ids[kRetry], ElementsAre("2-0"));
  }
  EXPECT_EQ(s_.leases.Find(1)->idle_since, now);
  EXPECT_EQ(s_.leases.Find(2)->idle_since, now);
  EXPECT_EQ(s_.leases.Find(4)->idle_since, kT0 + absl::Seconds(5));
  EXPECT_EQ(s_.leases.Find(5)->idle_since, kT0);
  {
    std::vector<std::string> ids[2];
    s_.TakeStale(kT0 + absl::Seconds(15) + absl::Milliseconds(1), handler_lease, ids);
    EXPECT_THAT(ids[kMain], ElementsAre("4-0"));  // 1 and 2 were reset at `now`
    EXPECT_THAT(ids[kRetry], IsEmpty());
  }
  {
    std::vector<std::string> ids[2];
    s_.TakeStale(now + absl::Seconds(10) + absl::Milliseconds(1), handler_lease, ids);
    EXPECT_THAT(ids[kMain], ElementsAre("1-0"));
    EXPECT_THAT(ids[kRetry], ElementsAre("2-0"));
  }
}

TEST_F(EngineSessionTest, TakeStaleListsNothingWhenTheSessionsLeaseIsTheHandlers) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain}, kT0);
  std::vector<std::string> ids[2];
  s_.TakeStale(kT0 + absl::Seconds(59), absl::Seconds(60), ids);
  EXPECT_THAT(ids[kMain], IsEmpty());
  EXPECT_EQ(s_.leases.Find(1)->idle_since, kT0);
}

TEST_F(EngineSessionTest, AddHeldAddsTheIdsOfOneSourceStillInFlight) {
  s_.Attach(kInstance);
  Deliver(1, Entry{"1-0", 1, kMain});
  Deliver(2, Entry{"2-0", 1, kRetry});
  Deliver(3, Entry{"3-0", 1, kMain});
  Apply({Ack(3)});
  absl::flat_hash_set<std::string> main = {"0-1"};
  s_.AddHeld(kMain, main);
  EXPECT_THAT(main, UnorderedElementsAre("0-1", "1-0"));
  absl::flat_hash_set<std::string> retry;
  s_.AddHeld(kRetry, retry);
  EXPECT_THAT(retry, UnorderedElementsAre("2-0"));
}

// ---------------------------------------------------------------- SessionRing

struct Member {
  char name;
  uint32_t free = 1;
  bool stopped = false;
  uint32_t free_slots() const { return free; }
};

// The names of `n` picks ('-' for none).
std::string Picks(SessionRing<Member>& ring, int n, bool paused = false) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    Member* m = ring.Pick(paused);
    out += m == nullptr ? '-' : m->name;
  }
  return out;
}

class SessionRingTest : public ::testing::Test {
 protected:
  void AttachAll() {
    for (Member* m : {&a_, &b_, &c_}) ring_.attached().push_back(m);
  }

  Member a_{'A'}, b_{'B'}, c_{'C'}, d_{'D'};
  SessionRing<Member> ring_;
};

TEST_F(SessionRingTest, PickGoesRoundRobin) {
  AttachAll();
  EXPECT_EQ(Picks(ring_, 7), "ABCABCA");
}

TEST_F(SessionRingTest, PickSkipsSessionsWithNoFreeSlot) {
  AttachAll();
  b_.free = 0;
  EXPECT_EQ(Picks(ring_, 4), "ACAC");
  b_.free = 1;
  EXPECT_EQ(Picks(ring_, 3), "ABC");
}

TEST_F(SessionRingTest, PickFindsNothingWhenEverySessionIsFullOrOnlyWaiting) {
  ring_.waiting().push_back(&d_);
  EXPECT_EQ(Picks(ring_, 1), "-");
  AttachAll();
  a_.free = b_.free = c_.free = 0;
  EXPECT_EQ(Picks(ring_, 2), "--");
}

TEST_F(SessionRingTest, PickWhilePausedFindsNothingAndKeepsTheTurn) {
  AttachAll();
  EXPECT_EQ(Picks(ring_, 1), "A");
  EXPECT_EQ(Picks(ring_, 2, /*paused=*/true), "--");
  EXPECT_EQ(Picks(ring_, 2), "BC");
}

TEST_F(SessionRingTest, HasSlotDoesNotMoveTheRoundRobin) {
  AttachAll();
  EXPECT_EQ(Picks(ring_, 1), "A");
  EXPECT_TRUE(ring_.HasSlot(false));
  EXPECT_TRUE(ring_.HasSlot(false));
  EXPECT_FALSE(ring_.HasSlot(true));
  EXPECT_EQ(Picks(ring_, 1), "B");
}

TEST_F(SessionRingTest, HasSlotIsWhetherAnAttachedSessionHasAFreeSlot) {
  ring_.waiting().push_back(&d_);
  EXPECT_FALSE(ring_.HasSlot(false));
  AttachAll();
  a_.free = c_.free = 0;
  EXPECT_TRUE(ring_.HasSlot(false));
  b_.free = 0;
  EXPECT_FALSE(ring_.HasSlot(false));
}

TEST_F(SessionRingTest, FreeSlotsSumsTheAttachedSessions) {
  EXPECT_EQ(ring_.FreeSlots(), 0u);
  AttachAll();
  a_.free = 2;
  b_.free = 0;
  c_.free = 5;
  d_.free = 7;
  ring_.waiting().push_back(&d_);
  EXPECT_EQ(ring_.FreeSlots(), 7u);
}

TEST_F(SessionRingTest, AnyTakingIsWhetherAnAttachedSessionIsNotStopped) {
  ring_.waiting().push_back(&d_);
  EXPECT_FALSE(ring_.AnyTaking());
  AttachAll();
  a_.stopped = c_.stopped = true;
  b_.free = 0;  // full, but still taking
  EXPECT_TRUE(ring_.AnyTaking());
  b_.stopped = true;
  EXPECT_FALSE(ring_.AnyTaking());
}

TEST_F(SessionRingTest, RemoveTakesASessionOutOfEitherList) {
  AttachAll();
  ring_.waiting().push_back(&d_);
  ring_.Remove(&b_);
  EXPECT_THAT(ring_.attached(), ElementsAre(&a_, &c_));
  EXPECT_THAT(ring_.waiting(), ElementsAre(&d_));
  ring_.Remove(&d_);
  EXPECT_THAT(ring_.waiting(), IsEmpty());
  ring_.Remove(&d_);  // not there: nothing changes
  EXPECT_THAT(ring_.attached(), ElementsAre(&a_, &c_));
  EXPECT_FALSE(ring_.empty());
  ring_.Remove(&a_);
  ring_.Remove(&c_);
  EXPECT_TRUE(ring_.empty());
  EXPECT_EQ(Picks(ring_, 1), "-");
}

TEST_F(SessionRingTest, EmptyCountsWaitingSessions) {
  EXPECT_TRUE(ring_.empty());
  ring_.waiting().push_back(&d_);
  EXPECT_FALSE(ring_.empty());
}

// ---------------------------------------------------------------- DirtySessions

class DirtySessionsTest : public ::testing::Test {
 protected:
  struct Attached {
    std::shared_ptr<FakeSessionSink> sink = std::make_shared<FakeSessionSink>();
    EngineSession session;
    explicit Attached(uint64_t id) : session(id, sink, *MakeSpec()) { session.Attach(kInstance); }
  };
  void Deliver(Attached& s, uint64_t delivery_id) {
    v1::Delivery message = Payload("{}");
    s.session.Deliver(delivery_id, Entry{Id(static_cast<int>(delivery_id)), 1, kMain}, *spec_,
                      message, kT0);
  }
  // The delivery ids of each Deliveries message `s` received.
  static std::vector<std::vector<uint64_t>> Messages(const Attached& s) {
    std::vector<std::vector<uint64_t>> out;
    for (const v1::SubscribeResponse& r : s.sink->responses()) {
      if (!r.has_deliveries()) continue;
      std::vector<uint64_t> ids;
      for (const v1::Delivery& d : r.deliveries().deliveries()) ids.push_back(d.delivery_id());
      out.push_back(ids);
    }
    return out;
  }

  const SpecPtr spec_ = MakeSpec();
  Attached a_{1}, b_{2}, c_{3};
  DirtySessions dirty_;
};

TEST_F(DirtySessionsTest, FlushWritesEachListedOutboxToItsOwnSinkOnce) {
  Deliver(a_, 1);
  Deliver(b_, 2);
  Deliver(a_, 3);
  Deliver(c_, 4);  // never marked
  dirty_.Mark(a_.session);
  dirty_.Mark(b_.session);
  dirty_.Mark(a_.session);  // already listed
  EXPECT_TRUE(a_.session.dirty);
  EXPECT_TRUE(b_.session.dirty);
  EXPECT_FALSE(c_.session.dirty);
  dirty_.Flush();
  EXPECT_THAT(Messages(a_), ElementsAre(ElementsAre(1, 3)));
  EXPECT_THAT(Messages(b_), ElementsAre(ElementsAre(2)));
  EXPECT_THAT(Messages(c_), IsEmpty());
  EXPECT_FALSE(a_.session.dirty);
  EXPECT_FALSE(b_.session.dirty);
  dirty_.Flush();
  EXPECT_THAT(Messages(a_), ElementsAre(ElementsAre(1, 3)));
  EXPECT_THAT(Messages(b_), ElementsAre(ElementsAre(2)));
}

TEST_F(DirtySessionsTest, ARemovedSessionIsNotFlushedAndKeepsItsOutbox) {
  Deliver(a_, 1);
  Deliver(b_, 2);
  dirty_.Mark(a_.session);
  dirty_.Mark(b_.session);
  dirty_.Remove(a_.session);
  dirty_.Remove(c_.session);  // not listed: nothing changes
  EXPECT_FALSE(a_.session.dirty);
  EXPECT_TRUE(b_.session.dirty);
  dirty_.Flush();
  EXPECT_THAT(Messages(a_), IsEmpty());
  EXPECT_THAT(Messages(b_), ElementsAre(ElementsAre(2)));
  a_.session.outbox.FlushTo(*a_.sink);
  EXPECT_THAT(Messages(a_), ElementsAre(ElementsAre(1)));
}

TEST_F(DirtySessionsTest, AFlushedSessionIsListedAgainByTheNextMark) {
  Deliver(a_, 1);
  dirty_.Mark(a_.session);
  dirty_.Flush();
  Deliver(a_, 2);
  dirty_.Mark(a_.session);
  EXPECT_TRUE(a_.session.dirty);
  dirty_.Flush();
  EXPECT_THAT(Messages(a_), ElementsAre(ElementsAre(1), ElementsAre(2)));
}

}  // namespace
}  // namespace redrive::testing
