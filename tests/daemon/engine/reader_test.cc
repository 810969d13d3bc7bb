// Reader (daemon/engine/reader.h): group reads bounded by the handler's free
// slots and read_batch, split between the main and the retry stream (the odd
// slot alternating), only while a source may have entries; NOGROUP on a
// retry stream never read stops it, otherwise the group is recreated at the
// last id read ("$" if none); a failed read waits error_backoff; entries
// read for a handler that left meanwhile are orphaned.
#include "daemon/engine/reader.h"

#include "daemon/redis/stream_watch.h"
#include "daemon/stream_notifier.h"
#include "tests/daemon/engine/engine_test_base.h"

namespace redrive::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// The notifier's Redis side: LastId answers "0-0" later; blocking reads
// never return (the Reader only watches and unwatches).
class QuietWatchOps final : public StreamWatchOps {
 public:
  explicit QuietWatchOps(EventLoop& loop) : loop_(loop) {}
  void LastId(const std::string&, OpCallback<std::string> done) override {
    loop_.Post([done] { done(std::string("0-0")); });
  }
  void WaitForEntries(const std::vector<StreamCursor>&, absl::Duration,
                      OpCallback<std::vector<StreamCursor>>) override {}
  void Unblock(int64_t, OpCallback<bool>) override {}
  bool blocking_connected() const override { return false; }

 private:
  EventLoop& loop_;
};

struct Read {
  std::string key;
  uint8_t source;
  Ids ids;
};

Entries EntriesFrom(int first, int count) {
  Entries out;
  for (int n = first; n < first + count; ++n) out.push_back(DataEntry(Id(n), "x"));
  return out;
}

v1::Register AutoAck() {
  v1::Register r = BaseRegister();
  r.set_auto_ack(true);
  return r;
}

class ReaderTest : public EngineTest {
 protected:
  void SetUp() override {
    options_.read_batch = 256;
    options_.error_backoff = absl::Milliseconds(100);
    loop_.RunSync([this] {
      notifier_ = std::make_unique<StreamNotifier>(watch_ops_, [](const std::string&) {});
      Reader::Hooks hooks;
      hooks.capacity = [this](const HandlerRef&) {
        // Free slots not promised to reads in flight.
        const uint32_t reserved = reader_->reserved(ref_);
        return capacity_ > reserved ? capacity_ - reserved : 0;
      };
      hooks.entries = [this](const HandlerRef& ref, uint8_t source, Entries entries) {
        Ids ids;
        for (const StreamEntry& e : entries) ids.push_back(e.id);
        capacity_ -= std::min<uint32_t>(capacity_, ids.size());
        reads_.push_back(Read{ref.key, source, ids});
      };
      hooks.orphaned = [this](const HandlerRef& ref, const SpecPtr&, uint8_t source, Ids ids) {
        orphaned_.push_back(Read{ref.key, source, ids});
      };
      hooks.draining = [this] { return draining_; };
      reader_ = std::make_unique<Reader>(ctx_, *notifier_, std::move(hooks));
    });
  }
  void TearDown() override {
    Settle();
    loop_.RunSync([this] {
      reader_.reset();
      notifier_.reset();
    });
  }
  // Adds the handler and opens `sources`.
  void AddOpen(const SpecPtr& spec, std::vector<uint8_t> sources) {
    Run([&] {
      reader_->Add(ref_, spec);
      for (uint8_t s : sources) reader_->Open(ref_, s);
    });
  }
  void SetCapacity(uint32_t n) {
    loop_.RunSync([&] { capacity_ = n; });
  }
  void MaybeRead() {
    Run([&] { reader_->MaybeRead(ref_); });
  }
  // ReadGroup answers `count` entries numbered from `first` for each stream
  // (fewer when fewer are asked for), then nothing.
  void Backlog(int main_count, int retry_count) {
    auto left = std::make_shared<std::pair<int, int>>(main_count, retry_count);
    auto next = std::make_shared<int>(1);
    Answer<ReadGroupCall>([left, next](const ReadGroupCall& c) -> Or<Entries> {
      int& n = c.g.stream == "orders" ? left->first : left->second;
      const int take = std::min<int>(n, c.count);
      n -= take;
      Entries out = EntriesFrom(*next, take);
      *next += take;
      return out;
    });
  }
  // (stream, count) of every read so far.
  std::vector<std::pair<std::string, uint32_t>> ReadCalls() {
    std::vector<std::pair<std::string, uint32_t>> out;
    for (const ReadGroupCall& c : Calls<ReadGroupCall>()) out.emplace_back(c.g.stream, c.count);
    return out;
  }

  QuietWatchOps watch_ops_{loop_};
  std::unique_ptr<StreamNotifier> notifier_;
  std::unique_ptr<Reader> reader_;
  // Loop thread.
  uint32_t capacity_ = 10;
  bool draining_ = false;
  std::vector<Read> reads_, orphaned_;
};

using ::testing::Pair;

TEST_F(ReaderTest, NothingIsReadBeforeTheSourceIsOpened) {
  AddOpen(spec_, {});
  MaybeRead();
  EXPECT_THAT(Calls<ReadGroupCall>(), IsEmpty());
}

TEST_F(ReaderTest, ReadsAtMostTheFreeSlotsAndHandsTheEntriesOver) {
  AddOpen(spec_, {kMain});
  Backlog(3, 0);
  loop_.RunSync([&] {
    reader_->MaybeRead(ref_);
    EXPECT_EQ(reader_->reserved(ref_), 10u);  // promised while the read is out
  });
  Settle();
  const std::vector<ReadGroupCall> calls = Calls<ReadGroupCall>();
  ASSERT_EQ(calls.size(), 1u);  // a short read: no more entries
  EXPECT_EQ(calls[0].g.stream, "orders");
  EXPECT_EQ(calls[0].g.group, "billing");
  EXPECT_EQ(calls[0].g.consumer, "billing-i1");
  EXPECT_EQ(calls[0].count, 10u);
  EXPECT_FALSE(calls[0].no_ack);
  loop_.RunSync([&] {
    ASSERT_EQ(reads_.size(), 1u);
    EXPECT_EQ(reads_[0].key, kKey);
    EXPECT_EQ(reads_[0].source, kMain);
    EXPECT_EQ(reads_[0].ids, (Ids{"1-0", "2-0", "3-0"}));
    EXPECT_EQ(reader_->reserved(ref_), 0u);
  });
  EXPECT_EQ(Stats().reads, 1u);
  // Until woken, a short read means nothing more to read.
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 1u);
  Run([&] { reader_->Wake(ref_, kMain); });
  MaybeRead();
  ASSERT_EQ(Calls<ReadGroupCall>().size(), 2u);
  EXPECT_EQ(Calls<ReadGroupCall>()[1].count, 7u);
}

TEST_F(ReaderTest, AFullReadReadsAgainWhileSlotsAreFree) {
  SetCapacity(5);
  options_.read_batch = 2;
  AddOpen(spec_, {kMain});
  Backlog(100, 0);
  MaybeRead();
  EXPECT_THAT(ReadCalls(), ElementsAre(Pair("orders", 2), Pair("orders", 2), Pair("orders", 1)));
  EXPECT_EQ(Stats().reads, 3u);
}

TEST_F(ReaderTest, NoReadWithoutFreeSlotsOrWhileDraining) {
  SetCapacity(0);
  AddOpen(spec_, {kMain});
  MaybeRead();
  EXPECT_THAT(Calls<ReadGroupCall>(), IsEmpty());
  SetCapacity(10);
  loop_.RunSync([&] { draining_ = true; });
  MaybeRead();
  EXPECT_THAT(Calls<ReadGroupCall>(), IsEmpty());
}

TEST_F(ReaderTest, ReadsAtMostReadBatch) {
  SetCapacity(1000);
  AddOpen(spec_, {kMain});
  MaybeRead();
  EXPECT_THAT(ReadCalls(), ElementsAre(Pair("orders", 256)));
}

TEST_F(ReaderTest, BothSourcesShareTheSlotsAndTheOddOneAlternates) {
  SetCapacity(5);
  AddOpen(spec_, {kMain, kRetry});
  MaybeRead();
  EXPECT_THAT(ReadCalls(), ElementsAre(Pair("orders.billing.retry", 2), Pair("orders", 3)));
  const ReadGroupCall retry = Calls<ReadGroupCall>()[0];
  EXPECT_EQ(retry.g.group, "billing-retry");
  EXPECT_EQ(retry.g.consumer, "billing-i1");
  Run([&] {
    reader_->Wake(ref_, kMain);
    reader_->Wake(ref_, kRetry);
    reader_->MaybeRead(ref_);
  });
  EXPECT_THAT(ReadCalls(), ElementsAre(Pair("orders.billing.retry", 2), Pair("orders", 3),
                                       Pair("orders.billing.retry", 3), Pair("orders", 2)));
}

TEST_F(ReaderTest, OneFreeSlotServesTheSourcesInTurn) {
  AddOpen(spec_, {kMain, kRetry});
  Backlog(10, 10);  // each read is full: both sources stay readable
  for (int i = 0; i < 3; ++i) {
    SetCapacity(1);  // the entry read takes it
    MaybeRead();
  }
  EXPECT_THAT(ReadCalls(),
              ElementsAre(Pair("orders", 1), Pair("orders.billing.retry", 1), Pair("orders", 1)));
}

TEST_F(ReaderTest, AWakeDuringAShortReadKeepsTheSourceReadable) {
  AddOpen(spec_, {kMain});
  loop_.RunSync([&] {
    reader_->MaybeRead(ref_);
    reader_->Wake(ref_, kMain);  // entries arrived after the read was sent
  });
  Settle();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 2u);  // read again at once
}

TEST_F(ReaderTest, AutoAckHandlersReadTheMainStreamOnlyAndAckAtRead) {
  const SpecPtr auto_ack = MakeSpec(AutoAck());
  AddOpen(auto_ack, {kMain, kRetry});
  MaybeRead();
  const std::vector<ReadGroupCall> calls = Calls<ReadGroupCall>();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].g.stream, "orders");
  EXPECT_EQ(calls[0].count, 10u);
  EXPECT_TRUE(calls[0].no_ack);
  loop_.RunSync([&] {
    ASSERT_NE(reader_->Readers("orders"), nullptr);
    EXPECT_EQ(reader_->Readers("orders.billing.retry"), nullptr);
  });
}

TEST_F(ReaderTest, NogroupOnARetryStreamNeverReadStopsItQuietly) {
  AddOpen(spec_, {kRetry});
  Answer<ReadGroupCall>([](const ReadGroupCall&) -> Or<Entries> {
    return RedisErrorReply("NOGROUP No such key 'orders.billing.retry' or consumer group");
  });
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 1u);
  EXPECT_THAT(Calls<CreateGroupCall>(), IsEmpty());
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.redis_errors, 0u);
  EXPECT_EQ(s.groups_recreated, 0u);
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 1u);
  // The first move into the retry stream wakes it.
  Answer<ReadGroupCall>([](const ReadGroupCall&) -> Or<Entries> { return Entries{}; });
  Run([&] { reader_->Wake(ref_, kRetry); });
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 2u);
}

TEST_F(ReaderTest, NogroupWithNothingReadRecreatesTheGroupAtTheEnd) {
  AddOpen(spec_, {kMain});
  auto first = std::make_shared<bool>(true);
  Answer<ReadGroupCall>([first](const ReadGroupCall&) -> Or<Entries> {
    if (*first) {
      *first = false;
      return RedisErrorReply("NOGROUP No such key 'orders' or consumer group 'billing'");
    }
    return Entries{};
  });
  MaybeRead();
  const std::vector<CreateGroupCall> created = Calls<CreateGroupCall>();
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].stream, "orders");
  EXPECT_EQ(created[0].group, "billing");
  EXPECT_EQ(created[0].start_id, "$");
  const DispatcherStats s = Stats();
  EXPECT_EQ(s.groups_recreated, 1u);
  EXPECT_EQ(s.redis_errors, 1u);
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 2u);  // read again once it is back
}

TEST_F(ReaderTest, NogroupAfterAReadRecreatesTheGroupAtTheLastIdRead) {
  AddOpen(spec_, {kRetry});
  auto calls = std::make_shared<int>(0);
  Answer<ReadGroupCall>([calls](const ReadGroupCall&) -> Or<Entries> {
    switch ((*calls)++) {
      case 0:
        return EntriesFrom(6, 2);  // 6-0, 7-0: short
      case 1:
        return RedisErrorReply("NOGROUP No such key");
      default:
        return Entries{};
    }
  });
  MaybeRead();
  Run([&] { reader_->Wake(ref_, kRetry); });
  MaybeRead();
  const std::vector<CreateGroupCall> created = Calls<CreateGroupCall>();
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].stream, "orders.billing.retry");
  EXPECT_EQ(created[0].group, "billing-retry");
  EXPECT_EQ(created[0].start_id, "7-0");
  EXPECT_EQ(Stats().groups_recreated, 1u);
}

TEST_F(ReaderTest, NoReadWhileTheGroupIsBeingRecreatedAndAFailedCreateWaitsErrorBackoff) {
  AddOpen(spec_, {kMain});
  Answer<ReadGroupCall>(
      [](const ReadGroupCall&) -> Or<Entries> { return RedisErrorReply("NOGROUP No such key"); });
  Answer<CreateGroupCall>([](const CreateGroupCall&) { return absl::UnavailableError("down"); });
  loop_.RunSync([&] { reader_->MaybeRead(ref_); });
  Settle();
  EXPECT_EQ(Calls<CreateGroupCall>().size(), 1u);
  EXPECT_EQ(Stats().redis_errors, 2u);  // the NOGROUP and the failed create
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 1u);
  SetNow(kT0 + absl::Milliseconds(100));
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 2u);
}

TEST_F(ReaderTest, AFailedReadIsRetriedAfterErrorBackoff) {
  AddOpen(spec_, {kMain});
  auto first = std::make_shared<bool>(true);
  Answer<ReadGroupCall>([first](const ReadGroupCall&) -> Or<Entries> {
    if (std::exchange(*first, false)) return absl::UnavailableError("connection lost");
    return Entries{};
  });
  MaybeRead();
  EXPECT_EQ(Stats().redis_errors, 1u);
  EXPECT_THAT(Calls<CreateGroupCall>(), IsEmpty());
  loop_.RunSync([&] { EXPECT_EQ(reader_->reserved(ref_), 0u); });
  SetNow(kT0 + absl::Milliseconds(99));
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 1u);
  SetNow(kT0 + absl::Milliseconds(100));
  MaybeRead();
  EXPECT_EQ(Calls<ReadGroupCall>().size(), 2u);
}

TEST_F(ReaderTest, EntriesReadAfterTheHandlerLeftAreOrphaned) {
  AddOpen(spec_, {kMain});
  Backlog(2, 0);
  Run([&] {
    reader_->MaybeRead(ref_);
    reader_->Forget(ref_);  // before the reply
  });
  loop_.RunSync([&] {
    EXPECT_THAT(reads_, IsEmpty());
    ASSERT_EQ(orphaned_.size(), 1u);
    EXPECT_EQ(orphaned_[0].key, kKey);
    EXPECT_EQ(orphaned_[0].source, kMain);
    EXPECT_EQ(orphaned_[0].ids, (Ids{"1-0", "2-0"}));
    EXPECT_EQ(reader_->Readers("orders"), nullptr);
  });
}

TEST_F(ReaderTest, AutoAckEntriesReadAfterTheHandlerLeftAreNotOrphaned) {
  AddOpen(MakeSpec(AutoAck()), {kMain});
  Backlog(2, 0);
  Run([&] {
    reader_->MaybeRead(ref_);
    reader_->Forget(ref_);
  });
  loop_.RunSync([&] {
    EXPECT_THAT(reads_, IsEmpty());
    EXPECT_THAT(orphaned_, IsEmpty());
  });
}

TEST_F(ReaderTest, ReadersListsTheHandlersOfAStream) {
  v1::Register other = BaseRegister();
  other.set_handler_id("shipping");
  const SpecPtr shipping = MakeSpec(other);
  Run([&] {
    reader_->Add(ref_, spec_);
    const HandlerRef shipping_ref{"orders/shipping", 2};
    reader_->Add(shipping_ref, shipping);
    ASSERT_NE(reader_->Readers("orders"), nullptr);
    EXPECT_THAT(*reader_->Readers("orders"), ElementsAre(ref_, shipping_ref));
    ASSERT_NE(reader_->Readers("orders.billing.retry"), nullptr);
    EXPECT_THAT(*reader_->Readers("orders.billing.retry"), ElementsAre(ref_));
    reader_->Forget(ref_);
    EXPECT_THAT(*reader_->Readers("orders"), ElementsAre(shipping_ref));
    EXPECT_EQ(reader_->Readers("orders.billing.retry"), nullptr);
  });
}

TEST_F(ReaderTest, WatchRunsReadyOnceTheNotifierCoversTheStreamAndForgetUnwatches) {
  int ready = 0;  // loop thread
  Run([&] {
    reader_->Add(ref_, spec_);
    reader_->Watch(ref_, kMain, [&] { ++ready; });
    reader_->Watch(ref_, kRetry, [&] { ++ready; });
  });
  loop_.RunSync([&] {
    EXPECT_EQ(ready, 2);
    EXPECT_EQ(notifier_->watched(), 2u);
    reader_->Forget(ref_);
    EXPECT_EQ(notifier_->watched(), 0u);
  });
}

TEST_F(ReaderTest, ARepliedReadOfAnEarlierGenerationIsOrphaned) {
  AddOpen(spec_, {kMain});
  Backlog(2, 0);
  Run([&] {
    reader_->MaybeRead(ref_);
    reader_->Forget(ref_);
    reader_->Add({kKey, 2}, spec_);  // the handler came back
  });
  loop_.RunSync([&] {
    EXPECT_THAT(reads_, IsEmpty());
    ASSERT_EQ(orphaned_.size(), 1u);
    EXPECT_EQ(orphaned_[0].ids, (Ids{"1-0", "2-0"}));
  });
}

}  // namespace
}  // namespace redrive::testing
