// Presence (daemon/engine/presence.h): the Registered record and heartbeat
// of each handler in {redrive}:handlers, heartbeats renewed every
// presence_interval, the heartbeat removed when the handler leaves.
#include "daemon/engine/presence.h"

#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

class PresenceTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.presence_interval = absl::Seconds(2);
    loop_.RunSync([this] { presence_ = std::make_unique<Presence>(ctx_); });
    v1::Register other = BaseRegister();
    other.set_handler_id("shipping");
    shipping_ = MakeSpec(other);
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] { presence_.reset(); });
  }

  std::unique_ptr<Presence> presence_;
  SpecPtr shipping_;
};

TEST_F(PresenceTest, RecordWritesTheRegisteredRecordAndAHeartbeatThenRunsDone) {
  int done = 0;
  bool written_before_done = false;
  Run([&] {
    presence_->Record(*spec_, [&] {
      written_before_done = ops_.calls<HashSetCall>().size() == 1;
      ++done;
    });
    EXPECT_EQ(done, 0);  // not before the reply
  });
  EXPECT_EQ(done, 1);
  EXPECT_TRUE(written_before_done);
  const std::vector<HashSetCall> calls = Calls<HashSetCall>();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].key, "{redrive}:handlers");
  EXPECT_THAT(
      calls[0].fields,
      ElementsAre(Pair("orders billing", MakeRegistered(*spec_, kInstance).SerializeAsString()),
                  Pair("orders billing i1", "1700000000000")));
}

TEST_F(PresenceTest, RecordRunsDoneWhenTheWriteFails) {
  Answer<HashSetCall>([](const HashSetCall&) { return absl::UnavailableError("down"); });
  int done = 0;
  Run([&] { presence_->Record(*spec_, [&] { ++done; }); });
  EXPECT_EQ(done, 1);
}

TEST_F(PresenceTest, HeartbeatsAreRenewedEveryPresenceInterval) {
  const std::vector<const SubscriptionSpec*> specs = {spec_.get(), shipping_.get()};
  Run([&] { presence_->MaybeBeat(kT0, specs); });
  Run([&] { presence_->MaybeBeat(kT0 + absl::Milliseconds(1999), specs); });
  ASSERT_EQ(Calls<HashSetCall>().size(), 1u);
  Run([&] { presence_->MaybeBeat(kT0 + absl::Seconds(2), specs); });
  const std::vector<HashSetCall> calls = Calls<HashSetCall>();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].key, "{redrive}:handlers");
  EXPECT_THAT(calls[0].fields, ElementsAre(Pair("orders billing i1", "1700000000000"),
                                           Pair("orders shipping i1", "1700000000000")));
  EXPECT_EQ(calls[1].key, "{redrive}:handlers");
  EXPECT_THAT(calls[1].fields, ElementsAre(Pair("orders billing i1", "1700000002000"),
                                           Pair("orders shipping i1", "1700000002000")));
}

TEST_F(PresenceTest, NoHandlersNoWriteButTheIntervalStillRuns) {
  Run([&] { presence_->MaybeBeat(kT0, {}); });
  EXPECT_THAT(Calls<HashSetCall>(), IsEmpty());
  Run([&] { presence_->MaybeBeat(kT0 + absl::Seconds(1), {spec_.get()}); });
  EXPECT_THAT(Calls<HashSetCall>(), IsEmpty());
  Run([&] { presence_->MaybeBeat(kT0 + absl::Seconds(2), {spec_.get()}); });
  ASSERT_EQ(Calls<HashSetCall>().size(), 1u);
  EXPECT_THAT(Calls<HashSetCall>()[0].fields,
              ElementsAre(Pair("orders billing i1", "1700000002000")));
}

TEST_F(PresenceTest, RemoveDeletesTheHeartbeatOnly) {
  Run([&] { presence_->Remove(*spec_); });
  const std::vector<HashDeleteCall> calls = Calls<HashDeleteCall>();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].key, "{redrive}:handlers");
  EXPECT_EQ(calls[0].field, "orders billing i1");
  EXPECT_THAT(Calls<HashSetCall>(), IsEmpty());
}

}  // namespace
}  // namespace redrive::testing
