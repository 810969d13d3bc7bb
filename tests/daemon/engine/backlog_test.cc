// Backlog (daemon/engine/backlog.h): entries kept whole (auto-ack) or by id;
// ids fetched again with one XCLAIM (min-idle 0) per source, put back at the
// front in their order when the fetch fails; their idle time reset at most
// every lease / 3; the ids a sweep must skip. TouchEntries: one XCLAIM-style
// touch per call, counted as released with `release`, a failure counted as a
// redis error.
#include "daemon/engine/backlog.h"

#include <string>
#include <vector>

#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// One reply a Refetch passed on.
struct Reply {
  uint8_t source;
  Ids asked;
  absl::Status status;
  Ids fetched;
};

Ids IdsOf(const std::vector<Entry>& entries) {
  Ids out;
  for (const Entry& e : entries) out.push_back(e.id);
  return out;
}

class BacklogTest : public EngineTest {
 protected:
  void SetUp() override {
    // XCLAIM returns every id asked for, with its fields.
    Answer<ClaimCall>([](const ClaimCall& c) -> ClaimCall::Reply {
      Entries out;
      for (const std::string& id : c.ids) out.push_back(DataEntry(id, "x"));
      return out;
    });
  }
  // Parks ids `ids` of `source` by id.
  void ParkIds(uint8_t source, const Ids& ids) {
    Run([&] {
      for (const std::string& id : ids) backlog_.Park(DataEntry(id, "x"), source, false);
    });
  }
  void Refetch(uint64_t n) {
    Run([&] {
      backlog_.Refetch(ctx_, *spec_, n,
                       [this](uint8_t source, std::vector<Entry> asked,
                              absl::StatusOr<std::vector<StreamEntry>> fetched) {
                         Ids ids;
                         if (fetched.ok()) {
                           for (const StreamEntry& e : *fetched) ids.push_back(e.id);
                         }
                         replies_.push_back(Reply{source, IdsOf(asked), fetched.status(), ids});
                         asked_.push_back(std::move(asked));
                       });
    });
  }
  std::vector<Entry> TakeIds() {
    std::vector<Entry> out;
    loop_.RunSync([&] { out = backlog_.TakeIds(); });
    return out;
  }
  uint64_t Taken() {
    uint64_t n = 0;
    loop_.RunSync([&] { n = backlog_.taken(); });
    return n;
  }
  size_t Fetching() {
    size_t n = 0;
    loop_.RunSync([&] { n = backlog_.fetching(); });
    return n;
  }
  void MaybeTouch(absl::Time now) {
    SetNow(now);
    Run([&] { backlog_.MaybeTouch(ctx_, *spec_, now); });
  }
  absl::flat_hash_set<std::string> Held(uint8_t source) {
    absl::flat_hash_set<std::string> held;
    loop_.RunSync([&] { backlog_.AddHeld(source, held); });
    return held;
  }

  // Loop thread.
  Backlog backlog_;
  std::vector<Reply> replies_;
  std::vector<std::vector<Entry>> asked_;  // as each reply passed them on
};

TEST_F(BacklogTest, AWholeEntryIsKeptWithItsFieldsAndPoppedInOrder) {
  Run([&] {
    backlog_.Park(DataEntry("1-0", "one"), kMain, /*whole=*/true);
    backlog_.Park(DataEntry("2-0", "two"), kMain, /*whole=*/true);
    EXPECT_TRUE(backlog_.has_whole());
    EXPECT_FALSE(backlog_.has_ids());
    EXPECT_EQ(backlog_.taken(), 2u);
    const StreamEntry first = backlog_.PopWhole();
    EXPECT_EQ(first.id, "1-0");
    EXPECT_EQ(first.fields, (FieldList{{"__data__", "one"}}));
    EXPECT_EQ(backlog_.PopWhole().id, "2-0");
    EXPECT_FALSE(backlog_.has_whole());
    EXPECT_EQ(backlog_.taken(), 0u);
  });
}

TEST_F(BacklogTest, AnEntryParkedByIdKeepsItsIdAndSourceAsAFirstAttempt) {
  ParkIds(kRetry, {"1-0"});
  ParkIds(kMain, {"2-0"});
  loop_.RunSync([&] {
    EXPECT_TRUE(backlog_.has_ids());
    EXPECT_FALSE(backlog_.has_whole());
  });
  EXPECT_EQ(Taken(), 2u);
  const std::vector<Entry> ids = TakeIds();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].id, "1-0");
  EXPECT_EQ(ids[0].attempt, 1u);
  EXPECT_EQ(ids[0].source, kRetry);
  EXPECT_EQ(ids[1].id, "2-0");
  EXPECT_EQ(ids[1].source, kMain);
  EXPECT_EQ(Taken(), 0u);
}

TEST_F(BacklogTest, TakenCountsIdsWholeEntriesAndIdsBeingFetched) {
  Run([&] { ops_.Hold<ClaimCall>(); });
  ParkIds(kMain, {"1-0", "2-0", "3-0"});
  Run([&] { backlog_.Park(DataEntry("4-0", "x"), kMain, /*whole=*/true); });
  Refetch(2);
  EXPECT_EQ(Fetching(), 2u);
  EXPECT_EQ(Taken(), 4u);  // 1 id + 1 whole + 2 being fetched
}

TEST_F(BacklogTest, RefetchClaimsTheFirstNIdsWithOneClaimPerSourceAtMinIdleZero) {
  ParkIds(kMain, {"1-0"});
  ParkIds(kRetry, {"2-0"});
  ParkIds(kMain, {"3-0", "4-0"});
  ParkIds(kRetry, {"5-0"});
  Refetch(4);
  const std::vector<ClaimCall> claims = Calls<ClaimCall>();
  ASSERT_EQ(claims.size(), 2u);
  EXPECT_EQ(claims[0].g.stream, "orders");
  EXPECT_EQ(claims[0].g.group, "billing");
  EXPECT_EQ(claims[0].g.consumer, "billing-i1");
  EXPECT_EQ(claims[0].min_idle, absl::ZeroDuration());
  EXPECT_EQ(claims[0].ids, (Ids{"1-0", "3-0", "4-0"}));
  EXPECT_EQ(claims[1].g.stream, "orders.billing.retry");
  EXPECT_EQ(claims[1].g.group, "billing-retry");
  EXPECT_EQ(claims[1].g.consumer, "billing-i1");
  EXPECT_EQ(claims[1].min_idle, absl::ZeroDuration());
  EXPECT_EQ(claims[1].ids, (Ids{"2-0"}));
  const std::vector<Entry> left = TakeIds();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, "5-0");
}

TEST_F(BacklogTest, RefetchPassesEachReplyOnWithTheEntriesAskedFor) {
  ParkIds(kRetry, {"2-0"});
  ParkIds(kMain, {"1-0", "3-0"});
  Refetch(10);  // more than are kept: all of them
  std::vector<Reply> replies;
  std::vector<std::vector<Entry>> asked;
  loop_.RunSync([&] {
    replies = replies_;
    asked = asked_;
  });
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].source, kMain);
  EXPECT_EQ(replies[0].asked, (Ids{"1-0", "3-0"}));
  EXPECT_TRUE(replies[0].status.ok());
  EXPECT_EQ(replies[0].fetched, (Ids{"1-0", "3-0"}));
  EXPECT_EQ(replies[1].source, kRetry);
  EXPECT_EQ(replies[1].asked, (Ids{"2-0"}));
  EXPECT_EQ(replies[1].fetched, (Ids{"2-0"}));
  ASSERT_EQ(asked.size(), 2u);
  ASSERT_EQ(asked[1].size(), 1u);
  EXPECT_EQ(asked[1][0].source, kRetry);
  EXPECT_EQ(asked[1][0].attempt, 1u);
  EXPECT_EQ(Fetching(), 3u);  // until Fetched
}

TEST_F(BacklogTest, RefetchPassesAFailedClaimOnWithTheEntriesAskedFor) {
  Answer<ClaimCall>(
      [](const ClaimCall&) -> ClaimCall::Reply { return absl::UnavailableError("down"); });
  ParkIds(kMain, {"1-0", "2-0"});
  Refetch(2);
  std::vector<Reply> replies;
  loop_.RunSync([&] { replies = replies_; });
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].source, kMain);
  EXPECT_EQ(replies[0].asked, (Ids{"1-0", "2-0"}));
  EXPECT_EQ(replies[0].status, absl::UnavailableError("down"));
  EXPECT_EQ(Fetching(), 2u);  // the Backlog learns of it through Fetched
  EXPECT_EQ(Stats().redis_errors, 0u);
}

TEST_F(BacklogTest, RefetchOfOneSourceOrOfNothingClaimsOnlyWhatItTakes) {
  Refetch(5);  // nothing kept
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  ParkIds(kRetry, {"1-0", "2-0"});
  Refetch(0);
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  Refetch(1);
  const std::vector<ClaimCall> claims = Calls<ClaimCall>();
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].g.stream, "orders.billing.retry");
  EXPECT_EQ(claims[0].ids, (Ids{"1-0"}));
}

TEST_F(BacklogTest, AFetchThatSucceededIsNoLongerBeingFetched) {
  ParkIds(kMain, {"1-0", "2-0", "3-0"});
  Refetch(2);
  Run([&] {
    ASSERT_EQ(asked_.size(), 1u);
    backlog_.Fetched(asked_[0], /*ok=*/true);
    EXPECT_EQ(IdsOf(asked_[0]), (Ids{"1-0", "2-0"}));  // left to the caller
  });
  EXPECT_EQ(Fetching(), 0u);
  EXPECT_EQ(Taken(), 1u);
  EXPECT_EQ(IdsOf(TakeIds()), (Ids{"3-0"}));
}

TEST_F(BacklogTest, AFetchThatFailedPutsItsIdsBackAtTheFrontInTheirOrder) {
  ParkIds(kMain, {"1-0"});
  ParkIds(kRetry, {"2-0"});
  ParkIds(kMain, {"3-0", "4-0"});
  Refetch(3);  // main 1-0, 3-0; retry 2-0
  Run([&] {
    ASSERT_EQ(asked_.size(), 2u);
    backlog_.Fetched(asked_[0], /*ok=*/false);
    EXPECT_THAT(asked_[0], IsEmpty());  // moved back into the backlog
  });
  EXPECT_EQ(Fetching(), 1u);  // 2-0 still is
  const std::vector<Entry> ids = TakeIds();
  EXPECT_EQ(IdsOf(ids), (Ids{"1-0", "3-0", "4-0"}));
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0].source, kMain);
  EXPECT_EQ(ids[1].source, kMain);
}

TEST_F(BacklogTest, MaybeTouchResetsTheKeptIdsOncePerSourceAtMostEveryThirdOfTheLease) {
  ParkIds(kMain, {"1-0"});
  ParkIds(kRetry, {"2-0"});
  ParkIds(kMain, {"3-0"});
  MaybeTouch(kT0);
  std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 2u);
  EXPECT_EQ(touches[0].g.stream, "orders");
  EXPECT_EQ(touches[0].g.group, "billing");
  EXPECT_EQ(touches[0].g.consumer, "billing-i1");
  EXPECT_EQ(touches[0].ids, (Ids{"1-0", "3-0"}));
  EXPECT_FALSE(touches[0].release);
  EXPECT_EQ(touches[1].g.stream, "orders.billing.retry");
  EXPECT_EQ(touches[1].g.group, "billing-retry");
  EXPECT_EQ(touches[1].ids, (Ids{"2-0"}));
  EXPECT_FALSE(touches[1].release);
  MaybeTouch(kT0 + absl::Seconds(10) - absl::Milliseconds(1));  // the lease is 30 s
  EXPECT_EQ(Calls<TouchCall>().size(), 2u);
  MaybeTouch(kT0 + absl::Seconds(10));
  EXPECT_EQ(Calls<TouchCall>().size(), 4u);
  EXPECT_EQ(Stats().released, 0u);
}

TEST_F(BacklogTest, MaybeTouchSkipsIdsBeingFetchedAndWholeEntries) {
  Run([&] { ops_.Hold<ClaimCall>(); });
  ParkIds(kMain, {"1-0", "2-0"});
  Run([&] { backlog_.Park(DataEntry("3-0", "x"), kMain, /*whole=*/true); });
  Refetch(1);
  MaybeTouch(kT0);
  const std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 1u);
  EXPECT_EQ(touches[0].ids, (Ids{"2-0"}));
}

TEST_F(BacklogTest, MaybeTouchWithNoIdsTouchesNothingAndDoesNotDelayTheNextTouch) {
  Run([&] { backlog_.Park(DataEntry("1-0", "x"), kMain, /*whole=*/true); });
  MaybeTouch(kT0);
  EXPECT_THAT(Calls<TouchCall>(), IsEmpty());
  ParkIds(kRetry, {"2-0"});
  MaybeTouch(kT0 + absl::Milliseconds(1));
  const std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 1u);  // the retry source only
  EXPECT_EQ(touches[0].g.stream, "orders.billing.retry");
  EXPECT_EQ(touches[0].ids, (Ids{"2-0"}));
}

TEST_F(BacklogTest, TakeIdsLeavesTheWholeEntries) {
  ParkIds(kMain, {"1-0", "2-0"});
  Run([&] { backlog_.Park(DataEntry("3-0", "x"), kMain, /*whole=*/true); });
  EXPECT_EQ(IdsOf(TakeIds()), (Ids{"1-0", "2-0"}));
  EXPECT_THAT(TakeIds(), IsEmpty());
  loop_.RunSync([&] {
    EXPECT_FALSE(backlog_.has_ids());
    EXPECT_TRUE(backlog_.has_whole());
  });
  EXPECT_EQ(Taken(), 1u);
}

TEST_F(BacklogTest, AddHeldAddsTheKeptIdsOfTheSourceAndEveryIdBeingFetched) {
  Run([&] { ops_.Hold<ClaimCall>(); });
  ParkIds(kMain, {"1-0"});
  ParkIds(kRetry, {"2-0"});
  ParkIds(kMain, {"3-0"});
  ParkIds(kRetry, {"4-0"});
  Run([&] { backlog_.Park(DataEntry("5-0", "x"), kMain, /*whole=*/true); });
  Refetch(2);  // 1-0 (main) and 2-0 (retry) are being fetched
  // Ids being fetched are held for either source (their source is not kept
  // with them: a collision only makes a sweep skip an entry once).
  EXPECT_THAT(Held(kMain), UnorderedElementsAre("1-0", "2-0", "3-0"));
  EXPECT_THAT(Held(kRetry), UnorderedElementsAre("1-0", "2-0", "4-0"));
}

// ---------------------------------------------------------------- TouchEntries

TEST_F(BacklogTest, TouchEntriesResetsTheIdleTimeOfTheIdsOfASource) {
  Run([&] { TouchEntries(ctx_, *spec_, kRetry, {"1-0", "2-0"}, /*release=*/false); });
  const std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 1u);
  EXPECT_EQ(touches[0].g.stream, "orders.billing.retry");
  EXPECT_EQ(touches[0].g.group, "billing-retry");
  EXPECT_EQ(touches[0].g.consumer, "billing-i1");
  EXPECT_EQ(touches[0].ids, (Ids{"1-0", "2-0"}));
  EXPECT_FALSE(touches[0].release);
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.released, 0u);
  EXPECT_EQ(s.redis_errors, 0u);
}

TEST_F(BacklogTest, TouchEntriesWithReleaseCountsTheIdsReleased) {
  Run([&] { TouchEntries(ctx_, *spec_, kMain, {"1-0", "2-0", "3-0"}, /*release=*/true); });
  const std::vector<TouchCall> touches = Calls<TouchCall>();
  ASSERT_EQ(touches.size(), 1u);
  EXPECT_EQ(touches[0].g.stream, "orders");
  EXPECT_EQ(touches[0].ids, (Ids{"1-0", "2-0", "3-0"}));
  EXPECT_TRUE(touches[0].release);
  EXPECT_EQ(Stats().released, 3u);
}

TEST_F(BacklogTest, TouchEntriesOfNoIdsSendsNothing) {
  Run([&] { TouchEntries(ctx_, *spec_, kMain, {}, /*release=*/true); });
  EXPECT_THAT(Calls<TouchCall>(), IsEmpty());
  EXPECT_EQ(Stats().released, 0u);
}

TEST_F(BacklogTest, AFailedTouchCountsARedisError) {
  Answer<TouchCall>(
      [](const TouchCall&) -> TouchCall::Reply { return absl::UnavailableError("down"); });
  Run([&] { TouchEntries(ctx_, *spec_, kMain, {"1-0"}, /*release=*/true); });
  Run([&] { TouchEntries(ctx_, *spec_, kRetry, {"2-0"}, /*release=*/false); });
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.redis_errors, 2u);
  EXPECT_EQ(s.released, 1u);  // counted when sent
}

}  // namespace
}  // namespace redrive::testing
