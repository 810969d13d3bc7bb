// LeaseTable (daemon/engine/lease_table.h): deliveries in flight, settled
// outcomes remembered for idempotent verbs within a memory bound, expiry and
// hand-back in delivery order.
#include "daemon/engine/lease_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace redrive {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;
using Outcome = LeaseTable::Outcome;

const absl::Time kT0 = absl::FromUnixMillis(1'700'000'000'000);

Entry E(const std::string& id, uint32_t attempt = 1, uint8_t source = kMain) {
  return Entry{id, attempt, source};
}

TEST(LeaseTableTest, FindReturnsTheFlightAsAdded) {
  LeaseTable t(8);
  t.Add(7, E("3-0", 2, kRetry), kT0 + absl::Seconds(30), kT0);
  LeaseTable::Flight* f = t.Find(7);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->entry.id, "3-0");
  EXPECT_EQ(f->entry.attempt, 2u);
  EXPECT_EQ(f->entry.source, kRetry);
  EXPECT_EQ(f->deadline, kT0 + absl::Seconds(30));
  EXPECT_EQ(f->idle_since, kT0);
  EXPECT_EQ(t.Find(8), nullptr);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_FALSE(t.empty());
}

TEST(LeaseTableTest, SettleRemovesTheFlightAndRemembersTheOutcome) {
  LeaseTable t(8);
  t.Add(1, E("1-0"), kT0, kT0);
  t.Add(2, E("2-0"), kT0, kT0);
  std::optional<LeaseTable::Flight> f = t.Settle(1, Outcome::kNacked);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->entry.id, "1-0");
  EXPECT_EQ(t.Find(1), nullptr);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_THAT(t.SettledAs(1), Optional(Outcome::kNacked));
  EXPECT_EQ(t.SettledAs(2), std::nullopt);  // still in flight
}

TEST(LeaseTableTest, ASecondSettleFindsNothingAndKeepsTheFirstOutcome) {
  LeaseTable t(8);
  t.Add(1, E("1-0"), kT0, kT0);
  ASSERT_TRUE(t.Settle(1, Outcome::kAcked).has_value());
  EXPECT_EQ(t.Settle(1, Outcome::kTerminated), std::nullopt);
  EXPECT_THAT(t.SettledAs(1), Optional(Outcome::kAcked));
}

TEST(LeaseTableTest, SettlingAnUnknownDeliveryChangesNothing) {
  LeaseTable t(8);
  t.Add(1, E("1-0"), kT0, kT0);
  EXPECT_EQ(t.Settle(9, Outcome::kAcked), std::nullopt);
  EXPECT_EQ(t.SettledAs(9), std::nullopt);
  EXPECT_EQ(t.size(), 1u);
}

TEST(LeaseTableTest, RemembersTheLastSettledMemoryOutcomesOnly) {
  LeaseTable t(2);
  for (uint64_t id = 1; id <= 3; ++id) t.Add(id, E(std::to_string(id) + "-0"), kT0, kT0);
  t.Settle(1, Outcome::kAcked);
  t.Settle(2, Outcome::kExpired);
  EXPECT_THAT(t.SettledAs(1), Optional(Outcome::kAcked));
  t.Settle(3, Outcome::kMoved);  // the third: the oldest is forgotten
  EXPECT_EQ(t.SettledAs(1), std::nullopt);
  EXPECT_THAT(t.SettledAs(2), Optional(Outcome::kExpired));
  EXPECT_THAT(t.SettledAs(3), Optional(Outcome::kMoved));
}

TEST(LeaseTableTest, ExpiredListsDeadlinesAtOrBeforeNowInDeliveryOrder) {
  LeaseTable t(8);
  t.Add(9, E("9-0"), kT0 - absl::Seconds(1), kT0);
  t.Add(2, E("2-0"), kT0, kT0);  // exactly now: expired
  t.Add(5, E("5-0"), kT0 + absl::Milliseconds(1), kT0);
  t.Add(4, E("4-0"), kT0 - absl::Seconds(5), kT0);
  EXPECT_THAT(t.Expired(kT0), ElementsAre(2, 4, 9));
  EXPECT_THAT(t.Expired(kT0 - absl::Seconds(10)), IsEmpty());
  EXPECT_THAT(t.Expired(kT0 + absl::Milliseconds(1)), ElementsAre(2, 4, 5, 9));
  EXPECT_EQ(t.size(), 4u);  // Expired only lists
}

TEST(LeaseTableTest, TakeAllReturnsEveryFlightInDeliveryOrderWithoutOutcomes) {
  LeaseTable t(8);
  t.Add(30, E("30-0", 1, kRetry), kT0, kT0);
  t.Add(10, E("10-0", 3), kT0, kT0);
  t.Add(20, E("20-0"), kT0, kT0);
  t.Settle(20, Outcome::kAcked);
  std::vector<std::pair<uint64_t, Entry>> all = t.TakeAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 10u);
  EXPECT_EQ(all[0].second.id, "10-0");
  EXPECT_EQ(all[0].second.attempt, 3u);
  EXPECT_EQ(all[1].first, 30u);
  EXPECT_EQ(all[1].second.id, "30-0");
  EXPECT_EQ(all[1].second.source, kRetry);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.SettledAs(10), std::nullopt);
  EXPECT_EQ(t.SettledAs(30), std::nullopt);
  EXPECT_THAT(t.SettledAs(20), Optional(Outcome::kAcked));
  EXPECT_EQ(t.Settle(10, Outcome::kAcked), std::nullopt);
}

}  // namespace
}  // namespace redrive
