// Distributor (daemon/engine/distributor.h): entries go round robin to the
// sessions with a free slot; what finds none is parked (whole for auto-ack,
// by id otherwise) and fetched again as slots free (whole entries first, at
// most the free slots not promised and read_batch, not while paused or
// draining); poison goes to the DLQ and is never delivered; entries deleted
// while pending are acknowledged (not for auto-ack); while draining entries
// are handed back. A fetch's reply is delivered and counted as
// redeliveries, a failed one goes back to the backlog, one answered after
// the handler left is handed back.
#include "daemon/engine/distributor.h"

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "daemon/redis/stream_watch.h"
#include "daemon/stream_notifier.h"
#include "tests/daemon/engine/engine_test_base.h"
#include "tests/fakes/fake_session_sink.h"
#include "tests/testing/envelope_bytes.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const int64_t kT0Ms = 1'700'000'000'000;

// The notifier's Redis side; the Distributor's Reader never watches here.
class QuietWatchOps final : public StreamWatchOps {
 public:
  void LastId(const std::string&, OpCallback<std::string>) override {}
  void WaitForEntries(const std::vector<StreamCursor>&, absl::Duration,
                      OpCallback<std::vector<StreamCursor>>) override {}
  void Unblock(int64_t, OpCallback<bool>) override {}
  bool blocking_connected() const override { return false; }
};

std::string JsonEnvelope(const std::string& body) {
  return SpecEnvelope({{"content-type", "application/json"}}, body);
}

// Entry `id` whose body is {"n":<its number>}.
StreamEntry Json(const std::string& id) {
  return DataEntry(id, JsonEnvelope(absl::StrCat("{\"n\":", id.substr(0, id.find('-')), "}")));
}

Entries Jsons(const Ids& ids) {
  Entries out;
  for (const std::string& id : ids) out.push_back(Json(id));
  return out;
}

StreamEntry Poison(const std::string& id) {
  return DataEntry(id, "{\"n\":4,\"_retry_count\":\"abc\"}");
}

StreamEntry Deleted(const std::string& id) {
  StreamEntry e;
  e.id = id;
  e.deleted = true;
  return e;
}

v1::Register Reg(uint32_t max_in_flight) {
  v1::Register r = BaseRegister();
  r.set_max_in_flight(max_in_flight);
  return r;
}

v1::Register AutoAck() {
  v1::Register r = BaseRegister();
  r.set_auto_ack(true);
  return r;
}

std::string FieldOf(const FieldList& fields, absl::string_view name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return v;
  }
  return "<none>";
}

struct Client {
  std::shared_ptr<FakeSessionSink> sink;
  HandlerSession* session;

  Ids entry_ids() const {
    Ids out;
    for (const v1::Delivery& d : sink->deliveries()) out.push_back(d.entry_id());
    return out;
  }
  std::vector<uint64_t> delivery_ids() const {
    std::vector<uint64_t> out;
    for (const v1::Delivery& d : sink->deliveries()) out.push_back(d.delivery_id());
    return out;
  }
};

class DistributorTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.read_batch = 256;
    // Acks wait until a test flushes them: with the default 1 ms delay the timer could flush
    // between a delivery and the test's look at the queue on a loaded machine.
    options_.ack_delay = absl::Hours(1);
    // XCLAIM returns every id asked for, with its fields.
    Answer<ClaimCall>([](const ClaimCall& c) -> ClaimCall::Reply { return Jsons(c.ids); });
    loop_.RunSync([this] {
      notifier_ = std::make_unique<StreamNotifier>(watch_ops_, [](const std::string&) {});
      acks_ = std::make_unique<AckBatcher>(ctx_);
      drainer_ = std::make_unique<Drainer>(ctx_);
      dead_letters_ = std::make_unique<DeadLetterer>(ctx_);
      RetryScheduler::Hooks retry_hooks;
      retry_hooks.schedule_failed = [](const HandlerRef&, uint8_t) {};
      retry_hooks.moved = [](const HandlerRef&, uint8_t) {};
      retry_hooks.draining = [this] { return drainer_->draining(); };
      retries_ = std::make_unique<RetryScheduler>(ctx_, *dead_letters_, std::move(retry_hooks));
      // As the dispatcher wires them.
      Reader::Hooks read_hooks;
      read_hooks.capacity = [this](const HandlerRef& ref) -> uint32_t {
        EngineHandler* h = handlers_.Find(ref);
        if (h == nullptr || h->paused || drainer_->draining()) return 0;
        return h->Capacity(reader_->reserved(ref));
      };
      read_hooks.entries = [this](const HandlerRef& ref, uint8_t source, Entries entries) {
        if (EngineHandler* h = handlers_.Find(ref)) {
          distributor_->Deliver(*h, source, std::move(entries));
        }
        dirty_.Flush();
      };
      read_hooks.orphaned = [this](const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                                   const Ids& ids) { retries_->Return(ref, spec, source, ids); };
      read_hooks.draining = [this] { return drainer_->draining(); };
      reader_ = std::make_unique<Reader>(ctx_, *notifier_, std::move(read_hooks));
      distributor_ = std::make_unique<Distributor>(
          ctx_, handlers_, dirty_, Distributor::Parts{*reader_, *retries_, *acks_, *drainer_});
    });
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] {
      distributor_.reset();
      reader_.reset();
      retries_.reset();
      dead_letters_.reset();
      drainer_.reset();
      acks_.reset();
      notifier_.reset();
      if (h_ != nullptr) handlers_.Remove(h_->ref);
      sessions_.clear();
    });
  }

  // The handler ("orders/billing", generation 1 = ref_), its group ready.
  void CreateHandler(const v1::Register& reg = BaseRegister()) {
    loop_.RunSync([&] {
      h_ = &handlers_.Create(kKey, MakeSpec(reg));
      h_->ready = true;
      reader_->Add(h_->ref, h_->spec);
      retries_->Add(h_->ref);
      dead_letters_->Add(h_->ref);
    });
  }
  // An attached session of the handler taking `max_in_flight` deliveries.
  Client AddSession(uint32_t max_in_flight) {
    Client c{std::make_shared<FakeSessionSink>(), nullptr};
    loop_.RunSync([&] {
      v1::Register reg = Reg(max_in_flight);
      reg.set_auto_ack(h_->spec->auto_ack);
      sessions_.push_back(
          std::make_unique<HandlerSession>(sessions_.size() + 1, c.sink, *MakeSpec(reg)));
      c.session = sessions_.back().get();
      c.session->handler = h_;
      h_->sessions.attached().push_back(c.session);
      c.session->Attach(kInstance);
    });
    return c;
  }
  // Deliver (then the end-of-turn flush).
  void Deliver(uint8_t source, Entries entries) {
    Run([&] {
      distributor_->Deliver(*h_, source, std::move(entries));
      dirty_.Flush();
    });
  }
  void Pump() {
    Run([&] {
      distributor_->Pump(*h_);
      dirty_.Flush();
    });
  }
  void SetPaused(bool paused) {
    loop_.RunSync([&] { h_->paused = paused; });
  }
  void StartDrain() {
    loop_.RunSync([&] { drainer_->Start(absl::Seconds(30), [] {}); });
  }
  void SetReadBatch(uint32_t n) {
    loop_.RunSync([&] { options_.read_batch = n; });
  }
  std::vector<Entry> TakeBacklogIds() {
    std::vector<Entry> out;
    loop_.RunSync([&] { out = h_->backlog.TakeIds(); });
    return out;
  }
  static Ids IdsOf(const std::vector<Entry>& entries) {
    Ids out;
    for (const Entry& e : entries) out.push_back(e.id);
    return out;
  }
  std::vector<Ids> ClaimedIds() {
    std::vector<Ids> out;
    for (const ClaimCall& c : Calls<ClaimCall>()) out.push_back(c.ids);
    return out;
  }
  // (stream, id, outcome) of every ScheduleRetry.
  std::vector<std::tuple<std::string, std::string, std::string>> Scheduled() {
    std::vector<std::tuple<std::string, std::string, std::string>> out;
    for (const ScheduleRetryCall& c : Calls<ScheduleRetryCall>()) {
      absl::StatusOr<DueMember> m = DecodeDueMember(c.op.member);
      EXPECT_TRUE(m.ok()) << m.status();
      EXPECT_EQ(c.op.delay, absl::ZeroDuration());
      out.emplace_back(c.op.owner.stream, c.op.id, m.ok() ? m->failure.outcome : "?");
    }
    return out;
  }

  QuietWatchOps watch_ops_;
  // Loop thread.
  std::unique_ptr<StreamNotifier> notifier_;
  std::unique_ptr<AckBatcher> acks_;
  std::unique_ptr<Drainer> drainer_;
  std::unique_ptr<DeadLetterer> dead_letters_;
  std::unique_ptr<RetryScheduler> retries_;
  std::unique_ptr<Reader> reader_;
  std::unique_ptr<Distributor> distributor_;
  HandlerTable handlers_;
  DirtySessions dirty_;
  EngineHandler* h_ = nullptr;
  std::vector<std::unique_ptr<HandlerSession>> sessions_;
};

TEST_F(DistributorTest, EntriesGoRoundRobinToTheSessionsWithAFreeSlot) {
  CreateHandler();
  const Client a = AddSession(2);
  const Client b = AddSession(1);
  const Client c = AddSession(2);
  Deliver(kMain, Jsons({"1-0", "2-0", "3-0", "4-0", "5-0"}));
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0", "4-0"));
  EXPECT_THAT(b.entry_ids(), ElementsAre("2-0"));
  EXPECT_THAT(c.entry_ids(), ElementsAre("3-0", "5-0"));
  EXPECT_THAT(a.delivery_ids(), ElementsAre(1, 4));
  EXPECT_THAT(b.delivery_ids(), ElementsAre(2));
  EXPECT_THAT(c.delivery_ids(), ElementsAre(3, 5));
  const v1::Delivery d = a.sink->deliveries()[0];
  EXPECT_EQ(d.channel(), "orders");
  EXPECT_EQ(d.stream(), "orders");
  EXPECT_EQ(d.original_entry_id(), "1-0");
  EXPECT_EQ(d.payload(), "{\"n\":1}");
  EXPECT_EQ(d.content_type(), "application/json");
  EXPECT_EQ(d.attempt(), 1u);
  EXPECT_EQ(d.max_attempts(), 6u);
  EXPECT_EQ(d.lease_deadline_unix_ms(), kT0Ms + 30000);
  EXPECT_EQ(Stats().deliveries, 5u);
  loop_.RunSync([&] {
    EXPECT_EQ(a.session->leases.size(), 2u);
    ASSERT_NE(a.session->leases.Find(4), nullptr);
    EXPECT_EQ(a.session->leases.Find(4)->entry.id, "4-0");
    EXPECT_EQ(h_->backlog.taken(), 0u);
  });
}

TEST_F(DistributorTest, ARetriedEntryIsDeliveredWithItsAttemptAndOriginalId) {
  CreateHandler();
  const Client a = AddSession(5);
  Deliver(kRetry, {DataEntry("7-0", JsonEnvelope("{\"n\":1,\"_retry_count\":\"2\","
                                                 "\"_original_message_id\":\"1-0\"}"))});
  const std::vector<v1::Delivery> ds = a.sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].stream(), "orders.billing.retry");
  EXPECT_EQ(ds[0].entry_id(), "7-0");
  EXPECT_EQ(ds[0].original_entry_id(), "1-0");
  EXPECT_EQ(ds[0].attempt(), 3u);
  EXPECT_EQ(ds[0].payload(), "{\"n\":1}");
  loop_.RunSync([&] {
    ASSERT_NE(a.session->leases.Find(1), nullptr);
    EXPECT_EQ(a.session->leases.Find(1)->entry.attempt, 3u);
    EXPECT_EQ(a.session->leases.Find(1)->entry.source, kRetry);
  });
}

TEST_F(DistributorTest, WhatFindsNoSlotIsParkedByIdWithItsSource) {
  CreateHandler();
  const Client a = AddSession(1);
  Deliver(kMain, Jsons({"1-0", "2-0"}));
  Deliver(kRetry, Jsons({"3-0"}));
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0"));
  EXPECT_EQ(Stats().deliveries, 1u);
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());  // fetched again only when a slot frees
  loop_.RunSync([&] {
    EXPECT_FALSE(h_->backlog.has_whole());
    EXPECT_EQ(h_->backlog.taken(), 2u);
  });
  const std::vector<Entry> parked = TakeBacklogIds();
  EXPECT_THAT(IdsOf(parked), ElementsAre("2-0", "3-0"));
  ASSERT_EQ(parked.size(), 2u);
  EXPECT_EQ(parked[0].source, kMain);
  EXPECT_EQ(parked[1].source, kRetry);
}

TEST_F(DistributorTest, AnAutoAckHandlerParksWholeEntries) {
  CreateHandler(AutoAck());
  const Client a = AddSession(1);
  Deliver(kMain, Jsons({"1-0", "2-0", "3-0"}));
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0"));
  loop_.RunSync([&] {
    EXPECT_FALSE(h_->backlog.has_ids());
    EXPECT_EQ(h_->backlog.taken(), 2u);
    const StreamEntry first = h_->backlog.PopWhole();
    EXPECT_EQ(first.id, "2-0");
    EXPECT_EQ(first.fields, Json("2-0").fields);
  });
}

TEST_F(DistributorTest, APausedHandlerParksWhatArrives) {
  CreateHandler();
  const Client a = AddSession(5);
  SetPaused(true);
  Deliver(kMain, Jsons({"1-0", "2-0"}));
  EXPECT_THAT(a.entry_ids(), IsEmpty());
  EXPECT_EQ(Stats().deliveries, 0u);
  EXPECT_THAT(IdsOf(TakeBacklogIds()), ElementsAre("1-0", "2-0"));
}

TEST_F(DistributorTest, PoisonGoesToTheDeadLetterQueueAndIsNeverDelivered) {
  CreateHandler();
  const Client a = AddSession(5);
  Deliver(kMain, {Json("1-0"), Poison("2-0"), Json("3-0")});
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0", "3-0"));
  EXPECT_THAT(a.delivery_ids(), ElementsAre(1, 2));
  const std::vector<DeadLetterCall> dl = Calls<DeadLetterCall>();
  ASSERT_EQ(dl.size(), 1u);
  const DeadLetterOp& op = dl[0].op;
  EXPECT_EQ(op.from.stream, "orders");
  EXPECT_EQ(op.from.group, "billing");
  EXPECT_EQ(op.from.consumer, "billing-i1");
  EXPECT_EQ(op.dlq_stream, h_->spec->keys.dlq_stream);
  EXPECT_EQ(op.id, "2-0");
  EXPECT_EQ(FieldOf(op.fields, kReasonField), "poison");
  EXPECT_EQ(FieldOf(op.fields, kLastErrorCodeField), "POISON");
  EXPECT_THAT(FieldOf(op.fields, kLastErrorField), HasSubstr("_retry_count"));
  EXPECT_THAT(Calls<ReadEntryCall>(), IsEmpty());  // its fields were at hand
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.poison, 1u);
  EXPECT_EQ(s.deliveries, 2u);
  EXPECT_EQ(s.decode_errors, 0u);
  loop_.RunSync([&] { EXPECT_EQ(a.session->free_slots(), 3u); });
}

TEST_F(DistributorTest, AnAutoAckHandlerGetsAnUnreadableEntryAsRawBytes) {
  CreateHandler(AutoAck());
  const Client a = AddSession(5);
  Deliver(kMain, {Poison("2-0")});
  EXPECT_THAT(a.entry_ids(), ElementsAre("2-0"));
  EXPECT_THAT(Calls<DeadLetterCall>(), IsEmpty());
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.decode_errors, 1u);
  EXPECT_EQ(s.poison, 0u);
  EXPECT_EQ(s.deliveries, 1u);
}

TEST_F(DistributorTest, AnEntryDeletedWhilePendingIsAcknowledgedAndNotDelivered) {
  CreateHandler();
  const Client a = AddSession(5);
  Deliver(kMain, {Deleted("1-0"), Json("2-0")});
  Deliver(kRetry, {Deleted("3-0")});
  EXPECT_THAT(a.entry_ids(), ElementsAre("2-0"));
  EXPECT_THAT(a.delivery_ids(), ElementsAre(1));
  EXPECT_EQ(Stats().deliveries, 1u);
  loop_.RunSync([&] { EXPECT_EQ(acks_->queued(), 2u); });
  Run([&] { acks_->Flush(); });
  std::vector<std::tuple<std::string, std::string, Ids>> acked;
  for (const AckCall& c : Calls<AckCall>()) acked.emplace_back(c.stream, c.group, c.ids);
  EXPECT_THAT(acked, UnorderedElementsAre(
                         std::make_tuple("orders", "billing", Ids{"1-0"}),
                         std::make_tuple("orders.billing.retry", "billing-retry", Ids{"3-0"})));
}

TEST_F(DistributorTest, ADeletedEntryIsAcknowledgedEvenWhenNoSlotIsFree) {
  CreateHandler();
  Deliver(kMain, {Deleted("1-0"), Json("2-0")});
  loop_.RunSync([&] {
    EXPECT_EQ(acks_->queued(), 1u);
    EXPECT_EQ(h_->backlog.taken(), 1u);  // 2-0 only
  });
}

TEST_F(DistributorTest, AnAutoAckHandlerDropsDeletedEntriesWithoutAnAck) {
  CreateHandler(AutoAck());
  const Client a = AddSession(5);
  Deliver(kMain, {Deleted("1-0"), Json("2-0")});
  EXPECT_THAT(a.entry_ids(), ElementsAre("2-0"));
  loop_.RunSync([&] { EXPECT_EQ(acks_->queued(), 0u); });
}

TEST_F(DistributorTest, WhileDrainingEntriesAreHandedBackInsteadOfDelivered) {
  CreateHandler();
  const Client a = AddSession(5);
  StartDrain();
  Deliver(kMain, Jsons({"1-0", "2-0"}));
  Deliver(kRetry, Jsons({"3-0"}));
  EXPECT_THAT(a.entry_ids(), IsEmpty());
  EXPECT_THAT(Scheduled(), ElementsAre(std::make_tuple("orders", "1-0", "returned"),
                                       std::make_tuple("orders", "2-0", "returned"),
                                       std::make_tuple("orders.billing.retry", "3-0", "returned")));
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.returned, 3u);
  EXPECT_EQ(s.deliveries, 0u);
  loop_.RunSync([&] { EXPECT_EQ(h_->backlog.taken(), 0u); });
}

TEST_F(DistributorTest, WhileDrainingAnAutoAckHandlerStillDelivers) {
  CreateHandler(AutoAck());
  const Client a = AddSession(5);
  StartDrain();
  Deliver(kMain, Jsons({"1-0"}));
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0"));
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
}

TEST_F(DistributorTest, PumpHandsOutWholeEntriesInOrderAsSlotsAllowEvenWhileDraining) {
  CreateHandler(AutoAck());
  Deliver(kMain, Jsons({"1-0", "2-0", "3-0", "4-0"}));  // no session yet: all parked
  const Client a = AddSession(2);
  Pump();
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0", "2-0"));
  SetPaused(true);
  const Client b = AddSession(1);
  Pump();
  EXPECT_THAT(b.entry_ids(), IsEmpty());
  SetPaused(false);
  StartDrain();
  Pump();
  EXPECT_THAT(b.entry_ids(), ElementsAre("3-0"));
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  loop_.RunSync([&] { EXPECT_EQ(h_->backlog.taken(), 1u); });
  EXPECT_EQ(Stats().redeliveries, 0u);
}

TEST_F(DistributorTest, PumpFetchesParkedIdsAgainForTheFreeSlotsAndDeliversThem) {
  CreateHandler();
  Deliver(kMain, Jsons({"1-0", "2-0", "3-0", "4-0"}));
  Deliver(kRetry, Jsons({"5-0"}));
  const Client a = AddSession(3);
  Run([&] { distributor_->Pump(*h_); });  // the fetch's reply flushes by itself
  const std::vector<ClaimCall> claims = Calls<ClaimCall>();
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].g.stream, "orders");
  EXPECT_EQ(claims[0].g.group, "billing");
  EXPECT_EQ(claims[0].g.consumer, "billing-i1");
  EXPECT_EQ(claims[0].min_idle, absl::ZeroDuration());
  EXPECT_EQ(claims[0].ids, (Ids{"1-0", "2-0", "3-0"}));
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0", "2-0", "3-0"));
  EXPECT_EQ(a.sink->deliveries()[1].payload(), "{\"n\":2}");
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.redeliveries, 3u);
  EXPECT_EQ(s.deliveries, 3u);
  loop_.RunSync([&] {
    EXPECT_EQ(h_->backlog.fetching(), 0u);
    EXPECT_EQ(h_->backlog.taken(), 2u);  // 4-0 and 5-0 wait for a slot
  });
}

TEST_F(DistributorTest, PumpFetchesAtMostReadBatchAtATimeAndGoesOnAfterEachReply) {
  CreateHandler();
  SetReadBatch(2);
  Deliver(kMain, Jsons({"1-0", "2-0", "3-0", "4-0", "5-0"}));
  const Client a = AddSession(10);
  Pump();
  EXPECT_THAT(ClaimedIds(), ElementsAre(Ids{"1-0", "2-0"}, Ids{"3-0", "4-0"}, Ids{"5-0"}));
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0", "2-0", "3-0", "4-0", "5-0"));
  EXPECT_EQ(Stats().redeliveries, 5u);
}

TEST_F(DistributorTest, PumpFetchesOnlyTheFreeSlotsNotPromisedToReadsOrFetches) {
  CreateHandler();
  const Client a = AddSession(5);
  loop_.RunSync([&] {
    ops_.Hold<ReadGroupCall>();
    ops_.Hold<ClaimCall>();
  });
  SetReadBatch(2);
  Run([&] {
    reader_->Open(h_->ref, kMain);
    reader_->MaybeRead(h_->ref);
  });
  ASSERT_EQ(Calls<ReadGroupCall>().size(), 1u);
  EXPECT_EQ(Calls<ReadGroupCall>()[0].count, 2u);  // two slots promised to the read
  SetPaused(true);
  Deliver(kMain, Jsons({"1-0", "2-0", "3-0", "4-0", "5-0", "6-0"}));
  SetPaused(false);
  SetReadBatch(256);
  Pump();
  EXPECT_THAT(ClaimedIds(), ElementsAre(Ids{"1-0", "2-0", "3-0"}));  // 5 free - 2 promised
  Pump();  // 3 being fetched + 2 being read: nothing left to promise
  EXPECT_EQ(Calls<ClaimCall>().size(), 1u);
  EXPECT_THAT(a.entry_ids(), IsEmpty());
}

TEST_F(DistributorTest, PumpFetchesNothingWhilePausedOrDraining) {
  CreateHandler();
  Deliver(kMain, Jsons({"1-0", "2-0"}));
  const Client a = AddSession(5);
  SetPaused(true);
  Pump();
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  SetPaused(false);
  StartDrain();
  Pump();
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  EXPECT_THAT(a.entry_ids(), IsEmpty());
  loop_.RunSync([&] { EXPECT_EQ(h_->backlog.taken(), 2u); });
}

TEST_F(DistributorTest, AFailedFetchPutsTheIdsBackInOrderAndCountsARedisError) {
  CreateHandler();
  Answer<ClaimCall>(
      [](const ClaimCall&) -> ClaimCall::Reply { return absl::UnavailableError("down"); });
  Deliver(kMain, Jsons({"1-0", "2-0", "3-0"}));
  const Client a = AddSession(2);
  Pump();
  EXPECT_THAT(ClaimedIds(), ElementsAre(Ids{"1-0", "2-0"}));
  EXPECT_THAT(a.entry_ids(), IsEmpty());
  DispatcherStats s = Stats();
  EXPECT_EQ(s.redis_errors, 1u);
  EXPECT_EQ(s.redeliveries, 0u);
  loop_.RunSync([&] {
    EXPECT_EQ(h_->backlog.fetching(), 0u);
    EXPECT_EQ(h_->backlog.taken(), 3u);
  });
  Answer<ClaimCall>([](const ClaimCall& c) -> ClaimCall::Reply { return Jsons(c.ids); });
  Pump();  // the next tick
  EXPECT_THAT(ClaimedIds(), ElementsAre(Ids{"1-0", "2-0"}, Ids{"1-0", "2-0"}));
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0", "2-0"));
}

TEST_F(DistributorTest, AFetchAnsweredAfterTheHandlerLeftIsHandedBack) {
  CreateHandler();
  Deliver(kMain, Jsons({"1-0", "2-0"}));
  Deliver(kRetry, Jsons({"3-0"}));
  const Client a = AddSession(5);
  loop_.RunSync([&] { ops_.Hold<ClaimCall>(); });
  Pump();
  ASSERT_EQ(Calls<ClaimCall>().size(), 2u);
  loop_.RunSync([&] {
    // As the dispatcher removes a handler whose last session left.
    const HandlerRef ref = h_->ref;
    h_->sessions.Remove(a.session);
    a.session->handler = nullptr;
    reader_->Forget(ref);
    retries_->Forget(ref);
    dead_letters_->Forget(ref);
    handlers_.Remove(ref);
    h_ = nullptr;
    ops_.Release<ClaimCall>();
  });
  Settle();
  EXPECT_THAT(Scheduled(), ElementsAre(std::make_tuple("orders", "1-0", "returned"),
                                       std::make_tuple("orders", "2-0", "returned"),
                                       std::make_tuple("orders.billing.retry", "3-0", "returned")));
  EXPECT_THAT(a.entry_ids(), IsEmpty());
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.returned, 3u);
  EXPECT_EQ(s.redeliveries, 0u);
}

TEST_F(DistributorTest, AFetchedEntryDeletedMeanwhileIsAcknowledgedAndCountedAsFetched) {
  CreateHandler();
  Answer<ClaimCall>([](const ClaimCall&) -> ClaimCall::Reply {
    return Entries{Deleted("1-0"), Json("2-0")};
  });
  Deliver(kMain, Jsons({"1-0", "2-0"}));
  const Client a = AddSession(5);
  Pump();
  EXPECT_THAT(a.entry_ids(), ElementsAre("2-0"));
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.redeliveries, 2u);
  EXPECT_EQ(s.deliveries, 1u);
  loop_.RunSync([&] { EXPECT_EQ(acks_->queued(), 1u); });
}

TEST_F(DistributorTest, AfterAFetchTheReaderReadsForTheSlotsLeft) {
  CreateHandler();
  Deliver(kMain, Jsons({"1-0", "2-0"}));
  const Client a = AddSession(5);
  loop_.RunSync([&] { reader_->Open(h_->ref, kMain); });
  Pump();
  EXPECT_THAT(a.entry_ids(), ElementsAre("1-0", "2-0"));
  const std::vector<ReadGroupCall> reads = Calls<ReadGroupCall>();
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].g.stream, "orders");
  EXPECT_EQ(reads[0].count, 3u);
}

}  // namespace
}  // namespace redrive::testing
