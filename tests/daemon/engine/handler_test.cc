// EngineHandler (daemon/engine/handler.h): the slots not yet promised, the
// ids a sweep must skip, what it keeps ours in Redis (the backlog's ids
// while a session is attached; deliveries that outlive the handler's lease,
// not for auto-ack and at most every lease / 3) and what a drain hands back
// (unsettled deliveries in delivery order, then the backlog's ids).
// HandlerTable: handlers by generation and by key.
#include "daemon/engine/handler.h"

#include <memory>
#include <string>
#include <vector>

#include "tests/daemon/engine/engine_test_base.h"
#include "tests/fakes/fake_session_sink.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

v1::Register Reg(uint32_t max_in_flight, uint32_t lease_ms, bool auto_ack = false) {
  v1::Register r = BaseRegister();
  r.set_max_in_flight(max_in_flight);
  r.set_lease_ms(lease_ms);
  r.set_auto_ack(auto_ack);
  return r;
}

class EngineHandlerTest : public EngineTest {
 protected:
  void TearDown() override {
    Settle();
    loop_.RunSync([this] {
      sessions_.clear();
      if (h_ != nullptr) table_.Remove(h_->ref);
    });
  }
  // A handler registered with `reg` (the first registration's settings).
  void Create(const v1::Register& reg) {
    loop_.RunSync([&] { h_ = &table_.Create(kKey, MakeSpec(reg)); });
  }
  // A session of the handler registered with `reg`: attached (it gets its
  // Registered reply) or waiting for the group.
  HandlerSession& AddSession(const v1::Register& reg, bool attach = true) {
    HandlerSession* s = nullptr;
    loop_.RunSync([&] {
      sessions_.push_back(std::make_unique<HandlerSession>(
          sessions_.size() + 1, std::make_shared<FakeSessionSink>(), *MakeSpec(reg)));
      s = sessions_.back().get();
      s->handler = h_;
      if (attach) {
        h_->sessions.attached().push_back(s);
        s->Attach(kInstance);
      } else {
        h_->sessions.waiting().push_back(s);
      }
    });
    return *s;
  }
  void Deliver(HandlerSession& s, uint64_t delivery_id, const std::string& id, uint8_t source,
               absl::Time now = kT0) {
    loop_.RunSync([&] {
      v1::Delivery message;
      s.Deliver(delivery_id, Entry{id, 1, source}, *h_->spec, message, now);
    });
  }
  void ParkIds(uint8_t source, const Ids& ids) {
    loop_.RunSync([&] {
      for (const std::string& id : ids) h_->backlog.Park(DataEntry(id, "x"), source, false);
    });
  }
  void ParkWhole(const std::string& id) {
    loop_.RunSync([&] { h_->backlog.Park(DataEntry(id, "x"), kMain, true); });
  }
  uint32_t Capacity(uint32_t reading) {
    uint32_t n = 0;
    loop_.RunSync([&] { n = h_->Capacity(reading); });
    return n;
  }
  void KeepOurs(absl::Time now) {
    SetNow(now);
    Run([&] { h_->KeepOurs(ctx_, now); });
  }

  // Loop thread.
  HandlerTable table_;
  EngineHandler* h_ = nullptr;
  std::vector<std::unique_ptr<HandlerSession>> sessions_;
};

TEST_F(EngineHandlerTest, CapacityIsTheFreeSlotsNotPromisedToTheBacklogOrToReads) {
  Create(BaseRegister());
  EXPECT_EQ(Capacity(0), 0u);  // no session yet
  HandlerSession& a = AddSession(Reg(4, 30000));
  AddSession(Reg(6, 30000));
  AddSession(Reg(100, 30000), /*attach=*/false);  // waiting: no slots yet
  EXPECT_EQ(Capacity(0), 10u);
  ParkIds(kMain, {"1-0", "2-0"});
  ParkWhole("3-0");
  EXPECT_EQ(Capacity(0), 7u);
  EXPECT_EQ(Capacity(2), 5u);
  EXPECT_EQ(Capacity(7), 0u);
  EXPECT_EQ(Capacity(9), 0u);  // promised more than is free
  Deliver(a, 1, "4-0", kMain);
  EXPECT_EQ(Capacity(0), 6u);
}

TEST_F(EngineHandlerTest, AddHeldAddsTheSessionsFlightsAndTheBacklogsIdsOfTheSource) {
  Create(BaseRegister());
  HandlerSession& a = AddSession(BaseRegister());
  HandlerSession& b = AddSession(BaseRegister());
  Deliver(a, 1, "1-0", kMain);
  Deliver(a, 2, "2-0", kRetry);
  Deliver(b, 3, "3-0", kMain);
  ParkIds(kMain, {"4-0"});
  ParkIds(kRetry, {"5-0"});
  absl::flat_hash_set<std::string> main, retry;
  loop_.RunSync([&] {
    h_->AddHeld(kMain, main);
    h_->AddHeld(kRetry, retry);
  });
  EXPECT_THAT(main, UnorderedElementsAre("1-0", "3-0", "4-0"));
  EXPECT_THAT(retry, UnorderedElementsAre("2-0", "5-0"));
}

TEST_F(EngineHandlerTest, KeepOursTouchesTheBacklogOnlyWhileASessionIsAttached) {
  Create(BaseRegister());
  HandlerSession& s = AddSession(BaseRegister(), /*attach=*/false);
  ParkIds(kMain, {"1-0", "2-0"});
  KeepOurs(kT0);
  EXPECT_THAT(Calls<TouchCall>(), IsEmpty());
  loop_.RunSync([&] {
    h_->sessions.waiting().clear();
    h_->sessions.attached().push_back(&s);
  });
  KeepOurs(kT0);
  const std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 1u);
  EXPECT_EQ(touches[0].g.stream, "orders");
  EXPECT_EQ(touches[0].g.group, "billing");
  EXPECT_EQ(touches[0].ids, (Ids{"1-0", "2-0"}));
  EXPECT_FALSE(touches[0].release);
  KeepOurs(kT0 + absl::Seconds(10) - absl::Milliseconds(1));  // a third of the 30 s lease
  EXPECT_EQ(Calls<TouchCall>().size(), 1u);
}

TEST_F(EngineHandlerTest, KeepOursTouchesDeliveriesOutlivingTheHandlersLeaseEveryThirdOfIt) {
  Create(Reg(10, 30000));
  HandlerSession& s = AddSession(Reg(10, 60000));  // a longer session lease
  Deliver(s, 1, "1-0", kMain, kT0);
  Deliver(s, 2, "2-0", kRetry, kT0 + absl::Seconds(5));
  KeepOurs(kT0);
  EXPECT_THAT(Calls<TouchCall>(), IsEmpty());
  KeepOurs(kT0 + absl::Seconds(10) + absl::Milliseconds(1));
  std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 1u);
  EXPECT_EQ(touches[0].g.stream, "orders");
  EXPECT_EQ(touches[0].ids, (Ids{"1-0"}));
  EXPECT_FALSE(touches[0].release);
  loop_.RunSync(
      [&] { EXPECT_EQ(h_->in_flight_touch_at, kT0 + absl::Seconds(20) + absl::Milliseconds(1)); });
  // 2-0 has been idle for a third of the lease by now, but the next pass is
  // not due yet.
  KeepOurs(kT0 + absl::Seconds(15) + absl::Milliseconds(2));
  EXPECT_EQ(Calls<TouchCall>().size(), 1u);
  KeepOurs(kT0 + absl::Seconds(20) + absl::Milliseconds(1));
  touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 2u);
  EXPECT_EQ(touches[1].g.stream, "orders.billing.retry");
  EXPECT_EQ(touches[1].g.group, "billing-retry");
  EXPECT_EQ(touches[1].ids, (Ids{"2-0"}));  // 1-0 was touched 10 s ago: not yet again
}

TEST_F(EngineHandlerTest, KeepOursNeverTouchesTheDeliveriesOfAnAutoAckHandler) {
  Create(Reg(10, 30000, /*auto_ack=*/true));
  HandlerSession& s = AddSession(Reg(10, 60000, /*auto_ack=*/true));
  Deliver(s, 1, "1-0", kMain, kT0);
  KeepOurs(kT0 + absl::Seconds(11));
  KeepOurs(kT0 + absl::Seconds(30));
  EXPECT_THAT(Calls<TouchCall>(), IsEmpty());
  loop_.RunSync([&] { EXPECT_EQ(s.leases.Find(1)->idle_since, kT0); });
}

TEST_F(EngineHandlerTest, TakeForHandBackTakesUnsettledDeliveriesInDeliveryOrderThenTheBacklog) {
  Create(BaseRegister());
  HandlerSession& a = AddSession(BaseRegister());
  HandlerSession& b = AddSession(BaseRegister());
  Deliver(a, 2, "2-0", kMain);
  Deliver(a, 4, "4-0", kRetry);
  Deliver(b, 1, "1-0", kMain);
  Deliver(b, 3, "3-0", kMain);
  Deliver(b, 5, "5-0", kRetry);
  DispatcherStats stats;
  v1::Verbs ack;
  ack.add_verbs()->set_delivery_id(3);
  ack.mutable_verbs(0)->mutable_ack();
  loop_.RunSync([&] { b.Apply(ack, kT0, stats); });
  ParkIds(kMain, {"6-0"});
  ParkIds(kRetry, {"7-0"});
  ParkIds(kMain, {"8-0"});
  ParkWhole("9-0");
  std::vector<std::string> ids[2];
  size_t unsettled = 0;
  loop_.RunSync([&] { unsettled = h_->TakeForHandBack(ids); });
  EXPECT_EQ(unsettled, 4u);  // the backlog's ids were never delivered
  EXPECT_THAT(ids[kMain], ElementsAre("1-0", "2-0", "6-0", "8-0"));
  EXPECT_THAT(ids[kRetry], ElementsAre("4-0", "5-0", "7-0"));
  loop_.RunSync([&] {
    EXPECT_TRUE(a.leases.empty());
    EXPECT_TRUE(b.leases.empty());
    EXPECT_EQ(a.leases.SettledAs(2), std::nullopt);  // taken, not settled
    EXPECT_FALSE(h_->backlog.has_ids());
    EXPECT_TRUE(h_->backlog.has_whole());  // auto-ack entries: nothing to hand back
  });
}

TEST_F(EngineHandlerTest, TakeForHandBackOfAnIdleHandlerTakesNothing) {
  Create(BaseRegister());
  AddSession(BaseRegister());
  std::vector<std::string> ids[2];
  size_t unsettled = 1;
  loop_.RunSync([&] { unsettled = h_->TakeForHandBack(ids); });
  EXPECT_EQ(unsettled, 0u);
  EXPECT_THAT(ids[kMain], IsEmpty());
  EXPECT_THAT(ids[kRetry], IsEmpty());
}

// ---------------------------------------------------------------- HandlerTable

TEST(HandlerTableTest, CreateGivesEachHandlerANewGenerationAndItsSpec) {
  HandlerTable table;
  const SpecPtr billing = MakeSpec();
  EngineHandler& a = table.Create("orders/billing", billing);
  EngineHandler& b = table.Create("orders/shipping", MakeSpec());
  EXPECT_EQ(a.ref.key, "orders/billing");
  EXPECT_EQ(a.ref.generation, 1u);
  EXPECT_EQ(a.spec, billing);
  EXPECT_EQ(b.ref.key, "orders/shipping");
  EXPECT_EQ(b.ref.generation, 2u);
  EXPECT_FALSE(a.ready);
  EXPECT_FALSE(a.paused);
  EXPECT_FALSE(a.present);
  EXPECT_TRUE(a.sessions.empty());
  EXPECT_EQ(table.size(), 2u);
  EXPECT_FALSE(table.empty());
}

TEST(HandlerTableTest, FindsAHandlerByItsRefAndByItsKey) {
  HandlerTable table;
  EngineHandler& a = table.Create("orders/billing", MakeSpec());
  EngineHandler& b = table.Create("orders/shipping", MakeSpec());
  EXPECT_EQ(table.Find(a.ref), &a);
  EXPECT_EQ(table.Find(b.ref), &b);
  EXPECT_EQ(table.Find(HandlerRef{"orders/billing", 3}), nullptr);
  EXPECT_EQ(table.FindKey("orders/billing"), &a);
  EXPECT_EQ(table.FindKey("orders/shipping"), &b);
  EXPECT_EQ(table.FindKey("orders/other"), nullptr);
}

TEST(HandlerTableTest, RemoveForgetsTheHandlerAndItsKeyComesBackWithANewGeneration) {
  HandlerTable table;
  const HandlerRef first = table.Create("orders/billing", MakeSpec()).ref;
  table.Remove(first);
  EXPECT_EQ(table.Find(first), nullptr);
  EXPECT_EQ(table.FindKey("orders/billing"), nullptr);
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(table.size(), 0u);
  EXPECT_THAT(table.keys(), IsEmpty());
  EngineHandler& again = table.Create("orders/billing", MakeSpec());
  EXPECT_EQ(again.ref.generation, 2u);
  EXPECT_EQ(table.Find(first), nullptr);  // a reply for the first finds nothing
  EXPECT_EQ(table.Find(again.ref), &again);
  EXPECT_EQ(table.FindKey("orders/billing"), &again);
}

TEST(HandlerTableTest, RemovingAnEarlierGenerationLeavesTheNewerHandlersKey) {
  HandlerTable table;
  const HandlerRef first = table.Create("orders/billing", MakeSpec()).ref;
  table.Remove(first);
  EngineHandler& again = table.Create("orders/billing", MakeSpec());
  table.Remove(first);  // late, for the first generation: nothing of the second goes
  EXPECT_EQ(table.FindKey("orders/billing"), &again);
  EXPECT_EQ(table.Find(again.ref), &again);
  EXPECT_EQ(table.size(), 1u);
}

TEST(HandlerTableTest, KeysAndIterationCoverEveryHandler) {
  HandlerTable table;
  table.Create("orders/billing", MakeSpec());
  table.Create("orders/shipping", MakeSpec());
  table.Create("invoices/billing", MakeSpec());
  table.Remove(table.FindKey("orders/shipping")->ref);
  EXPECT_THAT(table.keys(), UnorderedElementsAre("orders/billing", "invoices/billing"));
  std::vector<std::pair<uint64_t, std::string>> seen;
  for (const auto& [generation, h] : table) seen.emplace_back(generation, h->ref.key);
  EXPECT_THAT(seen,
              UnorderedElementsAre(std::make_pair(uint64_t{1}, std::string("orders/billing")),
                                   std::make_pair(uint64_t{3}, std::string("invoices/billing"))));
  const HandlerTable& view = table;
  size_t n = 0;
  for (auto it = view.begin(); it != view.end(); ++it) ++n;
  EXPECT_EQ(n, 2u);
}

}  // namespace
}  // namespace redrive::testing
