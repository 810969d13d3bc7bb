// Sweeper (daemon/engine/sweeper.h): once per period (max(lease,
// min_sweep)) per source, claims what other consumers (not the scheduled
// one) left idle past the lease, skipping held ids; hands claims back when
// the handler left meanwhile; every sixth sweep removes expired idle
// consumers; sweeps of the retry stream trim it when wanted.
#include "daemon/engine/sweeper.h"

#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::Register LeaseMs(uint32_t lease_ms) {
  v1::Register r = BaseRegister();
  r.set_lease_ms(lease_ms);
  return r;
}

struct Claimed {
  std::string key;
  uint8_t source;
  std::string consumer;
  Ids ids;
};

class SweeperTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.min_sweep = absl::Seconds(5);
    options_.read_batch = 256;
    options_.consumer_expiry = absl::Minutes(10);
    options_.trim_limit = 10000;
    options_.retry_retention = absl::Minutes(1);
    loop_.RunSync([this] {
      Sweeper::Hooks hooks;
      hooks.held = [this](const HandlerRef&, uint8_t source) { return held_[source]; };
      hooks.claimed = [this](const HandlerRef& ref, uint8_t source, const std::string& consumer,
                             std::vector<StreamEntry> entries) {
        Ids ids;
        for (const StreamEntry& e : entries) ids.push_back(e.id);
        claimed_.push_back(Claimed{ref.key, source, consumer, ids});
      };
      sweeper_ = std::make_unique<Sweeper>(ctx_, std::move(hooks));
      sweeper_->Add(ref_);
    });
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] { sweeper_.reset(); });
  }
  void Sweep(absl::Time now, const SpecPtr& spec) {
    SetNow(now);
    Run([&] { sweeper_->MaybeSweep(ref_, spec, now); });
  }
  void Sweep(absl::Time now) { Sweep(now, spec_); }
  // PendingConsumers of the main stream answers `consumers`; the retry
  // stream has none.
  void PendingInMain(Ids consumers) {
    Answer<PendingConsumersCall>([consumers](const PendingConsumersCall& c) -> Or<Ids> {
      return c.stream == "orders" ? consumers : Ids{};
    });
  }
  // Claim answers every id asked for.
  void ClaimEverything() {
    Answer<ClaimCall>([](const ClaimCall& c) -> Or<Entries> {
      Entries out;
      for (const std::string& id : c.ids) out.push_back(DataEntry(id, "x"));
      return out;
    });
  }
  size_t SweepsOf(const std::string& stream) {
    size_t n = 0;
    for (const PendingConsumersCall& c : Calls<PendingConsumersCall>()) n += c.stream == stream;
    return n;
  }
  size_t ConsumerListings() { return Calls<ConsumersCall>().size(); }

  std::unique_ptr<Sweeper> sweeper_;
  const SpecPtr fast_ = MakeSpec(LeaseMs(1000));  // lease 1 s: period = min_sweep
  // Loop thread.
  absl::flat_hash_set<std::string> held_[2];
  std::vector<Claimed> claimed_;
};

TEST_F(SweeperTest, ThePeriodIsTheLeaseOrMinSweepWhicheverIsLonger) {
  loop_.RunSync([&] {
    EXPECT_EQ(sweeper_->Period(*spec_), absl::Seconds(30));  // default lease
    EXPECT_EQ(sweeper_->Period(*fast_), absl::Seconds(5));
  });
}

TEST_F(SweeperTest, SweepsEachSourceOncePerPeriod) {
  Sweep(kT0);
  const std::vector<PendingConsumersCall> calls = Calls<PendingConsumersCall>();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].stream, "orders");
  EXPECT_EQ(calls[0].group, "billing");
  EXPECT_EQ(calls[1].stream, "orders.billing.retry");
  EXPECT_EQ(calls[1].group, "billing-retry");
  EXPECT_EQ(Stats().sweeps, 2u);
  Sweep(kT0 + absl::Seconds(30) - absl::Milliseconds(1));
  EXPECT_EQ(Calls<PendingConsumersCall>().size(), 2u);
  Sweep(kT0 + absl::Seconds(30));
  EXPECT_EQ(Calls<PendingConsumersCall>().size(), 4u);
  EXPECT_EQ(Stats().sweeps, 4u);
}

TEST_F(SweeperTest, SweepByBringsOneSourcesSweepForward) {
  Sweep(kT0);
  Run([&] { sweeper_->SweepBy(ref_, kRetry, kT0 + absl::Seconds(1)); });
  Sweep(kT0 + absl::Seconds(1));
  EXPECT_EQ(SweepsOf("orders"), 1u);
  EXPECT_EQ(SweepsOf("orders.billing.retry"), 2u);
  // A later time never delays it.
  Run([&] { sweeper_->SweepBy(ref_, kMain, kT0 + absl::Hours(1)); });
  Sweep(kT0 + absl::Seconds(30));
  EXPECT_EQ(SweepsOf("orders"), 2u);
}

TEST_F(SweeperTest, NoSecondSweepWhileOneIsOut) {
  SetNow(kT0);
  Run([&] {
    sweeper_->MaybeSweep(ref_, spec_, kT0);
    sweeper_->SweepBy(ref_, kMain, kT0);
    sweeper_->MaybeSweep(ref_, spec_, kT0);  // before the replies
  });
  EXPECT_EQ(SweepsOf("orders"), 1u);
  EXPECT_EQ(Stats().sweeps, 2u);
}

TEST_F(SweeperTest, ClaimsIdleEntriesOfOtherConsumersWithTheLeaseAsMinIdle) {
  PendingInMain({ScheduledConsumerName("billing"), "billing-i2"});
  Answer<IdlePendingCall>([](const IdlePendingCall&) -> Or<Ids> {
    return Ids{"1-0", "2-0", "3-0"};
  });
  ClaimEverything();
  loop_.RunSync([&] {
    held_[kMain] = {"2-0"};
    held_[kRetry] = {"1-0"};
  });
  Sweep(kT0);
  const std::vector<IdlePendingCall> idle = Calls<IdlePendingCall>();
  ASSERT_EQ(idle.size(), 1u);  // not the scheduled consumer
  EXPECT_EQ(idle[0].g.stream, "orders");
  EXPECT_EQ(idle[0].g.group, "billing");
  EXPECT_EQ(idle[0].g.consumer, "billing-i2");
  EXPECT_EQ(idle[0].min_idle, absl::Seconds(30));
  EXPECT_EQ(idle[0].count, 256u);
  const std::vector<ClaimCall> claims = Calls<ClaimCall>();
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].g.stream, "orders");
  EXPECT_EQ(claims[0].g.group, "billing");
  EXPECT_EQ(claims[0].g.consumer, "billing-i1");
  EXPECT_EQ(claims[0].min_idle, absl::Seconds(30));
  EXPECT_EQ(claims[0].ids, (Ids{"1-0", "3-0"}));  // 2-0 is held here
  loop_.RunSync([&] {
    ASSERT_EQ(claimed_.size(), 1u);
    EXPECT_EQ(claimed_[0].key, kKey);
    EXPECT_EQ(claimed_[0].source, kMain);
    EXPECT_EQ(claimed_[0].consumer, "billing-i2");
    EXPECT_EQ(claimed_[0].ids, (Ids{"1-0", "3-0"}));
  });
  EXPECT_THAT(Calls<TouchCall>(), IsEmpty());
}

TEST_F(SweeperTest, NothingIsClaimedWhenEveryIdleIdIsHeld) {
  PendingInMain({"billing-i2"});
  Answer<IdlePendingCall>([](const IdlePendingCall&) -> Or<Ids> { return Ids{"2-0"}; });
  loop_.RunSync([&] { held_[kMain] = {"2-0"}; });
  Sweep(kT0);
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  // The sweep has ended: the next period sweeps again.
  Sweep(kT0 + absl::Seconds(30));
  EXPECT_EQ(Calls<IdlePendingCall>().size(), 2u);
}

TEST_F(SweeperTest, ClaimsMadeAfterTheHandlerLeftAreReleased) {
  PendingInMain({"billing-i2"});
  Answer<IdlePendingCall>([](const IdlePendingCall&) -> Or<Ids> { return Ids{"1-0", "3-0"}; });
  // The handler leaves while the claim is out.
  Answer<ClaimCall>([this](const ClaimCall& c) -> Or<Entries> {
    sweeper_->Forget(ref_);
    return Entries{DataEntry(c.ids[0], "x"), DataEntry(c.ids[1], "x")};
  });
  Sweep(kT0);
  const std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 1u);
  EXPECT_EQ(touches[0].g.stream, "orders");
  EXPECT_EQ(touches[0].g.group, "billing");
  EXPECT_EQ(touches[0].g.consumer, "billing-i1");
  EXPECT_EQ(touches[0].ids, (Ids{"1-0", "3-0"}));
  EXPECT_TRUE(touches[0].release);
  EXPECT_EQ(Stats().released, 2u);
  loop_.RunSync([&] { EXPECT_THAT(claimed_, IsEmpty()); });
}

TEST_F(SweeperTest, FailedClaimsAndRedisErrorsOfIdlePendingAreCounted) {
  PendingInMain({"billing-i2", "billing-i3"});
  Answer<IdlePendingCall>([](const IdlePendingCall& c) -> Or<Ids> {
    if (c.g.consumer == "billing-i2") return RedisErrorReply("NOGROUP No such key");
    return Ids{"1-0"};
  });
  Answer<ClaimCall>(
      [](const ClaimCall&) -> Or<Entries> { return absl::UnavailableError("connection lost"); });
  Sweep(kT0);
  EXPECT_EQ(Stats().redis_errors, 2u);
  loop_.RunSync([&] { EXPECT_THAT(claimed_, IsEmpty()); });
}

TEST_F(SweeperTest, IdleConsumersAreRemovedOnEverySixthSweep) {
  constexpr int64_t expiry_ms = 10 * 60 * 1000;  // max(consumer_expiry, 10 leases of 1 s)
  Answer<ConsumersCall>([](const ConsumersCall&) -> Or<std::vector<ConsumerInfo>> {
    return std::vector<ConsumerInfo>{
        {"billing-gone", 0, expiry_ms},       // removed
        {"billing-young", 0, expiry_ms - 1},  // idle too briefly
        {"billing-busy", 1, expiry_ms * 10},  // something pending
        {"billing-i1", 0, expiry_ms * 10},    // this daemon
        {ScheduledConsumerName("billing"), 0, expiry_ms * 10},
        {"", 0, expiry_ms * 10},
    };
  });
  Answer<DeleteIdleConsumerCall>([](const DeleteIdleConsumerCall&) -> Or<bool> { return true; });
  Sweep(kT0, fast_);
  const std::vector<ConsumersCall> listings = Calls<ConsumersCall>();
  ASSERT_EQ(listings.size(), 2u);  // the first sweep of each source
  EXPECT_EQ(listings[0].stream, "orders");
  EXPECT_EQ(listings[0].group, "billing");
  EXPECT_EQ(listings[1].stream, "orders.billing.retry");
  EXPECT_EQ(listings[1].group, "billing-retry");
  const std::vector<DeleteIdleConsumerCall> deleted = Calls<DeleteIdleConsumerCall>();
  ASSERT_EQ(deleted.size(), 2u);
  EXPECT_EQ(deleted[0].stream, "orders");
  EXPECT_EQ(deleted[0].group, "billing");
  EXPECT_EQ(deleted[0].consumer, "billing-gone");
  EXPECT_EQ(deleted[1].stream, "orders.billing.retry");
  EXPECT_EQ(deleted[1].group, "billing-retry");
  EXPECT_EQ(deleted[1].consumer, "billing-gone");
  EXPECT_EQ(Stats().consumers_removed, 2u);
  for (int sweep = 2; sweep <= 6; ++sweep) Sweep(kT0 + (sweep - 1) * absl::Seconds(5), fast_);
  EXPECT_EQ(ConsumerListings(), 2u);
  Sweep(kT0 + 6 * absl::Seconds(5), fast_);  // the seventh
  EXPECT_EQ(ConsumerListings(), 4u);
}

TEST_F(SweeperTest, TheConsumerExpiryIsAtLeastTenLeases) {
  const SpecPtr slow = MakeSpec(LeaseMs(120'000));  // 10 leases = 20 min
  Answer<ConsumersCall>([](const ConsumersCall&) -> Or<std::vector<ConsumerInfo>> {
    return std::vector<ConsumerInfo>{{"billing-a", 0, 20 * 60 * 1000 - 1},
                                     {"billing-b", 0, 20 * 60 * 1000}};
  });
  Sweep(kT0, slow);
  const std::vector<DeleteIdleConsumerCall> deleted = Calls<DeleteIdleConsumerCall>();
  ASSERT_EQ(deleted.size(), 2u);
  EXPECT_EQ(deleted[0].consumer, "billing-b");
  EXPECT_EQ(deleted[1].consumer, "billing-b");
  EXPECT_EQ(Stats().consumers_removed, 0u);  // the script found something pending
}

TEST_F(SweeperTest, TheRetryStreamIsTrimmedOnlyWhenWanted) {
  Answer<TrimRetryCall>([](const TrimRetryCall&) -> Or<TrimRetryResult> {
    return TrimRetryResult{0, "", false};
  });
  Sweep(kT0);  // a new handler trims once
  std::vector<TrimRetryCall> trims = Calls<TrimRetryCall>();
  ASSERT_EQ(trims.size(), 1u);
  EXPECT_EQ(trims[0].retry_stream, "orders.billing.retry");
  EXPECT_EQ(trims[0].limit, 10000u);
  EXPECT_EQ(trims[0].retention, absl::Minutes(1));
  Sweep(kT0 + absl::Seconds(30));  // nothing settled since: no trim
  EXPECT_EQ(Calls<TrimRetryCall>().size(), 1u);
  Run([&] { sweeper_->WantTrim(ref_); });
  Sweep(kT0 + absl::Seconds(60));
  EXPECT_EQ(Calls<TrimRetryCall>().size(), 2u);
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.retry_trims, 2u);
  EXPECT_EQ(s.retry_trimmed, 0u);
}

TEST_F(SweeperTest, ATrimThatRemovedEntriesOrLeftMoreTrimsAgainNextSweep) {
  std::vector<TrimRetryResult> results = {{500, "40-0", false}, {0, "", true}, {0, "", false}};
  Answer<TrimRetryCall>([results](const TrimRetryCall&) mutable -> Or<TrimRetryResult> {
    TrimRetryResult r = results.front();
    if (results.size() > 1) results.erase(results.begin());
    return r;
  });
  for (int i = 0; i < 4; ++i) Sweep(kT0 + i * absl::Seconds(30));
  EXPECT_EQ(Calls<TrimRetryCall>().size(), 3u);  // removed 500, more, then done
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.retry_trims, 3u);
  EXPECT_EQ(s.retry_trimmed, 500u);
}

TEST_F(SweeperTest, AFailedTrimIsWantedAgain) {
  Answer<TrimRetryCall>(
      [](const TrimRetryCall&) -> Or<TrimRetryResult> { return absl::UnavailableError("down"); });
  Sweep(kT0);
  EXPECT_EQ(Stats().redis_errors, 1u);
  Sweep(kT0 + absl::Seconds(30));
  EXPECT_EQ(Calls<TrimRetryCall>().size(), 2u);
}

TEST_F(SweeperTest, AForgottenHandlerIsNotSwept) {
  Run([&] { sweeper_->Forget(ref_); });
  Sweep(kT0);
  EXPECT_THAT(Calls<PendingConsumersCall>(), IsEmpty());
  EXPECT_EQ(Stats().sweeps, 0u);
}

}  // namespace
}  // namespace redrive::testing
