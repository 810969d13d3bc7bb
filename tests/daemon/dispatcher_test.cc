// Unit tests of the Dispatcher (R-B3..R-B9, R-D8) over fakes: a real
// EventLoop thread, a FakeStreamOps answered by a small model of the one
// stream (StreamModel), a real StreamNotifier over a FakeStreamWatchOps, and
// FakeSessionSinks. No Redis, no argv, no gRPC: deterministic, and free of
// gRPC for ThreadSanitizer (whose reports here are still dominated by
// Debian's uninstrumented abseil: the synchronization of absl::Mutex and
// absl::Notification is invisible to it).
//
// Every dispatcher call runs on the loop thread (RunSync). After a call the
// test waits until no fake answer is in transit (Settle), so what the fakes
// and sinks recorded is final. The tests read the typed records of the
// operations (ReadGroupCall, AckCall, ScheduleRetryCall's op, ...) by field
// name. Timers: the tick is an hour unless a test needs lease expiry or the
// drain deadline; then it is 5 ms and time moves only when the test sets the
// injected clock (AwaitTickAt).
#include "daemon/dispatcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "daemon/event_loop.h"
#include "daemon/keys.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/stream_watch.h"
#include "daemon/retry_fields.h"
#include "daemon/stream_notifier.h"
#include "daemon/subscription.h"
#include "tests/fakes/fake_session_sink.h"
#include "tests/fakes/fake_stream_ops.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace redrive {

// The records the tests compare whole, field by field: ==, and printing for
// gMock's messages, through each type's Fields().
auto Fields(const GroupRef& g) { return std::make_tuple(g.stream, g.group, g.consumer); }
template <typename T>
auto operator==(const T& a, const T& b) -> decltype(Fields(a) == Fields(b)) {
  return Fields(a) == Fields(b);
}
template <typename T>
auto operator<<(std::ostream& os, const T& t) -> decltype(Fields(t), os) {
  return os << ::testing::PrintToString(Fields(t));
}

namespace testing {
using ::redrive::operator==;
using ::redrive::operator<<;
auto Fields(const CreateGroupCall& c) { return std::make_tuple(c.stream, c.group, c.start_id); }
auto Fields(const ReadGroupCall& c) { return std::make_tuple(c.g, c.count, c.no_ack); }
auto Fields(const ClaimCall& c) { return std::make_tuple(c.g, c.min_idle, c.ids); }
auto Fields(const ReadEntryCall& c) { return std::make_tuple(c.stream, c.id); }
auto Fields(const AckCall& c) { return std::make_tuple(c.stream, c.group, c.ids); }
auto Fields(const IdlePendingCall& c) { return std::make_tuple(c.g, c.min_idle, c.count); }
auto Fields(const TouchCall& c) { return std::make_tuple(c.g, c.ids, c.release); }
auto Fields(const EarliestDueCall& c) { return std::make_tuple(c.due_zset); }
auto Fields(const DueBatchCall& c) { return std::make_tuple(c.due_zset, c.limit); }
auto Fields(const TrimRetryCall& c) {
  return std::make_tuple(c.retry_stream, c.limit, c.retention);
}
auto Fields(const HashHasCall& c) { return std::make_tuple(c.key, c.field); }
}  // namespace testing

namespace {

using ::redrive::testing::AckCall;
using ::redrive::testing::BarrierCall;
using ::redrive::testing::ClaimCall;
using ::redrive::testing::CreateGroupCall;
using ::redrive::testing::DeadLetterCall;
using ::redrive::testing::DueBatchCall;
using ::redrive::testing::EarliestDueCall;
using ::redrive::testing::FakeSessionSink;
using ::redrive::testing::FakeStreamOps;
using ::redrive::testing::HashFieldsCall;
using ::redrive::testing::HashHasCall;
using ::redrive::testing::IdlePendingCall;
using ::redrive::testing::MoveDueCall;
using ::redrive::testing::Or;
using ::redrive::testing::PendingConsumersCall;
using ::redrive::testing::ReadEntryCall;
using ::redrive::testing::ReadGroupCall;
using ::redrive::testing::ScheduleRetryCall;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TouchCall;
using ::redrive::testing::TrimRetryCall;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

constexpr char kStream[] = "orders";
constexpr char kHandler[] = "billing";
constexpr char kInstance[] = "i1";
constexpr char kConsumer[] = "billing-i1";
constexpr char kRetryStream[] = "orders.billing.retry";
constexpr char kRetryGroup[] = "billing-retry";
constexpr char kDueZset[] = "orders.billing.retry.due";
constexpr char kScheduled[] = "billing:scheduled";
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
// Entry `n` of kStream as the producer wrote it.
StreamEntry MainEntry(int n) { return StreamEntry{Id(n), {{"__data__", Envelope(n)}}, false}; }

// An error reply of Redis as the typed operations report it.
absl::Status RedisError(const std::string& text) {
  return RedisErrorStatus(RedisReply::Error(text));
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

// The fields of a dead letter or a retry entry, by name.
std::map<std::string, std::string> ByName(const FieldList& fields) {
  return std::map<std::string, std::string>(fields.begin(), fields.end());
}

// ------------------------------------------------------------ fake Redis

// The Redis side of kStream that the FakeStreamOps answers from: the main
// stream's entries (entry n has id "<n>-0"), its groups' read positions, the
// entries idle past any lease per consumer, the handler's retry stream, the
// due zset, the fields of {redrive}:paused and the scripts' outcomes. What
// it does not model answers the fake's default (OK, nothing). Loop thread
// only: tests change it through DispatcherTest::Redis.
struct StreamModel {
  std::vector<int> entries;
  std::map<std::string, size_t> groups;             // group → index of its next entry
  std::map<std::string, std::vector<int>> pending;  // consumer → entries idle past any lease
  std::optional<std::vector<StreamEntry>> retry;    // unread retry entries (the group exists)
  std::multimap<int64_t, std::string> due;          // due time (ms) → member
  std::set<std::string> paused;
  absl::Status create_error;  // what XGROUP CREATE answers (a group that exists is OK)
  DeadLetterResult dead_letter{DeadLetterResult::Kind::kDeadLettered, "900-0", 0};
  TrimRetryResult trim;

  void Append(int first, int last) {
    for (int n = first; n <= last; ++n) entries.push_back(n);
  }
  bool Has(const std::string& stream, const std::string& id) const {
    return stream == kStream && std::count(entries.begin(), entries.end(), Seq(id)) > 0;
  }

  void Program(FakeStreamOps& ops) {
    using testing::HashPairs;
    ops.Answer<HashHasCall>([this](const HashHasCall& c) { return paused.count(c.field) > 0; });
    ops.Answer<HashFieldsCall>([this](const HashFieldsCall&) {
      HashPairs out;
      for (const std::string& f : paused) out.emplace_back(f, "1");
      return out;
    });
    ops.Answer<CreateGroupCall>([this](const CreateGroupCall& c) {
      if (create_error.ok() && groups.count(c.group) == 0) {  // after start_id ("$": the end)
        const int start = c.start_id == "$" ? INT_MAX : Seq(c.start_id);
        groups[c.group] = static_cast<size_t>(
            std::upper_bound(entries.begin(), entries.end(), start) - entries.begin());
      }
      return create_error;
    });
    ops.Answer<ReadGroupCall>([this](const ReadGroupCall& c) -> Or<std::vector<StreamEntry>> {
      std::vector<StreamEntry> out;
      const absl::Status no_group = RedisError("NOGROUP No such key or consumer group");
      if (c.g.stream == kRetryStream) {
        if (!retry.has_value()) return no_group;
        while (out.size() < c.count && !retry->empty()) {
          out.push_back(retry->front());
          retry->erase(retry->begin());
        }
        return out;
      }
      auto group = groups.find(c.g.group);
      if (group == groups.end()) return no_group;
      while (out.size() < c.count && group->second < entries.size()) {
        out.push_back(MainEntry(entries[group->second++]));
      }
      return out;
    });
    ops.Answer<ClaimCall>([this](const ClaimCall& c) {  // the entries that still exist
      std::vector<StreamEntry> out;
      for (const std::string& id : c.ids) {
        if (Has(c.g.stream, id)) out.push_back(MainEntry(Seq(id)));
      }
      return out;
    });
    ops.Answer<ReadEntryCall>([this](const ReadEntryCall& c) -> Or<std::optional<StreamEntry>> {
      if (!Has(c.stream, c.id)) return std::optional<StreamEntry>();
      return std::make_optional(MainEntry(Seq(c.id)));
    });
    ops.Answer<PendingConsumersCall>([this](const PendingConsumersCall& c) {
      std::vector<std::string> out;
      for (const auto& [consumer, ids] : pending) {
        if (c.stream == kStream && !ids.empty()) out.push_back(consumer);
      }
      return out;
    });
    ops.Answer<IdlePendingCall>([this](const IdlePendingCall& c) {
      std::vector<std::string> out;
      for (int n : pending[c.g.consumer]) out.push_back(Id(n));
      return out;
    });
    ops.Answer<EarliestDueCall>([this](const EarliestDueCall&) -> Or<std::optional<DueEntry>> {
      if (due.empty()) return std::optional<DueEntry>();
      return std::make_optional(DueEntry{due.begin()->second, due.begin()->first});
    });
    ops.Answer<DueBatchCall>([this](const DueBatchCall& c) {
      std::vector<DueEntry> out;
      for (auto it = due.begin(); it != due.end() && out.size() < c.limit; ++it) {
        out.push_back(DueEntry{it->second, it->first});
      }
      return out;
    });
    // Due at kT0 (Redis's clock here) + the delay.
    ops.Answer<ScheduleRetryCall>([](const ScheduleRetryCall& c) {
      return ScheduleRetryResult{ScheduleRetryResult::Kind::kScheduled, kT0 + c.op.delay};
    });
    ops.Answer<MoveDueCall>([](const MoveDueCall&) {
      return MoveDueResult{MoveDueResult::Kind::kMoved, "800-0"};
    });
    ops.Answer<DeadLetterCall>([this](const DeadLetterCall& c) {
      // Dead-lettered: the script acked the entry, so no sweep sees it any more.
      if (dead_letter.kind == DeadLetterResult::Kind::kDeadLettered) {
        for (auto& [consumer, ids] : pending) {
          ids.erase(std::remove(ids.begin(), ids.end(), Seq(c.op.id)), ids.end());
        }
      }
      return dead_letter;
    });
    ops.Answer<TrimRetryCall>([this](const TrimRetryCall&) { return trim; });
  }
};

// The notifier's side: LastId answers "0-0" (it only feeds the notifier's
// XREAD), later through the loop, and while `hold` only on Release();
// WaitForEntries never returns: activity is reported by the tests calling
// OnStreamActivity. Unblock answers true. Loop thread only.
class FakeStreamWatchOps final : public StreamWatchOps {
 public:
  explicit FakeStreamWatchOps(EventLoop& loop) : loop_(loop) {}
  ~FakeStreamWatchOps() override { *alive_ = false; }

  void LastId(const std::string& stream, OpCallback<std::string> done) override {
    last_id_streams.push_back(stream);
    held.push_back([done = std::move(done)] { done(std::string("0-0")); });
    if (!hold) Release();
  }
  void WaitForEntries(const std::vector<StreamCursor>&, absl::Duration,
                      OpCallback<std::vector<StreamCursor>>) override {}
  void Unblock(int64_t, OpCallback<bool> done) override {
    Post([done] { done(true); });
  }
  bool blocking_connected() const override { return true; }
  // Posts the parked answers, oldest first; how many.
  size_t Release() {
    hold = false;
    for (auto& answer : held) Post(std::move(answer));
    return std::exchange(held, {}).size();
  }

  std::vector<std::string> last_id_streams;  // in call order
  bool hold = false;
  std::vector<std::function<void()>> held;
  size_t in_transit = 0;

 private:
  void Post(std::function<void()> answer) {
    ++in_transit;
    loop_.Post([this, alive = alive_, answer = std::move(answer)] {
      if (*alive) --in_transit;
      answer();
    });
  }

  EventLoop& loop_;
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
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

// A registration that starts with the whole backlog (the usual test set-up).
v1::Register BacklogReg(uint32_t max_in_flight = 0, uint32_t lease_ms = 0) {
  v1::Register r = Reg(max_in_flight, lease_ms);
  r.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
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
      ops_.reset();
      notifier_.reset();
      watch_ops_.reset();
    });
  }

  DispatcherOptions Options() {
    DispatcherOptions o;
    o.instance_id = kInstance;
    o.tick = absl::Hours(1);
    o.now = [this] { return clock_.Now(); };
    o.unit_random = [] { return 0.0; };  // backoff without jitter
    return o;
  }
  DispatcherOptions FastTickOptions() {
    DispatcherOptions o = Options();
    o.tick = absl::Milliseconds(5);
    return o;
  }

  void Start(DispatcherOptions options) {
    loop_.RunSync([this, &options] {
      ops_ = std::make_unique<FakeStreamOps>(loop_);
      redis_.Program(*ops_);
      watch_ops_ = std::make_unique<FakeStreamWatchOps>(loop_);
      notifier_ = std::make_unique<StreamNotifier>(*watch_ops_, [this](const std::string& stream) {
        if (dispatcher_ != nullptr) dispatcher_->OnStreamActivity(stream);
      });
      dispatcher_ = std::make_unique<Dispatcher>(loop_, *ops_, *notifier_, std::move(options));
      notifier_->OnBlockingConnected(kBlockingClientId);
    });
  }
  void Start() { Start(Options()); }

  // Changes the model of Redis on the loop thread, where it answers.
  void Redis(const std::function<void(StreamModel&)>& change) {
    loop_.RunSync([&] { change(redis_); });
  }
  // Appends entries `first`..`last` (ids "<n>-0") to kStream.
  void Append(int first, int last) {
    Redis([=](StreamModel& r) { r.Append(first, last); });
  }

  // Runs `fn` on the loop thread with the dispatcher, then waits until no
  // answer is in transit.
  void OnLoop(const std::function<void(Dispatcher&)>& fn) {
    loop_.RunSync([&] { fn(*dispatcher_); });
    Settle();
  }

  void Settle() {
    for (int i = 0; i < 10000; ++i) {
      bool idle = false;
      loop_.RunSync([&] { idle = ops_->in_transit() == 0 && watch_ops_->in_transit == 0; });
      if (idle) return;
    }
    ADD_FAILURE() << "answers kept coming: the dispatcher never went idle";
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

  // Two sessions of one handler, registered in the same loop turn.
  std::pair<std::shared_ptr<FakeSessionSink>, std::shared_ptr<FakeSessionSink>> RegisterTwo(
      const v1::Register& reg) {
    auto one = std::make_shared<FakeSessionSink>();
    auto two = std::make_shared<FakeSessionSink>();
    SubscriptionSpec spec1 = Spec(reg);
    SubscriptionSpec spec2 = Spec(reg);
    OnLoop([&](Dispatcher& d) {
      d.Register(1, std::move(spec1), one);
      d.Register(2, std::move(spec2), two);
    });
    return {one, two};
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
  // (and the answers it caused arrived). Only for FastTickOptions.
  void AwaitTickAt(absl::Time t) {
    clock_.Set(t);
    // Whatever ran before this point saw the old time; the next read of the
    // clock comes from a later loop callback, i.e. the next tick.
    loop_.RunSync([this] { clock_.ResetReads(); });
    ASSERT_TRUE(clock_.AwaitRead(kWait)) << "no tick";
    loop_.RunSync([] {});  // that tick has finished
    Settle();
  }

  // The calls of one operation so far, oldest first.
  template <typename R>
  std::vector<R> Calls() {
    std::vector<R> calls;
    loop_.RunSync([&] { calls = ops_->calls<R>(); });
    return calls;
  }
  template <typename R>
  bool WaitForCalls(size_t n) {
    return ::redrive::testing::WaitFor([&] { return Calls<R>().size() >= n; }, kWait);
  }
  // The operations called so far, in call order, as Op<R>() names them:
  // all, or only those of the listed records.
  template <typename... R>
  std::vector<std::string> Order() {
    const std::set<std::string> only = {Op<R>()...};
    std::vector<std::string> order;
    loop_.RunSync([&] {
      for (const std::string& op : ops_->order()) {
        if (only.empty() || only.count(op) > 0) order.push_back(op);
      }
    });
    return order;
  }
  // Parks the answers of one operation; Release posts them (how many).
  template <typename R>
  void Hold() {
    loop_.RunSync([this] { ops_->Hold<R>(); });
  }
  template <typename R>
  size_t Held() {
    size_t n = 0;
    loop_.RunSync([&] { n = ops_->held<R>(); });
    return n;
  }
  template <typename R>
  size_t Release() {
    size_t n = 0;
    loop_.RunSync([&] { n = ops_->Release<R>(); });
    return n;
  }
  template <typename R>
  static std::string Op() {
    return typeid(R).name();
  }
  // The streams whose newest id the notifier asked for (to watch them).
  std::vector<std::string> LastIdStreams() {
    std::vector<std::string> streams;
    loop_.RunSync([&] { streams = watch_ops_->last_id_streams; });
    return streams;
  }

  // Reads of the main stream (RetryReads() has the rest).
  std::vector<ReadGroupCall> MainReads() {
    std::vector<ReadGroupCall> main;
    for (ReadGroupCall& c : Calls<ReadGroupCall>()) {
      if (c.g.stream == kStream) main.push_back(std::move(c));
    }
    return main;
  }
  std::vector<ReadGroupCall> RetryReads() {
    std::vector<ReadGroupCall> retry;
    for (ReadGroupCall& c : Calls<ReadGroupCall>()) {
      if (c.g.stream != kStream) retry.push_back(std::move(c));
    }
    return retry;
  }
  size_t Reads() { return MainReads().size(); }
  // The entry ids the schedule script was called for with `outcome`.
  std::vector<std::string> ScheduledIds(absl::string_view outcome) {
    std::vector<std::string> ids;
    for (const ScheduleRetryCall& c : Calls<ScheduleRetryCall>()) {
      absl::StatusOr<DueMember> m = DecodeDueMember(c.op.member);
      EXPECT_TRUE(m.ok());
      if (m.ok() && m->failure.outcome == outcome) ids.push_back(m->entry_id);
    }
    return ids;
  }

  static ReadGroupCall ReadOf(uint32_t count, bool no_ack = false) {
    return ReadGroupCall{GroupRef{kStream, kHandler, kConsumer}, count, no_ack};
  }
  static AckCall AckOf(std::vector<std::string> ids) {
    return AckCall{kStream, kHandler, std::move(ids)};
  }

  StreamModel redis_;  // loop thread only
  TestClock clock_;
  EventLoop loop_;
  // Loop thread only (created and destroyed there).
  std::unique_ptr<FakeStreamOps> ops_;
  std::unique_ptr<FakeStreamWatchOps> watch_ops_;
  std::unique_ptr<StreamNotifier> notifier_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

// ------------------------------------------------------------ registration

TEST_F(DispatcherTest, RegistrationCreatesGroupAtNewEntriesAndSendsRegisteredOnce) {
  Start();
  auto sink = Register(1, Reg());

  EXPECT_THAT(Calls<CreateGroupCall>(), ElementsAre(CreateGroupCall{kStream, kHandler, "$"}));
  // Both of the handler's streams are watched; the retry group does not
  // exist before the first retry, so its one read finds NOGROUP and stops.
  EXPECT_THAT(LastIdStreams(), ElementsAre(kStream, kRetryStream));
  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(64)));
  EXPECT_THAT(RetryReads(), ElementsAre(ReadGroupCall{
                                GroupRef{kRetryStream, kRetryGroup, kConsumer}, 64, false}));
  EXPECT_EQ(Stats().groups_recreated, 0u);
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
  EXPECT_EQ(Watched(), 2u);
}

TEST_F(DispatcherTest, StartBacklogCreatesGroupAtZeroAndDeliversHistory) {
  Append(1, 2);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);

  EXPECT_THAT(Calls<CreateGroupCall>(), ElementsAre(CreateGroupCall{kStream, kHandler, "0"}));
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
  Append(1, 3);
  Start();
  v1::Register reg = Reg();
  reg.mutable_start()->set_kind(v1::StartPosition::START_AT_ID);
  reg.mutable_start()->set_entry_id("2-0");
  auto sink = Register(1, reg);

  EXPECT_THAT(Calls<CreateGroupCall>(), ElementsAre(CreateGroupCall{kStream, kHandler, "2-0"}));
  ASSERT_EQ(sink->registered().size(), 1u);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);
  ExpectEntry(ds[0], 3, 1);
}

TEST_F(DispatcherTest, ExistingGroupKeepsItsPosition) {
  Append(1, 3);
  // BUSYGROUP: entries 1 and 2 were consumed
  Redis([](StreamModel& r) { r.groups[kHandler] = 2; });
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);

  EXPECT_EQ(sink->finish_calls(), 0);
  ASSERT_EQ(sink->registered().size(), 1u);
  EXPECT_EQ(sink->registered()[0].names().group(), kHandler);
  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(64)));
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);
  ExpectEntry(ds[0], 3, 1);
}

TEST_F(DispatcherTest, KeyThatIsNotAStreamFinishesWithFailedPrecondition) {
  Redis([](StreamModel& r) {
    r.create_error =
        RedisError("WRONGTYPE Operation against a key holding the wrong kind of value");
  });
  Start();
  auto sink = Register(1, Reg());

  ASSERT_TRUE(sink->status().has_value());
  EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("'orders' exists and is not a stream")));
  EXPECT_EQ(sink->finish_calls(), 1);
  EXPECT_THAT(sink->responses(), IsEmpty());  // no Registered
  // The pause flag is read first; nothing is recorded in the handler registry.
  EXPECT_THAT(Order(), ElementsAre(Op<HashHasCall>(), Op<CreateGroupCall>()));
  EXPECT_THAT(Calls<HashHasCall>(), ElementsAre(HashHasCall{"{redrive}:paused", "orders billing"}));
  EXPECT_THAT(Calls<CreateGroupCall>(), ElementsAre(CreateGroupCall{kStream, kHandler, "$"}));
  EXPECT_THAT(LastIdStreams(), IsEmpty());
  EXPECT_EQ(Handlers(), 0u);
  EXPECT_EQ(Watched(), 0u);
}

TEST_F(DispatcherTest, SecondSessionOfReadyHandlerIsRegisteredWithoutNewGroupCreate) {
  Start();
  auto first = Register(1, Reg());
  auto second = Register(2, Reg());

  EXPECT_EQ(Calls<CreateGroupCall>().size(), 1u);
  EXPECT_EQ(first->registered().size(), 1u);
  ASSERT_EQ(second->registered().size(), 1u);
  EXPECT_EQ(second->registered()[0].names().consumer(), kConsumer);
  EXPECT_EQ(Handlers(), 1u);
}

// ------------------------------------------------------------ flow control

TEST_F(DispatcherTest, ReadsNoMoreThanFreeSlots) {
  Append(1, 10);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/3);
  auto sink = Register(1, reg);

  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(3)));
  std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 3u);
  for (int i = 0; i < 3; ++i) ExpectEntry(ds[i], i + 1, 1);
  EXPECT_EQ(InFlight(1), 3u);

  // Even with the notifier reporting entries, a full session gets no read.
  Activity(kStream);
  EXPECT_EQ(Reads(), 1u);
  EXPECT_EQ(sink->deliveries().size(), 3u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id())}));
  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(3), ReadOf(1)));
  ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 4u);
  ExpectEntry(ds[3], 4, 1);
  EXPECT_EQ(InFlight(1), 3u);
  EXPECT_EQ(Stats().deliveries, 4u);
}

// ------------------------------------------------------------ verbs

TEST_F(DispatcherTest, AcksOfOneVerbsMessageBecomeOneXack) {
  Append(1, 3);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 3u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id()), Ack(ds[1].delivery_id()), Ack(ds[2].delivery_id())}));
  ASSERT_TRUE(WaitForCalls<AckCall>(1));
  EXPECT_THAT(Calls<AckCall>(), ElementsAre(AckOf({Id(1), Id(2), Id(3)})));
  EXPECT_THAT(sink->notices(), IsEmpty());
  EXPECT_EQ(InFlight(1), 0u);
  EXPECT_EQ(Stats().acks, 3u);
}

TEST_F(DispatcherTest, RepeatedAckIsSilentAndAcknowledgedOnce) {
  Append(1, 3);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 3u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id())}));
  ASSERT_TRUE(WaitForCalls<AckCall>(1));
  // The repeat travels with a fresh ACK: if it queued anything, the next
  // XACK (which flushes everything queued) would name entry 1 again.
  Verbs(1, VerbsOf({Ack(ds[0].delivery_id()), Ack(ds[1].delivery_id())}));
  ASSERT_TRUE(WaitForCalls<AckCall>(2));

  EXPECT_THAT(Calls<AckCall>(), ElementsAre(AckOf({Id(1)}), AckOf({Id(2)})));
  EXPECT_THAT(sink->notices(), IsEmpty());
  EXPECT_EQ(Stats().acks, 2u);
  EXPECT_EQ(Stats().notices, 0u);
}

TEST_F(DispatcherTest, UnknownDeliveryGetsNotice) {
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
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
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
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
  Append(1, 2);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/1);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);

  Verbs(1, VerbsOf({Nack(sink->deliveries()[0].delivery_id())}));
  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(1), ReadOf(1)));
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  ExpectEntry(ds[1], 2, 1);
  EXPECT_EQ(Stats().nacks, 1u);

  // Entry 1 stays pending: the next XACK (which flushes everything queued)
  // names entry 2 only.
  Verbs(1, VerbsOf({Ack(ds[1].delivery_id())}));
  ASSERT_TRUE(WaitForCalls<AckCall>(1));
  EXPECT_THAT(Calls<AckCall>(), ElementsAre(AckOf({Id(2)})));
}

TEST_F(DispatcherTest, TerminateDeadLettersTheEntryWithItsProvenance) {
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  const uint64_t id = sink->deliveries()[0].delivery_id();

  v1::Verb terminate;
  terminate.set_delivery_id(id);
  terminate.mutable_terminate()->set_reason("cannot parse");
  terminate.mutable_terminate()->set_error_code("E_PARSE");
  Verbs(1, VerbsOf({terminate}));
  ASSERT_TRUE(WaitForCalls<DeadLetterCall>(1));
  Settle();
  // The entry is read again, then moved by one script that checks it is
  // still ours, adds the dead letter and acks the source (no XACK here).
  EXPECT_THAT(Calls<ReadEntryCall>(), ElementsAre(ReadEntryCall{kStream, Id(1)}));
  const std::vector<DeadLetterCall> calls = Calls<DeadLetterCall>();
  ASSERT_EQ(calls.size(), 1u);
  const DeadLetterOp& op = calls[0].op;
  EXPECT_EQ(op.from, (GroupRef{kStream, kHandler, kConsumer}));
  EXPECT_EQ(op.dlq_stream, "orders.billing.dlq");
  EXPECT_EQ(op.id, Id(1));
  EXPECT_EQ(op.max_len, 0u);
  EXPECT_FALSE(op.hold_when_full);  // evict
  std::map<std::string, std::string> f = ByName(op.fields);
  EXPECT_EQ(f["x-redrive-reason"], "terminated");
  EXPECT_EQ(f["x-redrive-channel"], kStream);
  EXPECT_EQ(f["x-redrive-handler"], kHandler);
  EXPECT_EQ(f["x-redrive-source-stream"], kStream);
  EXPECT_EQ(f["x-redrive-source-id"], Id(1));
  EXPECT_EQ(f["x-redrive-original-id"], Id(1));
  EXPECT_EQ(f["x-redrive-attempts"], "1");
  EXPECT_EQ(f["x-redrive-last-error"], "cannot parse");
  EXPECT_EQ(f["x-redrive-last-error-code"], "E_PARSE");
  EXPECT_EQ(f["x-redrive-first-failure-ms"], absl::StrCat(absl::ToUnixMillis(kT0)));
  EXPECT_EQ(f["x-redrive-dead-lettered-ms"], absl::StrCat(absl::ToUnixMillis(kT0)));
  EXPECT_EQ(f["x-redrive-history"],
            "[{\"at_ms\":1700000000000,\"attempt\":1,\"consumer\":\"billing-i1\","
            "\"error\":\"cannot parse\",\"error_code\":\"E_PARSE\",\"outcome\":\"terminated\"}]");
  // A JSON object body carries EggAI's keys; the headers are kept.
  absl::StatusOr<DecodedEntry> data = DecodeDataValue(f["__data__"]);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->body,
            "{\"n\":1,\"_retry_count\":\"0\",\"_original_message_id\":\"1-0\",\"_dlq_source\":"
            "\"orders\",\"_dlq_handler\":\"billing\",\"_dlq_at\":\"2023-11-14T22:13:20.000+00:00\","
            "\"_dlq_reason\":\"terminated\",\"_dlq_retries\":\"0\"}");
  EXPECT_THAT(data->headers,
              ElementsAre(std::pair<std::string, std::string>("content-type", "application/json"),
                          std::pair<std::string, std::string>("x-seq", "1")));
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  EXPECT_EQ(Stats().terminates, 1u);
  EXPECT_EQ(Stats().dead_letters, 1u);
  EXPECT_EQ(InFlight(1), 0u);

  Verbs(1, VerbsOf({Ack(id)}));  // an ACK after TERMINATE is not a repeat
  const std::vector<v1::Notice> notices = sink->notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].code(), v1::Notice::ALREADY_SETTLED);
}

TEST_F(DispatcherTest, NackSchedulesTheRetryAfterTheBackoffOrTheNacksDelay) {
  Append(1, 2);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  v1::Verb delayed = Nack(ds[1].delivery_id());
  delayed.mutable_nack()->set_error_code("E_BUSY");
  delayed.mutable_nack()->set_delay_ms(250);
  Verbs(1, VerbsOf({Nack(ds[0].delivery_id()), delayed}));
  Settle();

  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 2u);
  const int64_t t0 = absl::ToUnixMillis(kT0);
  // Default policy: the first retry after 1000 ms (jitter fixed at 0 here).
  for (const ScheduleRetryCall& c : calls) {
    EXPECT_EQ(c.op.owner, (GroupRef{kStream, kHandler, kConsumer}));
    EXPECT_EQ(c.op.due_zset, kDueZset);
    EXPECT_EQ(c.op.scheduled_consumer, kScheduled);
  }
  EXPECT_EQ(calls[0].op.id, Id(1));
  EXPECT_EQ(calls[0].op.delay, absl::Milliseconds(1000));
  EXPECT_EQ(calls[1].op.id, Id(2));
  EXPECT_EQ(calls[1].op.delay, absl::Milliseconds(250));
  absl::StatusOr<DueMember> first = DecodeDueMember(calls[0].op.member);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->source, 0);
  EXPECT_EQ(first->entry_id, Id(1));
  EXPECT_EQ(first->failure.attempt, 1u);
  EXPECT_EQ(first->failure.outcome, "nack");
  EXPECT_EQ(first->failure.error, "boom");
  EXPECT_EQ(first->failure.consumer, kConsumer);
  EXPECT_EQ(first->failure.at_ms, t0);
  absl::StatusOr<DueMember> second = DecodeDueMember(calls[1].op.member);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->failure.error_code, "E_BUSY");
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());
  EXPECT_EQ(Stats().retries_scheduled, 2u);
  EXPECT_EQ(InFlight(1), 0u);
}

// Review finding: a dead letter held by the DLQ cap stayed pending under our
// consumer, and the next sweep turned the TERMINATE into a retry.
TEST_F(DispatcherTest, HeldDeadLetterIsTriedAgainAndNeverSweptIntoARetry) {
  Append(1, 1);
  Redis([](StreamModel& r) {
    r.groups[kHandler] = 0;
    r.dead_letter = {DeadLetterResult::Kind::kHeld, "", 0};
  });
  Start(FastTickOptions());
  v1::Register reg = BacklogReg(/*max_in_flight=*/1, /*lease_ms=*/1000);
  reg.mutable_dead_letter_policy()->set_max_len(1);
  reg.mutable_dead_letter_policy()->set_overflow(v1::DeadLetterPolicy::OVERFLOW_HOLD);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  v1::Verb terminate;
  terminate.set_delivery_id(sink->deliveries()[0].delivery_id());
  terminate.mutable_terminate()->set_reason("bad order");
  Verbs(1, VerbsOf({terminate}));
  ASSERT_TRUE(WaitForCalls<DeadLetterCall>(1));
  Settle();
  EXPECT_EQ(Stats().dlq_held, 1u);

  // Idle past the lease under our consumer: the sweep sees it and skips it.
  Redis([](StreamModel& r) { r.pending[kConsumer] = {1}; });
  AwaitTickAt(kT0 + absl::Seconds(2));
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());

  // A sweep period later the dead letter is tried again, still "terminated".
  Redis([](StreamModel& r) {
    r.dead_letter = {DeadLetterResult::Kind::kDeadLettered, "900-0", 0};
  });
  AwaitTickAt(kT0 + absl::Seconds(6));
  ASSERT_TRUE(WaitForCalls<DeadLetterCall>(2));
  Settle();
  const std::vector<DeadLetterCall> calls = Calls<DeadLetterCall>();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(ByName(calls[1].op.fields)["x-redrive-reason"], "terminated");
  EXPECT_EQ(ByName(calls[1].op.fields)["x-redrive-last-error"], "bad order");
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  EXPECT_EQ(Stats().dead_letters, 1u);
}

TEST_F(DispatcherTest, NackPastMaxRetriesDeadLettersWithoutScheduling) {
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
  reg.mutable_retry_policy()->set_max_retries(0);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  EXPECT_EQ(sink->deliveries()[0].max_attempts(), 1u);
  Verbs(1, VerbsOf({Nack(sink->deliveries()[0].delivery_id())}));
  ASSERT_TRUE(WaitForCalls<DeadLetterCall>(1));
  Settle();
  EXPECT_THAT(Calls<ScheduleRetryCall>(), IsEmpty());
  const std::vector<DeadLetterCall> calls = Calls<DeadLetterCall>();
  ASSERT_EQ(calls.size(), 1u);
  std::map<std::string, std::string> f = ByName(calls[0].op.fields);
  EXPECT_EQ(f["x-redrive-reason"], "max_retries");
  EXPECT_EQ(f["x-redrive-last-error"], "boom");
  EXPECT_EQ(f["x-redrive-attempts"], "1");
}

TEST_F(DispatcherTest, VerbWithoutActionGetsInvalidVerbNotice) {
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
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
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);

  OnLoop([](Dispatcher& d) { d.Stop(1); });
  Append(2, 3);
  Activity(kStream);
  EXPECT_EQ(Reads(), 1u);

  Verbs(1, VerbsOf({Ack(sink->deliveries()[0].delivery_id())}));
  ASSERT_TRUE(WaitForCalls<AckCall>(1));
  EXPECT_THAT(Calls<AckCall>(), ElementsAre(AckOf({Id(1)})));
  EXPECT_EQ(Reads(), 1u);
  EXPECT_EQ(sink->deliveries().size(), 1u);
}

TEST_F(DispatcherTest, PausedHandlerReadsNothingUntilResumedAndStillSettles) {
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);

  OnLoop([](Dispatcher& d) { d.SetPaused(kStream, kHandler, true); });
  Append(2, 3);
  Activity(kStream);
  EXPECT_EQ(Reads(), 1u);  // paused: no read however much arrives
  Verbs(1, VerbsOf({Ack(sink->deliveries()[0].delivery_id())}));
  ASSERT_TRUE(WaitForCalls<AckCall>(1));
  EXPECT_EQ(Reads(), 1u);
  EXPECT_EQ(sink->deliveries().size(), 1u);

  OnLoop([](Dispatcher& d) { d.SetPaused(kStream, kHandler, false); });
  EXPECT_EQ(Reads(), 2u);
  ASSERT_EQ(sink->deliveries().size(), 3u);
  ExpectEntry(sink->deliveries()[1], 2, 1);
}

TEST_F(DispatcherTest, PauseSetInRedisAppliesBeforeTheFirstRead) {
  Append(1, 2);
  Redis([](StreamModel& r) { r.paused.insert("orders billing"); });
  DispatcherOptions options = FastTickOptions();
  options.pause_poll = absl::ZeroDuration();  // every tick (the fake clock stands still)
  Start(options);
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  EXPECT_EQ(sink->registered().size(), 1u);
  EXPECT_EQ(Reads(), 0u);
  EXPECT_TRUE(sink->deliveries().empty());
  // Another daemon's resume is picked up by the poll of {redrive}:paused.
  Redis([](StreamModel& r) { r.paused.erase("orders billing"); });
  ASSERT_TRUE(::redrive::testing::WaitFor([&] { return sink->deliveries().size() == 2; },
                                          absl::Seconds(5)));
  EXPECT_GE(Calls<HashFieldsCall>().size(), 1u);
}

// ------------------------------------------------------------ sessions

TEST_F(DispatcherTest, DisconnectFailsEachUnsettledDeliveryForAnImmediateRetry) {
  Append(1, 6);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/3);
  auto [one, two] = RegisterTwo(reg);

  // Split: each session full (3 + 3), every entry exactly once.
  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(6)));
  const std::vector<v1::Delivery> first = one->deliveries();
  const std::vector<v1::Delivery> second = two->deliveries();
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(second.size(), 3u);
  std::vector<std::string> all = EntryIds(first);
  for (const std::string& id : EntryIds(second)) all.push_back(id);
  EXPECT_THAT(all, UnorderedElementsAreArray({Id(1), Id(2), Id(3), Id(4), Id(5), Id(6)}));

  // Session 1 ends holding 3 (R-B7): each is a failed attempt, due at once,
  // so any stream of the handler (here or on another daemon) gets it from
  // the retry stream within a tick; nothing is released or held here.
  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(calls[i].op.id, first[i].entry_id());
    EXPECT_EQ(calls[i].op.delay, absl::ZeroDuration());  // no backoff: at once
    absl::StatusOr<DueMember> m = DecodeDueMember(calls[i].op.member);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->failure.outcome, "disconnected");
    EXPECT_EQ(m->failure.error, "consumer disconnected");
    EXPECT_EQ(m->failure.error_code, "DISCONNECTED");
    EXPECT_EQ(m->failure.attempt, 1u);
  }
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  EXPECT_EQ(Handlers(), 1u);
  EXPECT_EQ(two->deliveries().size(), 3u);
  EXPECT_EQ(Stats().disconnect_failures, 3u);
  EXPECT_EQ(Stats().released, 0u);
}

TEST_F(DispatcherTest, DisconnectOfLastSessionSchedulesDeliveriesAndRemovesHandler) {
  Append(1, 2);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/5);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 2u);
  ASSERT_EQ(Watched(), 2u);

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].op.id, Id(1));
  EXPECT_EQ(calls[1].op.id, Id(2));
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());
  EXPECT_EQ(Handlers(), 0u);
  EXPECT_EQ(Watched(), 0u);
  EXPECT_EQ(Stats().retries_scheduled, 2u);
  EXPECT_EQ(sink->deliveries().size(), 2u);
}

TEST_F(DispatcherTest, DisconnectWhileReadIsOutHandsBackWhatTheReadReturns) {
  Append(1, 2);
  Start();
  Hold<ReadGroupCall>();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(Held<ReadGroupCall>(), 1u);

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  EXPECT_EQ(Handlers(), 0u);
  ASSERT_EQ(Release<ReadGroupCall>(), 1u);
  Settle();

  // Never delivered: handed back through the retry path at once, without
  // counting a failed attempt.
  EXPECT_THAT(ScheduledIds("returned"), ElementsAre(Id(1), Id(2)));
  for (const ScheduleRetryCall& c : Calls<ScheduleRetryCall>()) {
    EXPECT_EQ(c.op.delay, absl::ZeroDuration());
  }
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  EXPECT_THAT(sink->deliveries(), IsEmpty());
  EXPECT_EQ(Stats().returned, 2u);
}

// Regression (found by this test, fixed in ada3140): a handler whose last
// session left while the notifier's Watch (XREVRANGE) was still out was
// removed without Unwatch (it was not `ready` yet), so the notifier kept
// watching the stream forever.
TEST_F(DispatcherTest, DisconnectWhileWatchIsPendingStillUnwatches) {
  Start();
  loop_.RunSync([this] { watch_ops_->hold = true; });
  auto sink = Register(1, Reg());
  size_t held = 0;
  loop_.RunSync([&] { held = watch_ops_->held.size(); });
  ASSERT_EQ(held, 1u);                        // the newest id of kStream
  EXPECT_THAT(sink->responses(), IsEmpty());  // not ready yet

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  loop_.RunSync([&] { held = watch_ops_->Release(); });
  ASSERT_EQ(held, 1u);
  Settle();

  EXPECT_EQ(Handlers(), 0u);
  EXPECT_THAT(sink->responses(), IsEmpty());
  EXPECT_THAT(MainReads(), IsEmpty());
  EXPECT_EQ(Watched(), 0u);
}

// ------------------------------------------------------------ auto-ack

TEST_F(DispatcherTest, AutoAckReadsWithNoackAndNeverAcks) {
  Append(1, 2);
  DispatcherOptions options = Options();
  options.ack_batch = 1;  // any queued XACK would go out inside Verbs
  Start(std::move(options));
  v1::Register reg = Reg();
  reg.set_auto_ack(true);
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sink = Register(1, reg);

  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(64, /*no_ack=*/true)));
  ASSERT_EQ(sink->registered().size(), 1u);
  EXPECT_TRUE(sink->registered()[0].auto_ack());
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  ExpectEntry(ds[0], 1, 1);
  EXPECT_EQ(ds[0].max_attempts(), 0u);

  Verbs(1, VerbsOf({Ack(ds[0].delivery_id()), Ack(ds[1].delivery_id())}));
  EXPECT_EQ(Stats().acks, 2u);
  EXPECT_EQ(InFlight(1), 0u);
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());
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

// Issue 10 item 9: a second registration of a handler with another retry or
// dead-letter policy was accepted (the first policy applied, the second was
// echoed its own). It is refused, naming the field and both values; the same
// policy is accepted.
TEST_F(DispatcherTest, RegistrationDisagreeingOnPolicyFailsPreconditionNamingTheField) {
  Start();
  v1::Register reg = Reg();
  reg.mutable_retry_policy()->set_max_retries(5);
  auto first = Register(1, reg);
  ASSERT_EQ(first->registered().size(), 1u);

  v1::Register other = reg;
  other.mutable_retry_policy()->set_max_retries(3);
  auto second = Register(2, other);
  ASSERT_TRUE(second->status().has_value());
  EXPECT_THAT(*second->status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "register.retry_policy.max_retries: 3 differs from the registered 5 "
                       "(handler 'billing' on 'orders' is registered on this daemon; every "
                       "registration of a handler must agree)"));
  EXPECT_THAT(second->registered(), IsEmpty());

  v1::Register capped = reg;
  capped.mutable_dead_letter_policy()->set_max_len(100);
  capped.mutable_dead_letter_policy()->set_overflow(v1::DeadLetterPolicy::OVERFLOW_HOLD);
  auto third = Register(3, capped);
  ASSERT_TRUE(third->status().has_value());
  EXPECT_THAT(*third->status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("register.dead_letter_policy.max_len: 100 differs from the "
                                 "registered 0")));

  // The same policy (other per-stream settings may differ) joins the handler.
  v1::Register same = reg;
  same.set_max_in_flight(3);
  auto fourth = Register(4, same);
  EXPECT_FALSE(fourth->status().has_value());
  ASSERT_EQ(fourth->registered().size(), 1u);
  EXPECT_EQ(fourth->registered()[0].retry_policy().max_retries(), 5u);
  EXPECT_EQ(fourth->registered()[0].max_in_flight(), 3u);
  EXPECT_EQ(first->finish_calls(), 0);
  EXPECT_EQ(fourth->finish_calls(), 0);
}

// Issue 10 item 8: consumer_label appears in the consumer name. Streams of a
// handler here share one consumer (the first registration's label names it),
// and every Registered reply names the consumer really used.
TEST_F(DispatcherTest, ConsumerLabelNamesTheSharedConsumerInEveryReply) {
  Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
  reg.set_consumer_label("web-7");
  auto first = Register(1, reg);
  ASSERT_EQ(first->registered().size(), 1u);
  EXPECT_EQ(first->registered()[0].names().consumer(), "billing-web-7-i1");
  v1::Register other = BacklogReg();
  other.set_consumer_label("web-8");
  auto second = Register(2, other);
  ASSERT_EQ(second->registered().size(), 1u);
  EXPECT_EQ(second->registered()[0].names().consumer(), "billing-web-7-i1");
  // Reads use it.
  const std::vector<ReadGroupCall> reads = MainReads();
  ASSERT_FALSE(reads.empty());
  EXPECT_EQ(reads[0].g.consumer, "billing-web-7-i1");
}

// ------------------------------------------------------------ leases

TEST_F(DispatcherTest, ExpiredLeaseDropsTheDelivery) {
  Append(1, 1);
  Start(FastTickOptions());
  v1::Register reg = BacklogReg(/*max_in_flight=*/1, /*lease_ms=*/1000);
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
  EXPECT_THAT(Calls<AckCall>(), IsEmpty());  // stays pending for the reclaimer
}

TEST_F(DispatcherTest, ExtendRenewsTheLeaseInRedisAndHere) {
  Append(1, 1);
  Start(FastTickOptions());
  v1::Register reg = BacklogReg(/*max_in_flight=*/1, /*lease_ms=*/1000);
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);

  AwaitTickAt(kT0 + absl::Milliseconds(500));
  Verbs(1, VerbsOf({Extend(ds[0].delivery_id(), 0)}));  // 0: the registration's lease
  // Touched only while still ours (a script checks the owner first).
  EXPECT_THAT(Calls<TouchCall>(), ElementsAre(TouchCall{GroupRef{kStream, kHandler, kConsumer},
                                                        {Id(1)},
                                                        /*release=*/false}));
  EXPECT_EQ(Stats().extends, 1u);
  EXPECT_THAT(sink->notices(), IsEmpty());

  AwaitTickAt(kT0 + absl::Milliseconds(1001));  // past the old deadline
  EXPECT_EQ(InFlight(1), 1u);
  EXPECT_EQ(Stats().lease_expiries, 0u);

  AwaitTickAt(kT0 + absl::Milliseconds(1501));  // past the new one
  EXPECT_EQ(InFlight(1), 0u);
  EXPECT_EQ(Stats().lease_expiries, 1u);
}

TEST_F(DispatcherTest, SweepFailsEntriesIdlePastTheLeaseOnOtherConsumers) {
  Append(7, 8);
  Redis([](StreamModel& r) {
    r.groups[kHandler] = 2;
    r.pending["billing-dead"] = {7};
    r.pending[kScheduled] = {8};  // waiting for its retry: left alone
  });
  Start(FastTickOptions());
  auto sink = Register(1, Reg(/*max_in_flight=*/2, /*lease_ms=*/1000));

  // The first tick sweeps a new handler at once.
  AwaitTickAt(kT0);
  ASSERT_TRUE(WaitForCalls<ScheduleRetryCall>(1));
  Settle();
  EXPECT_THAT(Calls<IdlePendingCall>(),
              ::testing::Contains(IdlePendingCall{GroupRef{kStream, kHandler, "billing-dead"},
                                                  absl::Milliseconds(1000), 256}));
  for (const IdlePendingCall& c : Calls<IdlePendingCall>()) EXPECT_NE(c.g.consumer, kScheduled);
  EXPECT_THAT(Calls<ClaimCall>(),
              ElementsAre(ClaimCall{
                  GroupRef{kStream, kHandler, kConsumer}, absl::Milliseconds(1000), {Id(7)}}));
  // Claimed, it is a failed attempt (an expired lease): retried after the
  // backoff, not delivered as it is.
  const std::vector<ScheduleRetryCall> calls = Calls<ScheduleRetryCall>();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].op.id, Id(7));
  EXPECT_EQ(calls[0].op.delay, absl::Milliseconds(1000));
  absl::StatusOr<DueMember> m = DecodeDueMember(calls[0].op.member);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->failure.outcome, "lease_expired");
  EXPECT_EQ(m->failure.error, "lease expired on consumer billing-dead");
  EXPECT_THAT(sink->deliveries(), IsEmpty());
  EXPECT_EQ(Stats().reclaimed, 1u);
}

// Issue 10 item 10: the retry stream is trimmed from its sweep, once for a
// new handler and then only while there is something to trim — so an idle
// handler costs no trim scripts.
TEST_F(DispatcherTest, RetryStreamIsTrimmedFromItsSweepOnlyWhileThereIsWork) {
  // Set before the handler exists: its first tick may sweep as soon as it is registered.
  Redis([](StreamModel& r) { r.trim = {/*removed=*/120, "9-1", /*more=*/false}; });
  Start(FastTickOptions());  // min_sweep 5 s: sweeps at kT0, +5 s, +10 s, ...
  auto sink = Register(1, Reg(/*max_in_flight=*/2, /*lease_ms=*/1000));
  AwaitTickAt(kT0);
  EXPECT_THAT(Calls<TrimRetryCall>(),
              ElementsAre(TrimRetryCall{kRetryStream, 10000, absl::Milliseconds(60000)}));
  EXPECT_EQ(Stats().retry_trimmed, 120u);
  // It removed something: the next sweep goes on.
  Redis([](StreamModel& r) { r.trim = {0, "9-1", /*more=*/true}; });
  AwaitTickAt(kT0 + absl::Seconds(5));
  EXPECT_EQ(Calls<TrimRetryCall>().size(), 2u);
  // Nothing removed but acknowledged entries wait for the retention: again.
  Redis([](StreamModel& r) { r.trim = {0, "9-1", false}; });
  AwaitTickAt(kT0 + absl::Seconds(10));
  EXPECT_EQ(Calls<TrimRetryCall>().size(), 3u);
  // Nothing left to do and no retry entry settled here: idle, no more trims.
  AwaitTickAt(kT0 + absl::Seconds(15));
  AwaitTickAt(kT0 + absl::Seconds(20));
  EXPECT_EQ(Calls<TrimRetryCall>().size(), 3u);
  EXPECT_EQ(Stats().retry_trims, 3u);
  EXPECT_EQ(Stats().redis_errors, 0u);
}

TEST_F(DispatcherTest, MoverRewritesDueEntriesIntoTheRetryStream) {
  Append(3, 3);
  Redis([](StreamModel& r) { r.groups[kHandler] = 1; });
  const int64_t t0 = absl::ToUnixMillis(kT0);
  FailureRecord failure{1, "nack", "boom", "E1", kConsumer, t0 - 500};
  const std::string due = EncodeDueMember(DueMember{0, Id(3), failure});
  const std::string later = EncodeDueMember(DueMember{0, Id(4), failure});
  Redis([&](StreamModel& r) {
    r.due.emplace(t0 - 1, due);
    r.due.emplace(t0 + 5000, later);
  });
  Start(FastTickOptions());
  auto sink = Register(1, Reg());

  AwaitTickAt(kT0);
  ASSERT_TRUE(WaitForCalls<MoveDueCall>(1));
  Settle();
  // A cheap probe of the earliest member, then the batch since one is due.
  EXPECT_THAT((Order<EarliestDueCall, DueBatchCall>()),
              ElementsAre(Op<EarliestDueCall>(), Op<DueBatchCall>()));
  EXPECT_THAT(Calls<EarliestDueCall>(), ElementsAre(EarliestDueCall{kDueZset}));
  EXPECT_THAT(Calls<DueBatchCall>(), ElementsAre(DueBatchCall{kDueZset, 129}));
  const std::vector<MoveDueCall> calls = Calls<MoveDueCall>();
  ASSERT_EQ(calls.size(), 1u);  // the later one is not due
  const MoveDueOp& op = calls[0].op;
  EXPECT_EQ(op.from, (GroupRef{kStream, kHandler, kScheduled}));
  EXPECT_EQ(op.retry_stream, kRetryStream);
  EXPECT_EQ(op.retry_group, kRetryGroup);
  EXPECT_EQ(op.due_zset, kDueZset);
  EXPECT_EQ(op.id, Id(3));
  EXPECT_EQ(op.member, due);
  std::map<std::string, std::string> f = ByName(op.fields);
  absl::StatusOr<DecodedEntry> data = DecodeDataValue(f["__data__"]);
  ASSERT_TRUE(data.ok()) << data.status();
  // EggAI's retry rewrite: byte-compatible JSON body, headers kept.
  EXPECT_EQ(data->body, "{\"n\":3,\"_retry_count\":\"1\",\"_original_message_id\":\"3-0\"}");
  EXPECT_EQ(data->headers.size(), 2u);
  EXPECT_EQ(f["x-redrive-last-error"], "boom");
  EXPECT_EQ(f["x-redrive-last-error-code"], "E1");
  EXPECT_EQ(f["x-redrive-first-failure-ms"], absl::StrCat(t0 - 500));
  EXPECT_EQ(f["x-redrive-history"],
            "[{\"at_ms\":1699999999500,\"attempt\":1,\"consumer\":\"billing-i1\",\"error\":"
            "\"boom\",\"error_code\":\"E1\",\"outcome\":\"nack\"}]");
  EXPECT_EQ(Stats().retries_moved, 1u);
}

TEST_F(DispatcherTest, RetryEntryIsDeliveredWithItsAttemptAndPreviousErrorPoisonIsDeadLettered) {
  // What the mover wrote: EggAI metadata in the body, the rest in fields.
  StreamEntry retry;
  retry.id = "50-0";
  retry.fields = {
      {"__data__", ::redrive::testing::SpecEnvelope(
                       {{"content-type", "application/json"}},
                       "{\"n\":3,\"_retry_count\":\"2\",\"_original_message_id\":\"3-0\"}")},
      {"x-redrive-last-error", "boom"},
      {"x-redrive-last-error-code", "E1"}};
  StreamEntry poison;
  poison.id = "51-0";
  poison.fields = {{"__data__", "{\"n\":4,\"_retry_count\":\"abc\"}"}};
  StreamEntry next = retry;
  next.id = "52-0";
  Redis([&](StreamModel& r) { r.retry = std::vector<StreamEntry>{retry, poison, next}; });
  Start();
  auto sink = Register(1, Reg());

  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  for (const v1::Delivery& d : ds) {
    EXPECT_EQ(d.stream(), "orders.billing.retry");
    EXPECT_EQ(d.original_entry_id(), "3-0");
    EXPECT_EQ(d.attempt(), 3u);
    EXPECT_EQ(d.max_attempts(), 6u);
    EXPECT_EQ(d.previous_error(), "boom");
    EXPECT_EQ(d.previous_error_code(), "E1");
    // The client sees the publisher's body without EggAI's bookkeeping keys.
    EXPECT_EQ(d.payload(), "{\"n\":3}");
    EXPECT_EQ(d.content_type(), "application/json");
    EXPECT_EQ(d.headers_size(), 0);
  }
  EXPECT_EQ(ds[0].entry_id(), "50-0");
  EXPECT_EQ(ds[1].entry_id(), "52-0");  // the poison in between did not block it
  // The poison went straight to the DLQ, from the retry stream, raw bytes kept.
  const std::vector<DeadLetterCall> calls = Calls<DeadLetterCall>();
  ASSERT_EQ(calls.size(), 1u);
  const DeadLetterOp& op = calls[0].op;
  EXPECT_EQ(op.from, (GroupRef{kRetryStream, kRetryGroup, kConsumer}));
  EXPECT_EQ(op.dlq_stream, "orders.billing.dlq");
  EXPECT_EQ(op.id, "51-0");
  EXPECT_EQ(op.max_len, 0u);
  EXPECT_FALSE(op.hold_when_full);  // evict
  std::map<std::string, std::string> f = ByName(op.fields);
  EXPECT_EQ(f["x-redrive-reason"], "poison");
  EXPECT_EQ(f["x-redrive-source-stream"], "orders.billing.retry");
  EXPECT_THAT(f["x-redrive-last-error"], HasSubstr("_retry_count"));
  absl::StatusOr<DecodedEntry> data = DecodeDataValue(f["__data__"]);
  ASSERT_TRUE(data.ok());
  EXPECT_THAT(data->body,
              HasSubstr("\"_dlq_raw_b64\":\"eyJuIjo0LCJfcmV0cnlfY291bnQiOiJhYmMifQ==\""));
  EXPECT_EQ(Stats().poison, 1u);
}

// ------------------------------------------------------------ lost groups

TEST_F(DispatcherTest, LostGroupIsRecreatedAfterTheLastEntryRead) {
  Append(1, 2);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 2u);

  Redis([](StreamModel& r) {  // FLUSHALL: the stream and its groups are gone
    r.entries.clear();
    r.groups.clear();
  });
  // XREADGROUP → NOGROUP → XGROUP CREATE after the last id read: nothing
  // delivered is replayed, nothing added since the loss is skipped.
  Activity(kStream);
  EXPECT_THAT(Calls<CreateGroupCall>(), ElementsAre(CreateGroupCall{kStream, kHandler, "0"},
                                                    CreateGroupCall{kStream, kHandler, Id(2)}));
  EXPECT_EQ(Stats().groups_recreated, 1u);
  EXPECT_EQ(Stats().redis_errors, 1u);

  Append(3, 3);
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

  Redis([](StreamModel& r) {  // FLUSHALL: the stream and its groups are gone
    r.entries.clear();
    r.groups.clear();
    r.create_error = RedisError("OOM command not allowed when used memory > 'maxmemory'.");
  });
  Activity(kStream);

  // One failed read, one failed recreation; the next read waits for the
  // error backoff (the injected clock does not move).
  EXPECT_EQ(Reads(), 2u);
  EXPECT_EQ(Calls<CreateGroupCall>().size(), 2u);
  EXPECT_EQ(Stats().groups_recreated, 1u);
}

// ------------------------------------------------------------ drain

TEST_F(DispatcherTest, DrainFinishesEverySessionOnceAllSettled) {
  Append(1, 2);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/1);
  auto [one, two] = RegisterTwo(reg);
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
  Append(3, 3);
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
  for (const AckCall& c : Calls<AckCall>()) acked.insert(acked.end(), c.ids.begin(), c.ids.end());
  EXPECT_THAT(acked, UnorderedElementsAreArray({Id(1), Id(2)}));
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  EXPECT_EQ(Stats().released, 0u);
}

// Issue 10 item 5: a rolling deploy burnt attempts. What is unsettled when
// the grace ends stays pending for the next owner (broker.proto, step 6): it
// is handed back without counting an attempt, even on its final attempt
// (max_retries 0), instead of failing as "disconnected" into the DLQ.
TEST_F(DispatcherTest, DrainHandsUnsettledDeliveriesBackWithoutCountingAnAttempt) {
  Append(1, 2);
  Start(FastTickOptions());
  v1::Register reg = BacklogReg();
  reg.mutable_retry_policy()->set_max_retries(0);  // attempt 1 is the last
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 2u);
  ASSERT_EQ(ds[1].max_attempts(), 1u);

  auto done = std::make_shared<absl::Notification>();
  OnLoop([done](Dispatcher& d) { d.Drain(absl::Seconds(5), [done] { done->Notify(); }); });
  Verbs(1, VerbsOf({Ack(ds[0].delivery_id())}));

  AwaitTickAt(kT0 + absl::Milliseconds(4999));
  EXPECT_EQ(sink->finish_calls(), 0);
  EXPECT_FALSE(done->HasBeenNotified());
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());

  AwaitTickAt(kT0 + absl::Seconds(5));
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));
  // Handed back at once (delay 0), before the drain completes, as an entry
  // that was never delivered: no failure recorded, nothing dead-lettered.
  EXPECT_THAT(ScheduledIds("returned"), ElementsAre(Id(2)));
  EXPECT_THAT(ScheduledIds("disconnected"), IsEmpty());
  for (const ScheduleRetryCall& c : Calls<ScheduleRetryCall>()) {
    EXPECT_EQ(c.op.delay, absl::ZeroDuration());
  }
  EXPECT_THAT(Calls<DeadLetterCall>(), IsEmpty());
  EXPECT_THAT(Calls<ReadEntryCall>(), IsEmpty());
  EXPECT_EQ(Stats().drain_released, 1u);
  EXPECT_EQ(Stats().returned, 1u);
  EXPECT_EQ(Stats().dead_letters, 0u);
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
  EXPECT_THAT(Calls<AckCall>(), ElementsAre(AckOf({Id(1)})));
  ASSERT_TRUE(sink->status().has_value());
  EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(sink->finish_calls(), 1);
  EXPECT_EQ(InFlight(1), 0u);
}

// Regression (found by this test, fixed in 54cdf63): a read that was out when
// Drain finished the sessions was delivered when it returned, to sessions
// already finished, and its entries were not released with the rest.
TEST_F(DispatcherTest, ReadReturningAfterDrainFinishedDeliversNothing) {
  Append(1, 2);
  Start();
  Hold<ReadGroupCall>();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(Held<ReadGroupCall>(), 1u);

  Hold<BarrierCall>();
  auto done = std::make_shared<absl::Notification>();
  OnLoop([done](Dispatcher& d) { d.Drain(absl::Seconds(30), [done] { done->Notify(); }); });
  ASSERT_EQ(sink->finish_calls(), 1);  // nothing was in flight
  // Answers in connection order: the read, then the drain's barrier.
  ASSERT_EQ(Release<ReadGroupCall>(), 1u);
  Settle();
  ASSERT_EQ(Release<BarrierCall>(), 1u);
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));

  EXPECT_THAT(sink->deliveries(), IsEmpty());
  EXPECT_EQ(sink->sends_after_finish(), 0);
  EXPECT_THAT(ScheduledIds("returned"), ElementsAre(Id(1), Id(2)));
  EXPECT_THAT(Calls<ClaimCall>(), IsEmpty());
}

TEST_F(DispatcherTest, RegistrationDuringDrainIsUnavailable) {
  Start();
  auto done = std::make_shared<absl::Notification>();
  OnLoop([done](Dispatcher& d) { d.Drain(absl::Seconds(1), [done] { done->Notify(); }); });
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));  // nothing to wait for

  auto sink = Register(1, Reg());
  ASSERT_TRUE(sink->status().has_value());
  EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Calls<CreateGroupCall>(), IsEmpty());
  EXPECT_EQ(Handlers(), 0u);
}

// ------------------------------------------------------------ notifier

TEST_F(DispatcherTest, StreamActivityAfterShortReadIssuesExactlyOneRead) {
  Start();
  auto sink = Register(1, Reg());
  // The first read found nothing (fewer than asked): reading stops.
  ASSERT_THAT(MainReads(), ElementsAre(ReadOf(64)));
  Append(1, 1);

  // Neither new capacity nor another stream's activity reads again.
  auto other = Register(2, Reg());
  Activity("payments");
  EXPECT_EQ(Reads(), 1u);
  EXPECT_THAT(sink->deliveries(), IsEmpty());

  Activity(kStream);
  EXPECT_THAT(MainReads(), ElementsAre(ReadOf(64), ReadOf(128)));
  const size_t delivered = sink->deliveries().size() + other->deliveries().size();
  EXPECT_EQ(delivered, 1u);
  std::vector<v1::Delivery> ds = sink->deliveries();
  for (const v1::Delivery& d : other->deliveries()) ds.push_back(d);
  ASSERT_EQ(ds.size(), 1u);
  ExpectEntry(ds[0], 1, 1);
}

}  // namespace
}  // namespace redrive
