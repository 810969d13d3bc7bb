// Unit tests of the Dispatcher (R-B3..R-B9, R-D8) over fakes: a real
// EventLoop thread, FakeAsyncCommanders for the command and the blocking
// connection, a real StreamNotifier over them, and FakeSessionSinks. No
// Redis, no gRPC: deterministic, and free of gRPC for ThreadSanitizer (whose
// reports here are still dominated by Debian's uninstrumented abseil: the
// synchronization of absl::Mutex and absl::Notification is invisible to it).
//
// Every dispatcher call runs on the loop thread (RunSync). After a call the
// test waits until no fake reply is in transit (Settle), so what the fakes
// and sinks recorded is final. Timers: the tick is an hour unless a test
// needs lease expiry or the drain deadline; then it is 5 ms and time moves
// only when the test sets the injected clock (AwaitTickAt).
#include "daemon/dispatcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "daemon/event_loop.h"
#include "daemon/keys.h"
#include "daemon/stream_notifier.h"
#include "daemon/subscription.h"
#include "tests/fakes/fake_async_redis.h"
#include "tests/fakes/fake_session_sink.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::FakeAsyncCommander;
using ::redrive::testing::FakeSessionSink;
using ::redrive::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;
using Command = std::vector<std::string>;

constexpr char kStream[] = "orders";
constexpr char kHandler[] = "billing";
constexpr char kInstance[] = "i1";
constexpr char kConsumer[] = "billing-i1";
constexpr char kReleaseIdle[] = "86400001";
constexpr int64_t kBlockingClientId = 7;
constexpr absl::Duration kWait = absl::Seconds(10);
const absl::Time kT0 = absl::FromUnixMillis(1'700'000'000'000);

std::string Id(int n) { return absl::StrCat(n, "-0"); }
std::string Body(int n) { return absl::StrCat("{\"n\":", n, "}"); }
std::string Envelope(int n) {
  return ::redrive::testing::SpecEnvelope(
      {{"content-type", "application/json"}, {"x-seq", absl::StrCat(n)}}, Body(n));
}
// Entry number of an id "<n>-0".
int Seq(const std::string& id) {
  int n = 0;
  EXPECT_TRUE(absl::SimpleAtoi(id.substr(0, id.find('-')), &n)) << id;
  return n;
}

RedisReply EntryReply(int n) {
  return RedisReply::Array({RedisReply::String(Id(n)),
                            RedisReply::Array({RedisReply::String("__data__"),
                                               RedisReply::String(Envelope(n))})});
}

// Asserts that `d` carries entry `n` of kStream exactly as the producer wrote it.
void ExpectEntry(const v1::Delivery& d, int n, uint32_t attempt) {
  EXPECT_EQ(d.channel(), kStream);
  EXPECT_EQ(d.stream(), kStream);
  EXPECT_EQ(d.entry_id(), Id(n));
  EXPECT_EQ(d.original_entry_id(), Id(n));
  EXPECT_EQ(d.payload(), Body(n));
  EXPECT_EQ(d.content_type(), "application/json");
  ASSERT_EQ(d.headers_size(), 1);
  EXPECT_EQ(d.headers(0).key(), "x-seq");
  EXPECT_EQ(d.headers(0).value(), absl::StrCat(n));
  EXPECT_EQ(d.source_format(), v1::SOURCE_FORMAT_BINARY_V1);
  EXPECT_EQ(d.attempt(), attempt);
}

std::vector<std::string> EntryIds(const std::vector<v1::Delivery>& ds) {
  std::vector<std::string> ids;
  for (const v1::Delivery& d : ds) ids.push_back(d.entry_id());
  return ids;
}

// The Redis side of one stream (kStream): its entries, its consumer groups'
// read positions, entries XAUTOCLAIM finds idle, and canned replies for the
// rest. Answers run on the loop thread; tests change it from theirs.
class FakeRedisServer {
 public:
  // Appends entries `first`..`last` (ids "<n>-0").
  void Append(int first, int last) {
    absl::MutexLock lock(&mu_);
    for (int n = first; n <= last; ++n) entries_.push_back(n);
  }
  // An existing group whose next entry is the `next`-th (0-based).
  void AddGroup(const std::string& group, size_t next) {
    absl::MutexLock lock(&mu_);
    groups_[group] = next;
  }
  // FLUSHALL: the stream and its groups are gone.
  void FlushAll() {
    absl::MutexLock lock(&mu_);
    entries_.clear();
    groups_.clear();
  }
  void MakeWrongType() {
    absl::MutexLock lock(&mu_);
    wrong_type_ = true;
  }
  // XGROUP CREATE answers this error from now on.
  void FailGroupCreate(std::string error) {
    absl::MutexLock lock(&mu_);
    create_error_ = std::move(error);
  }
  // The next XAUTOCLAIM returns entry `n`; XPENDING then reports
  // `delivery_count` for it.
  void AddClaimable(int n, int64_t delivery_count) {
    absl::MutexLock lock(&mu_);
    claimable_.push_back(n);
    delivery_counts_[Id(n)] = delivery_count;
  }

  absl::StatusOr<RedisReply> Answer(const Command& c) {
    absl::MutexLock lock(&mu_);
    const std::string& kind = c.front();
    if (kind == "XGROUP" && c.size() == 6 && c[1] == "CREATE") return GroupCreate(c);
    if (kind == "XREADGROUP") return ReadGroup(c);
    if (kind == "XREVRANGE") {
      if (entries_.empty()) return RedisReply::Array({});
      return RedisReply::Array({EntryReply(entries_.back())});
    }
    if (kind == "XACK") return RedisReply::Integer(static_cast<int64_t>(c.size()) - 3);
    if (kind == "XCLAIM") {
      // XCLAIM <stream> <group> <consumer> <min-idle> <id>... [IDLE ms] [JUSTID]:
      // with JUSTID the ids, else the entries that still exist (Redis 7
      // leaves deleted ones out).
      std::vector<std::string> ids;
      bool just_id = false;
      for (size_t i = 5; i < c.size(); ++i) {
        if (c[i] == "IDLE") {
          ++i;
        } else if (c[i] == "JUSTID") {
          just_id = true;
        } else {
          ids.push_back(c[i]);
        }
      }
      std::vector<RedisReply> out;
      for (const std::string& id : ids) {
        if (just_id) {
          out.push_back(RedisReply::String(id));
        } else if (std::find(entries_.begin(), entries_.end(), Seq(id)) != entries_.end()) {
          out.push_back(EntryReply(Seq(id)));
        }
      }
      return RedisReply::Array(std::move(out));
    }
    if (kind == "XAUTOCLAIM") {
      std::vector<RedisReply> claimed;
      for (int n : claimable_) claimed.push_back(EntryReply(n));
      claimable_.clear();
      return RedisReply::Array({RedisReply::String("0-0"), RedisReply::Array(std::move(claimed)),
                                RedisReply::Array({})});
    }
    // The extended form for one id: XPENDING key group id id 1.
    if (kind == "XPENDING" && c.size() == 6) {
      std::vector<RedisReply> rows;
      for (const auto& [id, count] : delivery_counts_) {
        if (Seq(id) < Seq(c[3]) || Seq(id) > Seq(c[4])) continue;
        rows.push_back(RedisReply::Array({RedisReply::String(id), RedisReply::String(kConsumer),
                                          RedisReply::Integer(1000),
                                          RedisReply::Integer(count)}));
      }
      return RedisReply::Array(std::move(rows));
    }
    if (kind == "CLIENT") return RedisReply::Integer(1);
    if (kind == "PING") return RedisReply::Status("PONG");
    return RedisReply::Error(absl::StrCat("ERR fake server: unexpected ", kind));
  }

 private:
  RedisReply GroupCreate(const Command& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (wrong_type_) {
      return RedisReply::Error("WRONGTYPE Operation against a key holding the wrong kind of value");
    }
    if (!create_error_.empty()) return RedisReply::Error(create_error_);
    if (groups_.contains(c[3])) return RedisReply::Error("BUSYGROUP Consumer Group name already exists");
    const std::string& start = c[4];
    size_t next = 0;
    if (start == "$") {
      next = entries_.size();
    } else {
      while (next < entries_.size() && entries_[next] <= Seq(start)) ++next;
    }
    groups_[c[3]] = next;
    return RedisReply::Status("OK");
  }

  RedisReply ReadGroup(const Command& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (wrong_type_) {
      return RedisReply::Error("WRONGTYPE Operation against a key holding the wrong kind of value");
    }
    // XREADGROUP GROUP <group> <consumer> COUNT <n> [NOACK] STREAMS <stream> >
    auto group = groups_.find(c[2]);
    if (group == groups_.end()) {
      return RedisReply::Error(absl::StrCat("NOGROUP No such key '", c[c.size() - 2],
                                            "' or consumer group '", c[2],
                                            "' in XREADGROUP with GROUP option"));
    }
    size_t count = 0;
    EXPECT_TRUE(absl::SimpleAtoi(c[5], &count));
    std::vector<RedisReply> out;
    while (out.size() < count && group->second < entries_.size()) {
      out.push_back(EntryReply(entries_[group->second++]));
    }
    if (out.empty()) return RedisReply::Nil();
    return RedisReply::Array({RedisReply::Array(
        {RedisReply::String(c[c.size() - 2]), RedisReply::Array(std::move(out))})});
  }

  absl::Mutex mu_;
  std::vector<int> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> groups_ ABSL_GUARDED_BY(mu_);
  bool wrong_type_ ABSL_GUARDED_BY(mu_) = false;
  std::string create_error_ ABSL_GUARDED_BY(mu_);
  std::vector<int> claimable_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> delivery_counts_ ABSL_GUARDED_BY(mu_);
};

// The dispatcher's clock. Counts reads so a test can wait for the next tick.
class TestClock {
 public:
  absl::Time Now() {
    absl::MutexLock lock(&mu_);
    ++reads_;
    return now_;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }
  void ResetReads() {
    absl::MutexLock lock(&mu_);
    reads_ = 0;
  }
  bool AwaitRead(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto read = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return reads_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&read), timeout);
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = kT0;
  uint64_t reads_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::Register Reg(uint32_t max_in_flight = 0, uint32_t lease_ms = 0) {
  v1::Register r;
  r.set_channel(kStream);
  r.set_handler_id(kHandler);
  r.set_max_in_flight(max_in_flight);
  r.set_lease_ms(lease_ms);
  return r;
}

v1::Verb Ack(uint64_t id) {
  v1::Verb v;
  v.set_delivery_id(id);
  v.mutable_ack();
  return v;
}
v1::Verb Nack(uint64_t id) {
  v1::Verb v;
  v.set_delivery_id(id);
  v.mutable_nack()->set_reason("boom");
  return v;
}
v1::Verb Extend(uint64_t id, uint32_t lease_ms) {
  v1::Verb v;
  v.set_delivery_id(id);
  v.mutable_extend()->set_lease_ms(lease_ms);
  return v;
}
v1::Verbs VerbsOf(std::vector<v1::Verb> list) {
  v1::Verbs verbs;
  for (v1::Verb& v : list) *verbs.add_verbs() = std::move(v);
  return verbs;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void TearDown() override {
    loop_.RunSync([this] {
      dispatcher_.reset();
      notifier_.reset();
      blocking_.reset();
      commands_.reset();
    });
  }

  DispatcherOptions Options() {
    DispatcherOptions o;
    o.instance_id = kInstance;
    o.tick = absl::Hours(1);
    o.now = [this] { return clock_.Now(); };
    return o;
  }
  DispatcherOptions FastTickOptions() {
    DispatcherOptions o = Options();
    o.tick = absl::Milliseconds(5);
    return o;
  }

  void Start(DispatcherOptions options) {
    loop_.RunSync([this, &options] {
      commands_ = std::make_unique<FakeAsyncCommander>(loop_);
      commands_->set_responder([this](const Command& c) { return redis_.Answer(c); });
      // The notifier's blocking XREAD never returns: activity is reported by
      // the tests calling OnStreamActivity.
      blocking_ = std::make_unique<FakeAsyncCommander>(loop_);
      blocking_->set_responder([](const Command&) { return RedisReply::Nil(); });
      blocking_->Hold("XREAD");
      notifier_ = std::make_unique<StreamNotifier>(
          *blocking_, *commands_, [this](const std::string& stream) {
            if (dispatcher_ != nullptr) dispatcher_->OnStreamActivity(stream);
          });
      dispatcher_ = std::make_unique<Dispatcher>(loop_, *commands_, *notifier_, std::move(options));
      notifier_->OnBlockingConnected(kBlockingClientId);
    });
  }
  void Start() { Start(Options()); }

  // Runs `fn` on the loop thread with the dispatcher, then waits until no
  // reply is in transit.
  void OnLoop(const std::function<void(Dispatcher&)>& fn) {
    loop_.RunSync([&] { fn(*dispatcher_); });
    Settle();
  }

  void Settle() {
    for (int i = 0; i < 10000; ++i) {
      bool idle = false;
      loop_.RunSync([&] { idle = commands_->in_transit() == 0 && blocking_->in_transit() == 0; });
      if (idle) return;
    }
    ADD_FAILURE() << "replies kept coming: the dispatcher never went idle";
  }

  static SubscriptionSpec Spec(const v1::Register& reg) {
    absl::StatusOr<SubscriptionSpec> spec = ResolveRegistration(reg, KeyStyle::kEggAI, kInstance);
    EXPECT_TRUE(spec.ok()) << spec.status();
    return spec.ok() ? *std::move(spec) : SubscriptionSpec{};
  }

  std::shared_ptr<FakeSessionSink> Register(uint64_t session, const v1::Register& reg) {
    auto sink = std::make_shared<FakeSessionSink>();
    SubscriptionSpec spec = Spec(reg);
    OnLoop([&](Dispatcher& d) { d.Register(session, std::move(spec), sink); });
    return sink;
  }

  void Verbs(uint64_t session, const v1::Verbs& verbs) {
    OnLoop([&](Dispatcher& d) { d.Verbs(session, verbs); });
  }

  void Activity(const std::string& stream) {
    OnLoop([&](Dispatcher& d) { d.OnStreamActivity(stream); });
  }

  DispatcherStats Stats() {
    DispatcherStats s;
    loop_.RunSync([&] { s = dispatcher_->stats(); });
    return s;
  }
  size_t InFlight(uint64_t session) {
    size_t n = 0;
    loop_.RunSync([&] { n = dispatcher_->InFlight(session); });
    return n;
  }
  size_t Handlers() {
    size_t n = 0;
    loop_.RunSync([&] { n = dispatcher_->handlers(); });
    return n;
  }
  size_t Watched() {
    size_t n = 0;
    loop_.RunSync([&] { n = notifier_->watched(); });
    return n;
  }

  // Sets the clock to `t` and waits until a tick has run entirely at `t`
  // (and the replies it caused arrived). Only for FastTickOptions.
  void AwaitTickAt(absl::Time t) {
    clock_.Set(t);
    // Whatever ran before this point saw the old time; the next read of the
    // clock comes from a later loop callback, i.e. the next tick.
    loop_.RunSync([this] { clock_.ResetReads(); });
    ASSERT_TRUE(clock_.AwaitRead(kWait)) << "no tick";
    loop_.RunSync([] {});  // that tick has finished
    Settle();
  }

  // Commands the dispatcher sent other than the notifier's own.
  std::vector<Command> Sent(absl::string_view kind) { return commands_->commands(kind); }
  size_t Reads() { return commands_->count("XREADGROUP"); }

  static Command ReadCommand(uint32_t count, bool noack = false) {
    Command c = {"XREADGROUP", "GROUP", kHandler, kConsumer, "COUNT", absl::StrCat(count)};
    if (noack) c.push_back("NOACK");
    c.insert(c.end(), {"STREAMS", kStream, ">"});
    return c;
  }
  static Command ClaimCommand(const std::vector<std::string>& ids, bool release) {
    Command c = {"XCLAIM", kStream, kHandler, kConsumer, "0"};
    c.insert(c.end(), ids.begin(), ids.end());
    if (release) c.insert(c.end(), {"IDLE", kReleaseIdle});
    c.push_back("JUSTID");
    return c;
  }
  // XCLAIM without JUSTID: fetches entries this daemon holds for redelivery.
  static Command FetchCommand(const std::vector<std::string>& ids) {
    Command c = {"XCLAIM", kStream, kHandler, kConsumer, "0"};
    c.insert(c.end(), ids.begin(), ids.end());
    return c;
  }
  static Command AckCommand(const std::vector<std::string>& ids) {
    Command c = {"XACK", kStream, kHandler};
    c.insert(c.end(), ids.begin(), ids.end());
    return c;
  }

  FakeRedisServer redis_;
  TestClock clock_;
  EventLoop loop_;
  // Loop thread only (created and destroyed there).
  std::unique_ptr<FakeAsyncCommander> commands_;
  std::unique_ptr<FakeAsyncCommander> blocking_;
  std::unique_ptr<StreamNotifier> notifier_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

// ------------------------------------------------------------ registration

TEST_F(DispatcherTest, RegistrationCreatesGroupAtNewEntriesAndSendsRegisteredOnce) {
  Start();
  auto sink = Register(1, Reg());

  EXPECT_THAT(commands_->commands(),
              ElementsAre(Command{"XGROUP", "CREATE", kStream, kHandler, "$", "MKSTREAM"},
                          Command{"XREVRANGE", kStream, "+", "-", "COUNT", "1"},
                          ReadCommand(64)));
  const std::vector<v1::SubscribeResponse> responses = sink->responses();
  ASSERT_EQ(responses.size(), 1u);
  ASSERT_TRUE(responses[0].has_registered());
  const v1::Registered& r = responses[0].registered();
  EXPECT_EQ(r.channel(), kStream);
  EXPECT_EQ(r.handler_id(), kHandler);
  EXPECT_EQ(r.names().stream(), "orders");
  EXPECT_EQ(r.names().group(), "billing");
  EXPECT_EQ(r.names().retry_stream(), "orders.billing.retry");
  EXPECT_EQ(r.names().retry_group(), "billing-retry");
  EXPECT_EQ(r.names().dlq_stream(), "orders.billing.dlq");
  EXPECT_EQ(r.names().consumer(), "billing-i1");
  EXPECT_EQ(r.instance_id(), kInstance);
  EXPECT_EQ(r.max_in_flight(), 64u);
  EXPECT_EQ(r.lease_ms(), 30000u);
  EXPECT_FALSE(r.auto_ack());
  EXPECT_EQ(sink->finish_calls(), 0);
  EXPECT_EQ(Handlers(), 1u);
  EXPECT_EQ(Watched(), 1u);
}

TEST_F(DispatcherTest, StartBacklogCreatesGroupAtZeroAndDeliversHistory) {
  redis_.Append(1, 2);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);

  EXPECT_THAT(Sent("XGROUP"),
              ElementsAre(Command{"XGROUP", "CREATE", kStream, kHandler, "0", "MKSTREAM"}));
  ASSERT_EQ(sink->registered().size(), 1u);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  ExpectEntry(ds[0], 1, 1);
  ExpectEntry(ds[1], 2, 1);
  EXPECT_EQ(ds[0].max_attempts(), 6u);  // default policy: 5 retries
  EXPECT_EQ(ds[0].lease_deadline_unix_ms(), absl::ToUnixMillis(kT0 + absl::Seconds(30)));
  EXPECT_NE(ds[0].delivery_id(), ds[1].delivery_id());
}

TEST_F(DispatcherTest, StartAtIdCreatesGroupAtThatId) {
  redis_.Append(1, 3);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_AT_ID);
  reg.mutable_start()->set_entry_id("2-0");
  auto sink = Register(1, reg);

  EXPECT_THAT(Sent("XGROUP"),
              ElementsAre(Command{"XGROUP", "CREATE", kStream, kHandler, "2-0", "MKSTREAM"}));
  ASSERT_EQ(sink->registered().size(), 1u);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);
  ExpectEntry(ds[0], 3, 1);
}

TEST_F(DispatcherTest, ExistingGroupKeepsItsPosition) {
  redis_.Append(1, 3);
  redis_.AddGroup(kHandler, 2);  // BUSYGROUP: entries 1 and 2 were consumed
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);

  EXPECT_EQ(sink->finish_calls(), 0);
  ASSERT_EQ(sink->registered().size(), 1u);
  EXPECT_EQ(sink->registered()[0].names().group(), kHandler);
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(64)));
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);
  ExpectEntry(ds[0], 3, 1);
}

TEST_F(DispatcherTest, KeyThatIsNotAStreamFinishesWithFailedPrecondition) {
  redis_.MakeWrongType();
  Start();
  auto sink = Register(1, Reg());

  ASSERT_TRUE(sink->status().has_value());
  EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("'orders' exists and is not a stream")));
  EXPECT_EQ(sink->finish_calls(), 1);
  EXPECT_THAT(sink->responses(), IsEmpty());  // no Registered
  EXPECT_THAT(commands_->commands(),
              ElementsAre(Command{"XGROUP", "CREATE", kStream, kHandler, "$", "MKSTREAM"}));
  EXPECT_EQ(Handlers(), 0u);
  EXPECT_EQ(Watched(), 0u);
}

TEST_F(DispatcherTest, SecondSessionOfReadyHandlerIsRegisteredWithoutNewGroupCreate) {
  Start();
  auto first = Register(1, Reg());
  auto second = Register(2, Reg());

  EXPECT_EQ(commands_->count("XGROUP"), 1u);
  EXPECT_EQ(first->registered().size(), 1u);
  ASSERT_EQ(second->registered().size(), 1u);
  EXPECT_EQ(second->registered()[0].names().consumer(), kConsumer);
  EXPECT_EQ(Handlers(), 1u);
}

// ------------------------------------------------------------ flow control

TEST_F(DispatcherTest, ReadsNoMoreThanFreeSlots) {
  redis_.Append(1, 10);
  Start();
  v1::Register reg = Reg(/*max_in_flight=*/3);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);

  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(3)));
  std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 3u);
  for (int i = 0; i < 3; ++i) ExpectEntry(ds[i], i + 1, 1);
  EXPECT_EQ(InFlight(1), 3u);

  // Even with the notifier reporting entries, a full session gets no read.
  Activity(kStream);
  EXPECT_EQ(Reads(), 1u);
  EXPECT_EQ(sink->deliveries().size(), 3u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id())}));
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(3), ReadCommand(1)));
  ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 4u);
  ExpectEntry(ds[3], 4, 1);
  EXPECT_EQ(InFlight(1), 3u);
  EXPECT_EQ(Stats().deliveries, 4u);
}

// ------------------------------------------------------------ verbs

TEST_F(DispatcherTest, AcksOfOneVerbsMessageBecomeOneXack) {
  redis_.Append(1, 3);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 3u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id()), Ack(ds[1].delivery_id()),
                    Ack(ds[2].delivery_id())}));
  ASSERT_TRUE(commands_->WaitForCount("XACK", 1, kWait));
  EXPECT_THAT(Sent("XACK"), ElementsAre(AckCommand({Id(1), Id(2), Id(3)})));
  EXPECT_THAT(sink->notices(), IsEmpty());
  EXPECT_EQ(InFlight(1), 0u);
  EXPECT_EQ(Stats().acks, 3u);
}

TEST_F(DispatcherTest, RepeatedAckIsSilentAndAcknowledgedOnce) {
  redis_.Append(1, 3);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 3u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id())}));
  ASSERT_TRUE(commands_->WaitForCount("XACK", 1, kWait));
  // The repeat travels with a fresh ACK: if it queued anything, the next
  // XACK (which flushes everything queued) would name entry 1 again.
  Verbs(1, VerbsOf({Ack(ds[0].delivery_id()), Ack(ds[1].delivery_id())}));
  ASSERT_TRUE(commands_->WaitForCount("XACK", 2, kWait));

  EXPECT_THAT(Sent("XACK"), ElementsAre(AckCommand({Id(1)}), AckCommand({Id(2)})));
  EXPECT_THAT(sink->notices(), IsEmpty());
  EXPECT_EQ(Stats().acks, 2u);
  EXPECT_EQ(Stats().notices, 0u);
}

TEST_F(DispatcherTest, UnknownDeliveryGetsNotice) {
  redis_.Append(1, 1);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  const uint64_t unknown = sink->deliveries()[0].delivery_id() + 1000;

  Verbs(1, VerbsOf({Ack(unknown)}));
  const std::vector<v1::Notice> notices = sink->notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].delivery_id(), unknown);
  EXPECT_EQ(notices[0].code(), v1::Notice::UNKNOWN_DELIVERY);
  EXPECT_EQ(InFlight(1), 1u);  // the real delivery is untouched
  EXPECT_EQ(Stats().acks, 0u);
  EXPECT_EQ(Stats().notices, 1u);
}

TEST_F(DispatcherTest, NackAfterAckGetsAlreadySettled) {
  redis_.Append(1, 1);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  const uint64_t id = sink->deliveries()[0].delivery_id();

  Verbs(1, VerbsOf({Ack(id)}));
  Verbs(1, VerbsOf({Nack(id)}));
  const std::vector<v1::Notice> notices = sink->notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].delivery_id(), id);
  EXPECT_EQ(notices[0].code(), v1::Notice::ALREADY_SETTLED);
  EXPECT_EQ(Stats().acks, 1u);
  EXPECT_EQ(Stats().nacks, 0u);
}

TEST_F(DispatcherTest, NackLeavesEntryPendingAndFreesTheSlot) {
  redis_.Append(1, 2);
  Start();
  v1::Register reg = Reg(/*max_in_flight=*/1);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);

  Verbs(1, VerbsOf({Nack(sink->deliveries()[0].delivery_id())}));
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(1), ReadCommand(1)));
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  ExpectEntry(ds[1], 2, 1);
  EXPECT_EQ(Stats().nacks, 1u);

  // Entry 1 stays pending: the next XACK (which flushes everything queued)
  // names entry 2 only.
  Verbs(1, VerbsOf({Ack(ds[1].delivery_id())}));
  ASSERT_TRUE(commands_->WaitForCount("XACK", 1, kWait));
  EXPECT_THAT(Sent("XACK"), ElementsAre(AckCommand({Id(2)})));
}

TEST_F(DispatcherTest, TerminateAcknowledgesAndLaterVerbsAreNoticed) {
  redis_.Append(1, 1);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  const uint64_t id = sink->deliveries()[0].delivery_id();

  v1::Verb terminate;
  terminate.set_delivery_id(id);
  terminate.mutable_terminate()->set_reason("cannot parse");
  Verbs(1, VerbsOf({terminate}));
  ASSERT_TRUE(commands_->WaitForCount("XACK", 1, kWait));
  EXPECT_THAT(Sent("XACK"), ElementsAre(AckCommand({Id(1)})));
  EXPECT_EQ(Stats().terminates, 1u);
  EXPECT_EQ(InFlight(1), 0u);

  Verbs(1, VerbsOf({Ack(id)}));  // an ACK after TERMINATE is not a repeat
  const std::vector<v1::Notice> notices = sink->notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].code(), v1::Notice::ALREADY_SETTLED);
}

TEST_F(DispatcherTest, VerbWithoutActionGetsInvalidVerbNotice) {
  redis_.Append(1, 1);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  const uint64_t id = sink->deliveries()[0].delivery_id();

  v1::Verb empty;
  empty.set_delivery_id(id);
  Verbs(1, VerbsOf({empty}));
  const std::vector<v1::Notice> notices = sink->notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].delivery_id(), id);
  EXPECT_EQ(notices[0].code(), v1::Notice::INVALID_VERB);
  EXPECT_EQ(InFlight(1), 1u);
}

TEST_F(DispatcherTest, StoppedSessionGetsNoNewDeliveriesButSettles) {
  redis_.Append(1, 1);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);

  OnLoop([](Dispatcher& d) { d.Stop(1); });
  redis_.Append(2, 3);
  Activity(kStream);
  EXPECT_EQ(Reads(), 1u);

  Verbs(1, VerbsOf({Ack(sink->deliveries()[0].delivery_id())}));
  ASSERT_TRUE(commands_->WaitForCount("XACK", 1, kWait));
  EXPECT_THAT(Sent("XACK"), ElementsAre(AckCommand({Id(1)})));
  EXPECT_EQ(Reads(), 1u);
  EXPECT_EQ(sink->deliveries().size(), 1u);
}

// ------------------------------------------------------------ sessions

TEST_F(DispatcherTest, DisconnectedSessionsDeliveriesMoveToTheOtherSession) {
  redis_.Append(1, 6);
  Start();
  v1::Register reg = Reg(/*max_in_flight=*/3);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto one = std::make_shared<FakeSessionSink>();
  auto two = std::make_shared<FakeSessionSink>();
  SubscriptionSpec spec1 = Spec(reg);
  SubscriptionSpec spec2 = Spec(reg);
  OnLoop([&](Dispatcher& d) {
    d.Register(1, std::move(spec1), one);
    d.Register(2, std::move(spec2), two);
  });

  // Split: each session full (3 + 3), every entry exactly once.
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(6)));
  const std::vector<v1::Delivery> first = one->deliveries();
  const std::vector<v1::Delivery> second = two->deliveries();
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(second.size(), 3u);
  std::vector<std::string> all = EntryIds(first);
  for (const std::string& id : EntryIds(second)) all.push_back(id);
  EXPECT_THAT(all, UnorderedElementsAreArray({Id(1), Id(2), Id(3), Id(4), Id(5), Id(6)}));

  // Session 1 ends holding 3; session 2 is full, so they wait.
  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  EXPECT_EQ(two->deliveries().size(), 3u);
  // They start waiting: their idle time is reset at once (JUSTID, no fetch).
  const std::vector<std::string> touch = {"XCLAIM", "orders", "billing", "billing-i1", "0",
                                          first[0].entry_id(), first[1].entry_id(),
                                          first[2].entry_id(), "JUSTID"};
  EXPECT_THAT(Sent("XCLAIM"), ElementsAre(touch));
  EXPECT_EQ(Handlers(), 1u);

  // Two free slots: the two oldest of session 1 are fetched again (XCLAIM
  // with min-idle 0 keeps them ours, resets their idle time and returns
  // their fields) and arrive with attempt 2.
  Verbs(2, VerbsOf({Ack(second[0].delivery_id()), Ack(second[1].delivery_id())}));
  std::vector<v1::Delivery> now = two->deliveries();
  ASSERT_EQ(now.size(), 5u);
  EXPECT_THAT(Sent("XCLAIM"),
              ElementsAre(touch, FetchCommand({first[0].entry_id(), first[1].entry_id()})));
  // The last one.
  Verbs(2, VerbsOf({Ack(second[2].delivery_id())}));
  now = two->deliveries();
  ASSERT_EQ(now.size(), 6u);
  EXPECT_THAT(Sent("XCLAIM"),
              ElementsAre(touch, FetchCommand({first[0].entry_id(), first[1].entry_id()}),
                          FetchCommand({first[2].entry_id()})));
  for (int i = 0; i < 3; ++i) {
    const v1::Delivery& moved = now[3 + i];
    ExpectEntry(moved, Seq(first[i].entry_id()), /*attempt=*/2);
    EXPECT_EQ(moved.payload(), first[i].payload());
    EXPECT_NE(moved.delivery_id(), first[i].delivery_id());
  }
  EXPECT_EQ(Stats().redeliveries, 3u);
  EXPECT_EQ(Stats().released, 0u);
  EXPECT_EQ(InFlight(2), 3u);
}

TEST_F(DispatcherTest, DisconnectOfLastSessionReleasesDeliveriesAndRemovesHandler) {
  redis_.Append(1, 2);
  Start();
  v1::Register reg = Reg(/*max_in_flight=*/5);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 2u);
  ASSERT_EQ(Watched(), 1u);

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  EXPECT_THAT(Sent("XCLAIM"), ElementsAre(ClaimCommand({Id(1), Id(2)}, /*release=*/true)));
  EXPECT_THAT(Sent("XACK"), IsEmpty());
  EXPECT_EQ(Handlers(), 0u);
  EXPECT_EQ(Watched(), 0u);
  EXPECT_EQ(Stats().released, 2u);
  EXPECT_EQ(Stats().redeliveries, 0u);
  EXPECT_EQ(sink->deliveries().size(), 2u);
}

TEST_F(DispatcherTest, DisconnectWhileReadIsOutReleasesWhatTheReadReturns) {
  redis_.Append(1, 2);
  Start();
  commands_->Hold("XREADGROUP");
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(commands_->held("XREADGROUP"), 1u);

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  EXPECT_EQ(Handlers(), 0u);
  ASSERT_EQ(commands_->Release("XREADGROUP"), 1u);
  Settle();

  EXPECT_THAT(Sent("XCLAIM"), ElementsAre(ClaimCommand({Id(1), Id(2)}, /*release=*/true)));
  EXPECT_THAT(sink->deliveries(), IsEmpty());
  EXPECT_EQ(Stats().released, 2u);
}

TEST_F(DispatcherTest, ReadLeavesSlotsOfAFetchInProgressAlone) {
  redis_.Append(1, 3);
  Start();
  v1::Register reg = Reg(/*max_in_flight=*/3);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto one = Register(1, reg);
  auto two = Register(2, reg);
  ASSERT_EQ(one->deliveries().size(), 3u);
  ASSERT_EQ(Reads(), 2u);  // the second found nothing

  commands_->Hold("XCLAIM");
  OnLoop([](Dispatcher& d) { d.Disconnect(1); });  // fetch for session 2's 3 slots
  ASSERT_EQ(commands_->held("XCLAIM"), 1u);
  redis_.Append(4, 6);
  Activity(kStream);
  EXPECT_EQ(Reads(), 2u);

  ASSERT_EQ(commands_->Release("XCLAIM"), 1u);
  Settle();
  const std::vector<v1::Delivery> ds = two->deliveries();
  ASSERT_EQ(ds.size(), 3u);
  for (int i = 0; i < 3; ++i) ExpectEntry(ds[i], i + 1, /*attempt=*/2);
  EXPECT_EQ(Reads(), 2u);
  EXPECT_EQ(Stats().redeliveries, 3u);
}

// Regression (found by this test, fixed in ada3140): when the last session
// left while a backlog fetch (XCLAIM) was out, the fetched entries were
// dropped unreleased, pending under this daemon's consumer with a fresh idle
// time, instead of being released at once like the rest of the backlog.
TEST_F(DispatcherTest, LastSessionLeavingWhileFetchIsOutReleasesTheFetchedEntries) {
  redis_.Append(1, 3);
  Start();
  v1::Register reg = Reg(/*max_in_flight=*/3);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto one = Register(1, reg);
  auto two = Register(2, reg);
  ASSERT_EQ(one->deliveries().size(), 3u);

  commands_->Hold("XCLAIM");
  OnLoop([](Dispatcher& d) { d.Disconnect(1); });  // session 2 has room: fetch
  ASSERT_EQ(commands_->held("XCLAIM"), 1u);
  OnLoop([](Dispatcher& d) { d.Disconnect(2); });
  EXPECT_EQ(Handlers(), 0u);
  ASSERT_EQ(commands_->Release("XCLAIM"), 1u);
  Settle();

  EXPECT_THAT(Sent("XCLAIM"), ElementsAre(FetchCommand({Id(1), Id(2), Id(3)}),
                                          ClaimCommand({Id(1), Id(2), Id(3)}, /*release=*/true)));
  EXPECT_EQ(Stats().released, 3u);
  EXPECT_THAT(two->deliveries(), IsEmpty());
}

// Regression (found by this test, fixed in ada3140): a handler whose last
// session left while the notifier's Watch (XREVRANGE) was still out was
// removed without Unwatch (it was not `ready` yet), so the notifier kept
// watching the stream forever.
TEST_F(DispatcherTest, DisconnectWhileWatchIsPendingStillUnwatches) {
  Start();
  commands_->Hold("XREVRANGE");
  auto sink = Register(1, Reg());
  ASSERT_EQ(commands_->held("XREVRANGE"), 1u);
  EXPECT_THAT(sink->responses(), IsEmpty());  // not ready yet

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  ASSERT_EQ(commands_->Release("XREVRANGE"), 1u);
  Settle();

  EXPECT_EQ(Handlers(), 0u);
  EXPECT_THAT(sink->responses(), IsEmpty());
  EXPECT_THAT(Sent("XREADGROUP"), IsEmpty());
  EXPECT_EQ(Watched(), 0u);
}

// ------------------------------------------------------------ auto-ack

TEST_F(DispatcherTest, AutoAckReadsWithNoackAndNeverAcks) {
  redis_.Append(1, 2);
  DispatcherOptions options = Options();
  options.ack_batch = 1;  // any queued XACK would go out inside Verbs
  Start(std::move(options));
  v1::Register reg = Reg();
  reg.set_auto_ack(true);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);

  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(64, /*noack=*/true)));
  ASSERT_EQ(sink->registered().size(), 1u);
  EXPECT_TRUE(sink->registered()[0].auto_ack());
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  ExpectEntry(ds[0], 1, 1);
  EXPECT_EQ(ds[0].max_attempts(), 0u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id()), Ack(ds[1].delivery_id())}));
  EXPECT_EQ(Stats().acks, 2u);
  EXPECT_EQ(InFlight(1), 0u);
  EXPECT_THAT(Sent("XACK"), IsEmpty());
  EXPECT_THAT(sink->notices(), IsEmpty());
}

TEST_F(DispatcherTest, RegistrationDisagreeingOnAutoAckFailsPrecondition) {
  Start();
  auto first = Register(1, Reg());
  v1::Register reg = Reg();
  reg.set_auto_ack(true);
  auto second = Register(2, reg);

  ASSERT_TRUE(second->status().has_value());
  EXPECT_THAT(*second->status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("auto_ack")));
  EXPECT_THAT(second->registered(), IsEmpty());
  EXPECT_EQ(first->finish_calls(), 0);
}

// ------------------------------------------------------------ leases

TEST_F(DispatcherTest, ExpiredLeaseDropsTheDelivery) {
  redis_.Append(1, 1);
  Start(FastTickOptions());
  v1::Register reg = Reg(/*max_in_flight=*/1, /*lease_ms=*/1000);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].lease_deadline_unix_ms(), absl::ToUnixMillis(kT0 + absl::Seconds(1)));

  AwaitTickAt(kT0 + absl::Milliseconds(999));
  EXPECT_EQ(InFlight(1), 1u);
  EXPECT_EQ(Stats().lease_expiries, 0u);

  AwaitTickAt(kT0 + absl::Milliseconds(1001));
  EXPECT_EQ(InFlight(1), 0u);
  EXPECT_EQ(Stats().lease_expiries, 1u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id())}));
  const std::vector<v1::Notice> notices = sink->notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].delivery_id(), ds[0].delivery_id());
  EXPECT_EQ(notices[0].code(), v1::Notice::ALREADY_SETTLED);
  EXPECT_EQ(Stats().acks, 0u);
  EXPECT_THAT(Sent("XACK"), IsEmpty());  // stays pending for the reclaimer
}

TEST_F(DispatcherTest, ExtendRenewsTheLeaseInRedisAndHere) {
  redis_.Append(1, 1);
  Start(FastTickOptions());
  v1::Register reg = Reg(/*max_in_flight=*/1, /*lease_ms=*/1000);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);

  AwaitTickAt(kT0 + absl::Milliseconds(500));
  Verbs(1, VerbsOf({Extend(ds[0].delivery_id(), 0)}));  // 0: the registration's lease
  EXPECT_THAT(Sent("XCLAIM"), ElementsAre(ClaimCommand({Id(1)}, /*release=*/false)));
  EXPECT_EQ(Stats().extends, 1u);
  EXPECT_THAT(sink->notices(), IsEmpty());

  AwaitTickAt(kT0 + absl::Milliseconds(1001));  // past the old deadline
  EXPECT_EQ(InFlight(1), 1u);
  EXPECT_EQ(Stats().lease_expiries, 0u);

  AwaitTickAt(kT0 + absl::Milliseconds(1501));  // past the new one
  EXPECT_EQ(InFlight(1), 0u);
  EXPECT_EQ(Stats().lease_expiries, 1u);
}

TEST_F(DispatcherTest, ReclaimedEntryIsDeliveredWithRedisDeliveryCountAsAttempt) {
  Start(FastTickOptions());
  redis_.AddClaimable(7, /*delivery_count=*/3);
  auto sink = Register(1, Reg(/*max_in_flight=*/2, /*lease_ms=*/1000));

  // The first tick, or the one at +1 s, runs the reclaimer.
  AwaitTickAt(kT0 + absl::Seconds(1));
  ASSERT_TRUE(sink->WaitForDeliveries(1, kWait));
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);
  ExpectEntry(ds[0], 7, /*attempt=*/3);
  const std::vector<Command> claims = Sent("XAUTOCLAIM");
  ASSERT_FALSE(claims.empty());
  EXPECT_EQ(claims[0], (Command{"XAUTOCLAIM", kStream, kHandler, kConsumer, "1000", "0-0",
                                "COUNT", "2"}));
  // One XPENDING per reclaimed id, so no other pending entry crowds it out.
  EXPECT_THAT(Sent("XPENDING"),
              ElementsAre(Command{"XPENDING", kStream, kHandler, Id(7), Id(7), "1"}));
  EXPECT_EQ(Stats().reclaimed, 1u);
}

TEST_F(DispatcherTest, ReadAndReclaimNeverAskForTheSameSlots) {
  Start(FastTickOptions());
  commands_->Hold("XAUTOCLAIM");
  auto sink = Register(1, Reg(/*max_in_flight=*/2, /*lease_ms=*/1000));
  ASSERT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(2)));  // found nothing

  // The first tick, or the one at +1 s, sends the reclaimer's XAUTOCLAIM.
  AwaitTickAt(kT0 + absl::Seconds(1));
  ASSERT_EQ(commands_->held("XAUTOCLAIM"), 1u);
  EXPECT_THAT(Sent("XAUTOCLAIM"), ElementsAre(Command{"XAUTOCLAIM", kStream, kHandler, kConsumer,
                                                      "1000", "0-0", "COUNT", "2"}));

  // Both slots are promised to the claim: new entries are not read yet.
  redis_.Append(1, 3);
  Activity(kStream);
  AwaitTickAt(kT0 + absl::Milliseconds(1001));
  EXPECT_EQ(Reads(), 1u);

  // The claim found nothing: the slots go to the main stream.
  ASSERT_EQ(commands_->Release("XAUTOCLAIM"), 1u);
  ASSERT_TRUE(sink->WaitForDeliveries(2, kWait));
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(2), ReadCommand(2)));
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  ExpectEntry(ds[0], 1, 1);
  ExpectEntry(ds[1], 2, 1);
}

// ------------------------------------------------------------ lost groups

TEST_F(DispatcherTest, LostGroupIsRecreatedAfterTheLastEntryRead) {
  redis_.Append(1, 2);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 2u);

  redis_.FlushAll();
  // XREADGROUP → NOGROUP → XGROUP CREATE after the last id read: nothing
  // delivered is replayed, nothing added since the loss is skipped.
  Activity(kStream);
  EXPECT_THAT(Sent("XGROUP"),
              ElementsAre(Command{"XGROUP", "CREATE", kStream, kHandler, "0", "MKSTREAM"},
                          Command{"XGROUP", "CREATE", kStream, kHandler, Id(2), "MKSTREAM"}));
  EXPECT_EQ(Stats().groups_recreated, 1u);
  EXPECT_EQ(Stats().redis_errors, 1u);

  redis_.Append(3, 3);
  Activity(kStream);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 3u);
  ExpectEntry(ds[2], 3, 1);
  EXPECT_EQ(sink->finish_calls(), 0);
}

// Regression (found by this test, fixed in ada3140): when the XGROUP CREATE
// after a NOGROUP failed, the read was retried at once, ignoring
// error_backoff, and the two commands ping-ponged on the loop for as long as
// the failure lasted.
TEST_F(DispatcherTest, FailedGroupRecreationBacksOff) {
  Start();
  auto sink = Register(1, Reg());
  ASSERT_EQ(Reads(), 1u);

  redis_.FlushAll();
  redis_.FailGroupCreate("OOM command not allowed when used memory > 'maxmemory'.");
  Activity(kStream);

  // One failed read, one failed recreation; the next read waits for the
  // error backoff (the injected clock does not move).
  EXPECT_EQ(Reads(), 2u);
  EXPECT_EQ(commands_->count("XGROUP"), 2u);
  EXPECT_EQ(Stats().groups_recreated, 1u);
}

// ------------------------------------------------------------ drain

TEST_F(DispatcherTest, DrainFinishesEverySessionOnceAllSettled) {
  redis_.Append(1, 2);
  Start();
  v1::Register reg = Reg(/*max_in_flight=*/1);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto one = std::make_shared<FakeSessionSink>();
  auto two = std::make_shared<FakeSessionSink>();
  SubscriptionSpec spec1 = Spec(reg);
  SubscriptionSpec spec2 = Spec(reg);
  OnLoop([&](Dispatcher& d) {
    d.Register(1, std::move(spec1), one);
    d.Register(2, std::move(spec2), two);
  });
  ASSERT_EQ(one->deliveries().size(), 1u);
  ASSERT_EQ(two->deliveries().size(), 1u);

  auto done = std::make_shared<absl::Notification>();
  OnLoop([done](Dispatcher& d) { d.Drain(absl::Seconds(30), [done] { done->Notify(); }); });
  for (const auto& sink : {one, two}) {
    const std::vector<v1::Drain> drains = sink->drains();
    ASSERT_EQ(drains.size(), 1u);
    EXPECT_EQ(drains[0].grace_ms(), 30000u);
    EXPECT_EQ(drains[0].reason(), "redrived is shutting down");
    EXPECT_EQ(sink->finish_calls(), 0);
  }
  EXPECT_FALSE(done->HasBeenNotified());

  // No new deliveries while draining.
  const size_t reads = Reads();
  redis_.Append(3, 3);
  Activity(kStream);
  EXPECT_EQ(Reads(), reads);

  Verbs(1, VerbsOf({Ack(one->deliveries()[0].delivery_id())}));
  EXPECT_EQ(one->finish_calls(), 0);  // session 2 still holds one
  EXPECT_EQ(Reads(), reads);
  Verbs(2, VerbsOf({Ack(two->deliveries()[0].delivery_id())}));

  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));
  for (const auto& sink : {one, two}) {
    ASSERT_TRUE(sink->status().has_value());
    EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(sink->finish_calls(), 1);
    EXPECT_EQ(sink->deliveries().size(), 1u);
  }
  std::vector<std::string> acked;
  for (const Command& c : Sent("XACK")) acked.insert(acked.end(), c.begin() + 3, c.end());
  EXPECT_THAT(acked, UnorderedElementsAreArray({Id(1), Id(2)}));
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());
  EXPECT_EQ(Stats().released, 0u);
}

TEST_F(DispatcherTest, DrainReleasesUnsettledDeliveriesAtTheGraceDeadline) {
  redis_.Append(1, 2);
  Start(FastTickOptions());
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);

  auto done = std::make_shared<absl::Notification>();
  OnLoop([done](Dispatcher& d) { d.Drain(absl::Seconds(5), [done] { done->Notify(); }); });
  Verbs(1, VerbsOf({Ack(ds[0].delivery_id())}));

  AwaitTickAt(kT0 + absl::Milliseconds(4999));
  EXPECT_EQ(sink->finish_calls(), 0);
  EXPECT_FALSE(done->HasBeenNotified());
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());

  AwaitTickAt(kT0 + absl::Seconds(5));
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));
  EXPECT_THAT(Sent("XCLAIM"), ElementsAre(ClaimCommand({Id(2)}, /*release=*/true)));
  EXPECT_THAT(Sent("XACK"), ElementsAre(AckCommand({Id(1)})));
  ASSERT_TRUE(sink->status().has_value());
  EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(sink->finish_calls(), 1);
  EXPECT_EQ(Stats().released, 1u);
  EXPECT_EQ(InFlight(1), 0u);
}

// Regression (found by this test, fixed in 54cdf63): a read that was out when
// Drain finished the sessions was delivered when it returned, to sessions
// already finished, and its entries were not released with the rest.
TEST_F(DispatcherTest, ReadReturningAfterDrainFinishedDeliversNothing) {
  redis_.Append(1, 2);
  Start();
  commands_->Hold("XREADGROUP");
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);
  ASSERT_EQ(commands_->held("XREADGROUP"), 1u);

  commands_->Hold("PING");
  auto done = std::make_shared<absl::Notification>();
  OnLoop([done](Dispatcher& d) { d.Drain(absl::Seconds(30), [done] { done->Notify(); }); });
  ASSERT_EQ(sink->finish_calls(), 1);  // nothing was in flight
  // Replies in connection order: the read, then the drain's PING.
  ASSERT_EQ(commands_->Release("XREADGROUP"), 1u);
  Settle();
  ASSERT_EQ(commands_->Release("PING"), 1u);
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));

  EXPECT_THAT(sink->deliveries(), IsEmpty());
  EXPECT_EQ(sink->sends_after_finish(), 0);
  EXPECT_THAT(Sent("XCLAIM"), ElementsAre(ClaimCommand({Id(1), Id(2)}, /*release=*/true)));
}

TEST_F(DispatcherTest, RegistrationDuringDrainIsUnavailable) {
  Start();
  auto done = std::make_shared<absl::Notification>();
  OnLoop([done](Dispatcher& d) { d.Drain(absl::Seconds(1), [done] { done->Notify(); }); });
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));  // nothing to wait for

  auto sink = Register(1, Reg());
  ASSERT_TRUE(sink->status().has_value());
  EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Sent("XGROUP"), IsEmpty());
  EXPECT_EQ(Handlers(), 0u);
}

// ------------------------------------------------------------ notifier

TEST_F(DispatcherTest, StreamActivityAfterShortReadIssuesExactlyOneRead) {
  Start();
  auto sink = Register(1, Reg());
  // The first read found nothing (fewer than asked): reading stops.
  ASSERT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(64)));
  redis_.Append(1, 1);

  // Neither new capacity nor another stream's activity reads again.
  auto other = Register(2, Reg());
  Activity("payments");
  EXPECT_EQ(Reads(), 1u);
  EXPECT_THAT(sink->deliveries(), IsEmpty());

  Activity(kStream);
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(64), ReadCommand(128)));
  const size_t delivered = sink->deliveries().size() + other->deliveries().size();
  EXPECT_EQ(delivered, 1u);
  std::vector<v1::Delivery> ds = sink->deliveries();
  for (const v1::Delivery& d : other->deliveries()) ds.push_back(d);
  ASSERT_EQ(ds.size(), 1u);
  ExpectEntry(ds[0], 1, 1);
}

}  // namespace
}  // namespace redrive
