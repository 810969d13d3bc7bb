// PausePoller (daemon/engine/pause_poller.h): {redrive}:paused read every
// pause_poll (one read at a time), every known handler reported; Check of
// one handler; a local Set wins over a read sent before it.
#include "daemon/engine/pause_poller.h"

#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

const std::string kBilling = EngineHandlerKey("orders", "billing");
const std::string kShipping = EngineHandlerKey("orders", "shipping");

class PausePollerTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.pause_poll = absl::Seconds(1);
    loop_.RunSync([this] {
      poller_ = std::make_unique<PausePoller>(
          ctx_, [this](const std::string& key, bool paused) { changes_.emplace_back(key, paused); },
          [] {
            return std::vector<std::string>{kBilling, kShipping};
          });
    });
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] { poller_.reset(); });
  }
  // The {redrive}:paused hash as the next read finds it.
  void PausedInRedis(HashPairs fields) {
    Answer<HashFieldsCall>([fields](const HashFieldsCall&) { return fields; });
  }
  std::vector<std::pair<std::string, bool>> Changes() {
    std::vector<std::pair<std::string, bool>> out;
    loop_.RunSync([&] {
      out = changes_;
      changes_.clear();
    });
    return out;
  }
  bool Paused(const std::string& key) {
    bool p = false;
    loop_.RunSync([&] { p = poller_->paused(key); });
    return p;
  }

  std::unique_ptr<PausePoller> poller_;
  std::vector<std::pair<std::string, bool>> changes_;  // loop thread
};

TEST(EngineHandlerKeyTest, JoinsChannelAndHandlerWithANul) {
  EXPECT_EQ(EngineHandlerKey("orders", "billing"), std::string("orders\0billing", 14));
}

TEST_F(PausePollerTest, APollReadsThePausedHashAndReportsEveryKnownHandler) {
  PausedInRedis({{RegistryField("orders", "billing"), "1700000000000"},
                 {RegistryField("payments", "billing"), "1700000000000"}});
  Run([&] { poller_->MaybePoll(kT0); });
  ASSERT_EQ(Calls<HashFieldsCall>().size(), 1u);
  EXPECT_EQ(Calls<HashFieldsCall>()[0].key, "{redrive}:paused");
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, true), Pair(kShipping, false)));
  EXPECT_TRUE(Paused(kBilling));
  EXPECT_TRUE(Paused(EngineHandlerKey("payments", "billing")));
  EXPECT_FALSE(Paused(kShipping));
}

TEST_F(PausePollerTest, APollReplacesWhatTheLastOneFound) {
  PausedInRedis({{RegistryField("orders", "billing"), "1"}});
  Run([&] { poller_->MaybePoll(kT0); });
  PausedInRedis({{RegistryField("orders", "shipping"), "1"}});
  Run([&] { poller_->MaybePoll(kT0 + absl::Seconds(1)); });
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, true), Pair(kShipping, false),
                                     Pair(kBilling, false), Pair(kShipping, true)));
  EXPECT_FALSE(Paused(kBilling));
  EXPECT_TRUE(Paused(kShipping));
}

TEST_F(PausePollerTest, FieldsWithoutASpaceAreIgnored) {
  PausedInRedis({{"orders", "1"}, {RegistryField("orders", "shipping"), "1"}});
  Run([&] { poller_->MaybePoll(kT0); });
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, false), Pair(kShipping, true)));
}

TEST_F(PausePollerTest, PollsOncePerPollInterval) {
  Run([&] { poller_->MaybePoll(kT0); });
  Run([&] { poller_->MaybePoll(kT0 + absl::Milliseconds(999)); });
  EXPECT_EQ(Calls<HashFieldsCall>().size(), 1u);
  Run([&] { poller_->MaybePoll(kT0 + absl::Seconds(1)); });
  EXPECT_EQ(Calls<HashFieldsCall>().size(), 2u);
  Run([&] { poller_->MaybePoll(kT0 + absl::Milliseconds(1999)); });
  EXPECT_EQ(Calls<HashFieldsCall>().size(), 2u);
}

TEST_F(PausePollerTest, NoSecondReadWhileOneIsOut) {
  Run([&] {
    poller_->MaybePoll(kT0);
    poller_->MaybePoll(kT0 + absl::Seconds(5));  // before the first reply
  });
  EXPECT_EQ(Calls<HashFieldsCall>().size(), 1u);
  Run([&] { poller_->MaybePoll(kT0 + absl::Seconds(6)); });
  EXPECT_EQ(Calls<HashFieldsCall>().size(), 2u);
}

TEST_F(PausePollerTest, AFailedPollChangesNothingAndTheNextIntervalPollsAgain) {
  Run([&] { poller_->Set(kBilling, true); });
  Changes();
  Answer<HashFieldsCall>([](const HashFieldsCall&) { return absl::UnavailableError("down"); });
  Run([&] { poller_->MaybePoll(kT0); });
  EXPECT_THAT(Changes(), IsEmpty());
  EXPECT_TRUE(Paused(kBilling));
  PausedInRedis({});
  Run([&] { poller_->MaybePoll(kT0 + absl::Seconds(1)); });
  EXPECT_EQ(Calls<HashFieldsCall>().size(), 2u);
  EXPECT_FALSE(Paused(kBilling));
}

TEST_F(PausePollerTest, ALocalSetWinsOverAPollReplySentBeforeIt) {
  PausedInRedis({{RegistryField("orders", "billing"), "1"}});  // the old state
  Run([&] {
    poller_->MaybePoll(kT0);
    poller_->Set(kBilling, false);  // resumed here before the reply
  });
  EXPECT_FALSE(Paused(kBilling));
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, false)));
  // A read sent after the Set counts again.
  Run([&] { poller_->MaybePoll(kT0 + absl::Seconds(1)); });
  EXPECT_TRUE(Paused(kBilling));
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, true), Pair(kShipping, false)));
}

TEST_F(PausePollerTest, SetPausesAndResumesAndReportsEachTime) {
  Run([&] {
    poller_->Set(kShipping, true);
    poller_->Set(kShipping, true);
  });
  EXPECT_TRUE(Paused(kShipping));
  Run([&] { poller_->Set(kShipping, false); });
  EXPECT_FALSE(Paused(kShipping));
  EXPECT_THAT(Changes(),
              ElementsAre(Pair(kShipping, true), Pair(kShipping, true), Pair(kShipping, false)));
  EXPECT_THAT(Calls<HashFieldsCall>(), IsEmpty());
  EXPECT_THAT(Calls<HashSetCall>(), IsEmpty());
}

TEST_F(PausePollerTest, CheckReadsTheHandlersFieldOnly) {
  Answer<HashHasCall>([](const HashHasCall& c) { return c.field == "orders billing"; });
  Run([&] {
    poller_->Check(kBilling, "orders", "billing");
    poller_->Check(kShipping, "orders", "shipping");
  });
  const std::vector<HashHasCall> calls = Calls<HashHasCall>();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].key, "{redrive}:paused");
  EXPECT_EQ(calls[0].field, RegistryField("orders", "billing"));
  EXPECT_EQ(calls[1].field, RegistryField("orders", "shipping"));
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, true), Pair(kShipping, false)));
  EXPECT_TRUE(Paused(kBilling));
  EXPECT_FALSE(Paused(kShipping));
  EXPECT_THAT(Calls<HashFieldsCall>(), IsEmpty());
}

TEST_F(PausePollerTest, ALocalSetWinsOverACheckReplySentBeforeIt) {
  Answer<HashHasCall>([](const HashHasCall&) { return true; });
  Run([&] {
    poller_->Check(kBilling, "orders", "billing");
    poller_->Set(kBilling, false);
  });
  EXPECT_FALSE(Paused(kBilling));
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, false)));
}

TEST_F(PausePollerTest, ACheckThatFindsTheHandlerResumedClearsAnOlderPause) {
  // Paused when last polled, resumed by another daemon since: the Check at
  // registration reports it running, and paused() agrees.
  PausedInRedis({{RegistryField("orders", "billing"), "1"}});
  Run([&] { poller_->MaybePoll(kT0); });
  Changes();
  Answer<HashHasCall>([](const HashHasCall&) { return false; });
  Run([&] { poller_->Check(kBilling, "orders", "billing"); });
  EXPECT_THAT(Changes(), ElementsAre(Pair(kBilling, false)));
  EXPECT_FALSE(Paused(kBilling));
}

TEST_F(PausePollerTest, AFailedCheckReportsNothing) {
  Answer<HashHasCall>([](const HashHasCall&) { return absl::UnavailableError("down"); });
  Run([&] { poller_->Check(kBilling, "orders", "billing"); });
  EXPECT_THAT(Changes(), IsEmpty());
  EXPECT_FALSE(Paused(kBilling));
}

}  // namespace
}  // namespace redrive::testing
