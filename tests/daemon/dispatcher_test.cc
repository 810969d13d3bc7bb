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
#include <map>
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
#include "daemon/redis/redis_stream_ops.h"
#include "daemon/redis/scripts.h"
#include "daemon/redis/stream_watch.h"
#include "daemon/retry_fields.h"
#include "daemon/stream_notifier.h"
#include "daemon/subscription.h"
#include "tests/fakes/fake_async_redis.h"
#include "tests/fakes/fake_session_sink.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

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
  // {redrive}:paused as another daemon's Admin service left it.
  void SetPausedInRedis(const std::string& field, bool paused) {
    absl::MutexLock lock(&mu_);
    if (paused) {
      paused_.insert(field);
    } else {
      paused_.erase(field);
    }
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

  // Entries in the handler's retry stream (whose group then exists).
  void AddRetryEntries(std::vector<StreamEntry> entries) {
    absl::MutexLock lock(&mu_);
    retry_group_ = true;
    for (StreamEntry& e : entries) retry_entries_.push_back(std::move(e));
  }
  // The dead-letter script's answer: 1 = moved, -2 = held by the cap.
  void SetDeadLetterResult(int64_t result) {
    absl::MutexLock lock(&mu_);
    dead_letter_result_ = result;
  }
  // The trim script's answer: entries removed, and whether the retention
  // capped MINID.
  void SetTrimResult(int64_t removed, int64_t capped) {
    absl::MutexLock lock(&mu_);
    trim_removed_ = removed;
    trim_capped_ = capped;
  }
  // The schedule script's answer (1 = scheduled, 0 = no longer ours).
  void SetScheduleResult(int64_t result) {
    absl::MutexLock lock(&mu_);
    schedule_result_ = result;
  }
  // A member of the due zset, returned by ZRANGE.
  void AddDue(std::string member, int64_t score) {
    absl::MutexLock lock(&mu_);
    due_.emplace_back(std::move(member), score);
  }
  // Entries pending in the main group under `consumer`, idle past any lease.
  void AddPending(const std::string& consumer, std::vector<int> ids) {
    absl::MutexLock lock(&mu_);
    pending_by_consumer_[consumer] = std::move(ids);
  }

  absl::StatusOr<RedisReply> Answer(const Command& c) {
    absl::MutexLock lock(&mu_);
    const std::string& kind = c.front();
    if (kind == "XGROUP" && c.size() == 6 && c[1] == "CREATE") return GroupCreate(c);
    if (kind == "HEXISTS" && c[1] == kPausedHandlersKey) {
      return RedisReply::Integer(paused_.contains(c[2]) ? 1 : 0);
    }
    if (kind == "HGETALL" && c[1] == kPausedHandlersKey) {
      std::vector<RedisReply> out;
      for (const std::string& f : paused_) {
        out.push_back(RedisReply::String(f));
        out.push_back(RedisReply::String("1"));
      }
      return RedisReply::Array(std::move(out));
    }
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
    if (kind == "EVALSHA") {
      if (c[1] == ScheduleRetryScript().sha1) {
        // The due time on "Redis's clock" (kT0 here) + the delay; 0 = not ours.
        int64_t delay = 0;
        EXPECT_TRUE(absl::SimpleAtoi(c[9], &delay));
        return RedisReply::Integer(schedule_result_ == 0 ? 0 : absl::ToUnixMillis(kT0) + delay);
      }
      if (c[1] == DeadLetterScript().sha1) {
        if (dead_letter_result_ != 1) return RedisReply::Integer(dead_letter_result_);
        // Dead-lettered: the script acked the entry, so no sweep sees it any more.
        for (auto& [consumer, ids] : pending_by_consumer_) {
          ids.erase(std::remove(ids.begin(), ids.end(), Seq(c[6])), ids.end());
        }
        return RedisReply::Array({RedisReply::String("900-0"), RedisReply::Integer(0)});
      }
      if (c[1] == MoveDueScript().sha1) return RedisReply::String("800-0");
      if (c[1] == TrimRetryScript().sha1) {
        return RedisReply::Array({RedisReply::Integer(trim_removed_),
                                  RedisReply::String("9-1"), RedisReply::Integer(trim_capped_)});
      }
      return RedisReply::Integer(0);
    }
    if (kind == "XRANGE" && c.size() == 4 && c[1] == kStream && c[2] == c[3]) {
      if (std::find(entries_.begin(), entries_.end(), Seq(c[2])) == entries_.end()) {
        return RedisReply::Array({});
      }
      return RedisReply::Array({EntryReply(Seq(c[2]))});
    }
    // ZRANGE <due> -inf +inf BYSCORE LIMIT 0 n WITHSCORES
    // or the probe: ZRANGE <due> 0 0 WITHSCORES (the earliest member).
    if (kind == "ZRANGE") {
      std::vector<std::pair<std::string, int64_t>> sorted = due_;
      std::sort(sorted.begin(), sorted.end(),
                [](const auto& a, const auto& b) { return a.second < b.second; });
      if (c[2] == "0" && c[3] == "0" && sorted.size() > 1) sorted.resize(1);
      std::vector<RedisReply> out;
      for (const auto& [member, score] : sorted) {
        out.push_back(RedisReply::String(member));
        out.push_back(RedisReply::String(absl::StrCat(score)));
      }
      return RedisReply::Array(std::move(out));
    }
    // The summary form: XPENDING key group.
    if (kind == "XPENDING" && c.size() == 3 && c[1] == kStream && c[2] == kHandler) {
      if (pending_by_consumer_.empty()) {
        return RedisReply::Array({RedisReply::Integer(0), RedisReply::Nil(), RedisReply::Nil(),
                                  RedisReply::Nil()});
      }
      std::vector<RedisReply> consumers;
      int64_t total = 0;
      for (const auto& [consumer, ids] : pending_by_consumer_) {
        consumers.push_back(RedisReply::Array(
            {RedisReply::String(consumer), RedisReply::String(absl::StrCat(ids.size()))}));
        total += static_cast<int64_t>(ids.size());
      }
      return RedisReply::Array({RedisReply::Integer(total), RedisReply::String("0-1"),
                                RedisReply::String("9-9"), RedisReply::Array(std::move(consumers))});
    }
    if (kind == "XPENDING" && c.size() == 3) {
      return RedisReply::Error("NOGROUP No such key or consumer group");
    }
      // XPENDING key group IDLE ms - + count consumer
    if (kind == "XPENDING" && c.size() == 9 && c[3] == "IDLE") {
      std::vector<RedisReply> rows;
      auto it = pending_by_consumer_.find(c[8]);
      if (it != pending_by_consumer_.end()) {
        for (int n : it->second) {
          rows.push_back(RedisReply::Array({RedisReply::String(Id(n)), RedisReply::String(c[8]),
                                            RedisReply::Integer(99999), RedisReply::Integer(1)}));
        }
      }
      return RedisReply::Array(std::move(rows));
    }
    if (kind == "XINFO") return RedisReply::Array({});
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
    if (c[2] == "billing-retry") {
      if (!retry_group_) return RedisReply::Error("NOGROUP No such key or consumer group");
      size_t count = 0;
      EXPECT_TRUE(absl::SimpleAtoi(c[5], &count));
      std::vector<RedisReply> out;
      while (out.size() < count && !retry_entries_.empty()) {
        std::vector<RedisReply> fields;
        for (const auto& [name, value] : retry_entries_.front().fields) {
          fields.push_back(RedisReply::String(name));
          fields.push_back(RedisReply::String(value));
        }
        out.push_back(RedisReply::Array({RedisReply::String(retry_entries_.front().id),
                                         RedisReply::Array(std::move(fields))}));
        retry_entries_.erase(retry_entries_.begin());
      }
      if (out.empty()) return RedisReply::Nil();
      return RedisReply::Array({RedisReply::Array(
          {RedisReply::String(c[c.size() - 2]), RedisReply::Array(std::move(out))})});
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
  absl::flat_hash_set<std::string> paused_ ABSL_GUARDED_BY(mu_);
  bool wrong_type_ ABSL_GUARDED_BY(mu_) = false;
  std::string create_error_ ABSL_GUARDED_BY(mu_);
  std::vector<int> claimable_ ABSL_GUARDED_BY(mu_);
  int64_t schedule_result_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t trim_removed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t trim_capped_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dead_letter_result_ ABSL_GUARDED_BY(mu_) = 1;
  bool retry_group_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<StreamEntry> retry_entries_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int64_t>> due_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<int>> pending_by_consumer_ ABSL_GUARDED_BY(mu_);
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
      blocking_.reset();
      commands_.reset();
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
      commands_ = std::make_unique<FakeAsyncCommander>(loop_);
      commands_->set_responder([this](const Command& c) { return redis_.Answer(c); });
      // The notifier's blocking XREAD never returns: activity is reported by
      // the tests calling OnStreamActivity.
      blocking_ = std::make_unique<FakeAsyncCommander>(loop_);
      blocking_->set_responder([](const Command&) { return RedisReply::Nil(); });
      blocking_->Hold("XREAD");
      watch_ops_ = std::make_unique<RedisStreamWatchOps>(*blocking_, *commands_);
      notifier_ = std::make_unique<StreamNotifier>(
          *watch_ops_, [this](const std::string& stream) {
            if (dispatcher_ != nullptr) dispatcher_->OnStreamActivity(stream);
          });
      ops_ = std::make_unique<RedisStreamOps>(*commands_);
      dispatcher_ = std::make_unique<Dispatcher>(loop_, *ops_, *notifier_, std::move(options));
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
  // (XREADGROUP: reads of the main stream only; RetryReads() has the rest.)
  std::vector<Command> Sent(absl::string_view kind) {
    std::vector<Command> all = commands_->commands(kind);
    if (kind != "XREADGROUP") return all;
    std::vector<Command> main;
    for (Command& c : all) {
      if (c[2] == kHandler) main.push_back(std::move(c));
    }
    return main;
  }
  std::vector<Command> RetryReads() {
    std::vector<Command> retry;
    for (Command& c : commands_->commands("XREADGROUP")) {
      if (c[2] != kHandler) retry.push_back(std::move(c));
    }
    return retry;
  }
  size_t Reads() { return Sent("XREADGROUP").size(); }
  // The EVALSHA calls of `script`.
  std::vector<Command> ScriptCalls(const LuaScript& script) {
    std::vector<Command> out;
    for (Command& c : commands_->commands("EVALSHA")) {
      if (c[1] == script.sha1) out.push_back(std::move(c));
    }
    return out;
  }
  // The entry ids the schedule script was called for with `outcome`.
  std::vector<std::string> ScheduledIds(absl::string_view outcome) {
    std::vector<std::string> ids;
    for (const Command& c : ScriptCalls(ScheduleRetryScript())) {
      absl::StatusOr<DueMember> m = DecodeDueMember(c[10]);
      EXPECT_TRUE(m.ok());
      if (m.ok() && m->failure.outcome == outcome) ids.push_back(m->entry_id);
    }
    return ids;
  }
  // The field → value map of a dead-letter or move script call's fields.
  static std::map<std::string, std::string> ScriptFields(const Command& c, size_t first) {
    std::map<std::string, std::string> out;
    for (size_t i = first; i + 1 < c.size(); i += 2) out[c[i]] = c[i + 1];
    return out;
  }

  static Command ReadCommand(uint32_t count, bool noack = false) {
    Command c = {"XREADGROUP", "GROUP", kHandler, kConsumer, "COUNT", absl::StrCat(count)};
    if (noack) c.push_back("NOACK");
    c.insert(c.end(), {"STREAMS", kStream, ">"});
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
  std::unique_ptr<RedisStreamOps> ops_;
  std::unique_ptr<RedisStreamWatchOps> watch_ops_;
  std::unique_ptr<StreamNotifier> notifier_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

// ------------------------------------------------------------ registration

TEST_F(DispatcherTest, RegistrationCreatesGroupAtNewEntriesAndSendsRegisteredOnce) {
  Start();
  auto sink = Register(1, Reg());

  EXPECT_THAT(Sent("XGROUP"),
              ElementsAre(Command{"XGROUP", "CREATE", kStream, kHandler, "$", "MKSTREAM"}));
  // Both of the handler's streams are watched; the retry group does not
  // exist before the first retry, so its one read finds NOGROUP and stops.
  EXPECT_THAT(Sent("XREVRANGE"),
              ElementsAre(Command{"XREVRANGE", kStream, "+", "-", "COUNT", "1"},
                          Command{"XREVRANGE", "orders.billing.retry", "+", "-", "COUNT", "1"}));
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(64)));
  EXPECT_THAT(RetryReads(),
              ElementsAre(Command{"XREADGROUP", "GROUP", "billing-retry", kConsumer, "COUNT", "64",
                                  "STREAMS", "orders.billing.retry", ">"}));
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
  redis_.Append(1, 2);
  Start();
  v1::Register reg = BacklogReg();
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
  v1::Register reg = BacklogReg();
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
  // The pause flag is read first; nothing is recorded in the handler registry.
  EXPECT_THAT(commands_->commands(),
              ElementsAre(Command{"HEXISTS", "{redrive}:paused", "orders billing"},
                          Command{"XGROUP", "CREATE", kStream, kHandler, "$", "MKSTREAM"}));
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
  v1::Register reg = BacklogReg(/*max_in_flight=*/3);
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
  v1::Register reg = BacklogReg();
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
  v1::Register reg = BacklogReg();
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
  redis_.Append(1, 1);
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
  redis_.Append(1, 2);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/1);
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

TEST_F(DispatcherTest, TerminateDeadLettersTheEntryWithItsProvenance) {
  redis_.Append(1, 1);
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
  ASSERT_TRUE(commands_->WaitForCount("EVALSHA", 1, kWait));
  Settle();
  // The entry is read again, then moved by one script that checks it is
  // still ours, adds the dead letter and acks the source (no XACK here).
  EXPECT_THAT(Sent("XRANGE"), ElementsAre(Command{"XRANGE", kStream, Id(1), Id(1)}));
  const std::vector<Command> calls = ScriptCalls(DeadLetterScript());
  ASSERT_EQ(calls.size(), 1u);
  const Command& c = calls[0];
  EXPECT_THAT(Command(c.begin() + 2, c.begin() + 10),
              ElementsAre("2", kStream, "orders.billing.dlq", kHandler, Id(1), kConsumer, "0",
                          "evict"));
  std::map<std::string, std::string> f = ScriptFields(c, 10);
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
  EXPECT_THAT(data->headers, ElementsAre(std::pair<std::string, std::string>("content-type",
                                                                             "application/json"),
                                         std::pair<std::string, std::string>("x-seq", "1")));
  EXPECT_THAT(Sent("XACK"), IsEmpty());
  EXPECT_THAT(ScriptCalls(ScheduleRetryScript()), IsEmpty());
  EXPECT_EQ(Stats().terminates, 1u);
  EXPECT_EQ(Stats().dead_letters, 1u);
  EXPECT_EQ(InFlight(1), 0u);

  Verbs(1, VerbsOf({Ack(id)}));  // an ACK after TERMINATE is not a repeat
  const std::vector<v1::Notice> notices = sink->notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].code(), v1::Notice::ALREADY_SETTLED);
}

TEST_F(DispatcherTest, NackSchedulesTheRetryAfterTheBackoffOrTheNacksDelay) {
  redis_.Append(1, 2);
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

  const std::vector<Command> calls = ScriptCalls(ScheduleRetryScript());
  ASSERT_EQ(calls.size(), 2u);
  const int64_t t0 = absl::ToUnixMillis(kT0);
  // Default policy: the first retry after 1000 ms (jitter fixed at 0 here).
  EXPECT_THAT(Command(calls[0].begin() + 2, calls[0].begin() + 10),
              ElementsAre("2", kStream, "orders.billing.retry.due", kHandler, Id(1), kConsumer,
                          "billing:scheduled", "1000"));
  EXPECT_THAT(Command(calls[1].begin() + 2, calls[1].begin() + 10),
              ElementsAre("2", kStream, "orders.billing.retry.due", kHandler, Id(2), kConsumer,
                          "billing:scheduled", "250"));
  absl::StatusOr<DueMember> first = DecodeDueMember(calls[0][10]);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->source, 0);
  EXPECT_EQ(first->entry_id, Id(1));
  EXPECT_EQ(first->failure.attempt, 1u);
  EXPECT_EQ(first->failure.outcome, "nack");
  EXPECT_EQ(first->failure.error, "boom");
  EXPECT_EQ(first->failure.consumer, kConsumer);
  EXPECT_EQ(first->failure.at_ms, t0);
  absl::StatusOr<DueMember> second = DecodeDueMember(calls[1][10]);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->failure.error_code, "E_BUSY");
  EXPECT_THAT(Sent("XACK"), IsEmpty());
  EXPECT_EQ(Stats().retries_scheduled, 2u);
  EXPECT_EQ(InFlight(1), 0u);
}

// Review finding: a dead letter held by the DLQ cap stayed pending under our
// consumer, and the next sweep turned the TERMINATE into a retry.
TEST_F(DispatcherTest, HeldDeadLetterIsTriedAgainAndNeverSweptIntoARetry) {
  redis_.Append(1, 1);
  redis_.AddGroup(kHandler, 0);
  redis_.SetDeadLetterResult(-2);
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
  ASSERT_TRUE(commands_->WaitForCount("EVALSHA", 1, kWait));
  Settle();
  EXPECT_EQ(Stats().dlq_held, 1u);

  // Idle past the lease under our consumer: the sweep sees it and skips it.
  redis_.AddPending(kConsumer, {1});
  AwaitTickAt(kT0 + absl::Seconds(2));
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());
  EXPECT_THAT(ScriptCalls(ScheduleRetryScript()), IsEmpty());

  // A sweep period later the dead letter is tried again, still "terminated".
  redis_.SetDeadLetterResult(1);
  AwaitTickAt(kT0 + absl::Seconds(6));
  ASSERT_TRUE(commands_->WaitForCount("EVALSHA", 2, kWait));
  Settle();
  const std::vector<Command> calls = ScriptCalls(DeadLetterScript());
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(ScriptFields(calls[1], 10)["x-redrive-reason"], "terminated");
  EXPECT_EQ(ScriptFields(calls[1], 10)["x-redrive-last-error"], "bad order");
  EXPECT_THAT(ScriptCalls(ScheduleRetryScript()), IsEmpty());
  EXPECT_EQ(Stats().dead_letters, 1u);
}

TEST_F(DispatcherTest, NackPastMaxRetriesDeadLettersWithoutScheduling) {
  redis_.Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
  reg.mutable_retry_policy()->set_max_retries(0);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);
  EXPECT_EQ(sink->deliveries()[0].max_attempts(), 1u);
  Verbs(1, VerbsOf({Nack(sink->deliveries()[0].delivery_id())}));
  ASSERT_TRUE(commands_->WaitForCount("EVALSHA", 1, kWait));
  Settle();
  EXPECT_THAT(ScriptCalls(ScheduleRetryScript()), IsEmpty());
  const std::vector<Command> calls = ScriptCalls(DeadLetterScript());
  ASSERT_EQ(calls.size(), 1u);
  std::map<std::string, std::string> f = ScriptFields(calls[0], 10);
  EXPECT_EQ(f["x-redrive-reason"], "max_retries");
  EXPECT_EQ(f["x-redrive-last-error"], "boom");
  EXPECT_EQ(f["x-redrive-attempts"], "1");
}

TEST_F(DispatcherTest, VerbWithoutActionGetsInvalidVerbNotice) {
  redis_.Append(1, 1);
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
  redis_.Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
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

TEST_F(DispatcherTest, PausedHandlerReadsNothingUntilResumedAndStillSettles) {
  redis_.Append(1, 1);
  Start();
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 1u);

  OnLoop([](Dispatcher& d) { d.SetPaused(kStream, kHandler, true); });
  redis_.Append(2, 3);
  Activity(kStream);
  EXPECT_EQ(Reads(), 1u);  // paused: no read however much arrives
  Verbs(1, VerbsOf({Ack(sink->deliveries()[0].delivery_id())}));
  ASSERT_TRUE(commands_->WaitForCount("XACK", 1, kWait));
  EXPECT_EQ(Reads(), 1u);
  EXPECT_EQ(sink->deliveries().size(), 1u);

  OnLoop([](Dispatcher& d) { d.SetPaused(kStream, kHandler, false); });
  EXPECT_EQ(Reads(), 2u);
  ASSERT_EQ(sink->deliveries().size(), 3u);
  ExpectEntry(sink->deliveries()[1], 2, 1);
}

TEST_F(DispatcherTest, PauseSetInRedisAppliesBeforeTheFirstRead) {
  redis_.Append(1, 2);
  redis_.SetPausedInRedis("orders billing", true);
  DispatcherOptions options = FastTickOptions();
  options.pause_poll = absl::ZeroDuration();  // every tick (the fake clock stands still)
  Start(options);
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  EXPECT_EQ(sink->registered().size(), 1u);
  EXPECT_EQ(Reads(), 0u);
  EXPECT_TRUE(sink->deliveries().empty());
  // Another daemon's resume is picked up by the poll of {redrive}:paused.
  redis_.SetPausedInRedis("orders billing", false);
  ASSERT_TRUE(::redrive::testing::WaitFor([&] { return sink->deliveries().size() == 2; },
                                         absl::Seconds(5)));
  EXPECT_GE(commands_->count("HGETALL"), 1u);
}

// ------------------------------------------------------------ sessions

TEST_F(DispatcherTest, DisconnectFailsEachUnsettledDeliveryForAnImmediateRetry) {
  redis_.Append(1, 6);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/3);
  auto [one, two] = RegisterTwo(reg);

  // Split: each session full (3 + 3), every entry exactly once.
  EXPECT_THAT(Sent("XREADGROUP"), ElementsAre(ReadCommand(6)));
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
  const std::vector<Command> calls = ScriptCalls(ScheduleRetryScript());
  ASSERT_EQ(calls.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(calls[i][6], first[i].entry_id());
    EXPECT_EQ(calls[i][9], "0");  // no backoff: at once
    absl::StatusOr<DueMember> m = DecodeDueMember(calls[i][10]);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->failure.outcome, "disconnected");
    EXPECT_EQ(m->failure.error, "consumer disconnected");
    EXPECT_EQ(m->failure.error_code, "DISCONNECTED");
    EXPECT_EQ(m->failure.attempt, 1u);
  }
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());
  EXPECT_EQ(Handlers(), 1u);
  EXPECT_EQ(two->deliveries().size(), 3u);
  EXPECT_EQ(Stats().disconnect_failures, 3u);
  EXPECT_EQ(Stats().released, 0u);
}

TEST_F(DispatcherTest, DisconnectOfLastSessionSchedulesDeliveriesAndRemovesHandler) {
  redis_.Append(1, 2);
  Start();
  v1::Register reg = BacklogReg(/*max_in_flight=*/5);
  auto sink = Register(1, reg);
  ASSERT_EQ(sink->deliveries().size(), 2u);
  ASSERT_EQ(Watched(), 2u);

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  const std::vector<Command> calls = ScriptCalls(ScheduleRetryScript());
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0][6], Id(1));
  EXPECT_EQ(calls[1][6], Id(2));
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());
  EXPECT_THAT(Sent("XACK"), IsEmpty());
  EXPECT_EQ(Handlers(), 0u);
  EXPECT_EQ(Watched(), 0u);
  EXPECT_EQ(Stats().retries_scheduled, 2u);
  EXPECT_EQ(sink->deliveries().size(), 2u);
}

TEST_F(DispatcherTest, DisconnectWhileReadIsOutHandsBackWhatTheReadReturns) {
  redis_.Append(1, 2);
  Start();
  commands_->Hold("XREADGROUP");
  v1::Register reg = BacklogReg();
  auto sink = Register(1, reg);
  ASSERT_EQ(commands_->held("XREADGROUP"), 1u);

  OnLoop([](Dispatcher& d) { d.Disconnect(1); });
  EXPECT_EQ(Handlers(), 0u);
  ASSERT_EQ(commands_->Release("XREADGROUP"), 1u);
  Settle();

  // Never delivered: handed back through the retry path at once, without
  // counting a failed attempt.
  EXPECT_THAT(ScheduledIds("returned"), ElementsAre(Id(1), Id(2)));
  for (const Command& c : ScriptCalls(ScheduleRetryScript())) EXPECT_EQ(c[9], "0");
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());
  EXPECT_THAT(sink->deliveries(), IsEmpty());
  EXPECT_EQ(Stats().returned, 2u);
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
  redis_.Append(1, 1);
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
  const std::vector<Command> reads = Sent("XREADGROUP");
  ASSERT_FALSE(reads.empty());
  EXPECT_EQ(reads[0][3], "billing-web-7-i1");
}

// ------------------------------------------------------------ leases

TEST_F(DispatcherTest, ExpiredLeaseDropsTheDelivery) {
  redis_.Append(1, 1);
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
  EXPECT_THAT(Sent("XACK"), IsEmpty());  // stays pending for the reclaimer
}

TEST_F(DispatcherTest, ExtendRenewsTheLeaseInRedisAndHere) {
  redis_.Append(1, 1);
  Start(FastTickOptions());
  v1::Register reg = BacklogReg(/*max_in_flight=*/1, /*lease_ms=*/1000);
  auto sink = Register(1, reg);
  const std::vector<v1::Delivery> ds = sink->deliveries();
  ASSERT_EQ(ds.size(), 1u);

  AwaitTickAt(kT0 + absl::Milliseconds(500));
  Verbs(1, VerbsOf({Extend(ds[0].delivery_id(), 0)}));  // 0: the registration's lease
  // Touched only while still ours (a script checks the owner first).
  const std::vector<Command> touches = ScriptCalls(TouchScript());
  ASSERT_EQ(touches.size(), 1u);
  EXPECT_THAT(Command(touches[0].begin() + 2, touches[0].end()),
              ElementsAre("1", kStream, kHandler, kConsumer, "", Id(1)));
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
  redis_.Append(7, 8);
  redis_.AddGroup(kHandler, 2);
  redis_.AddPending("billing-dead", {7});
  redis_.AddPending("billing:scheduled", {8});  // waiting for its retry: left alone
  Start(FastTickOptions());
  auto sink = Register(1, Reg(/*max_in_flight=*/2, /*lease_ms=*/1000));

  // The first tick sweeps a new handler at once.
  AwaitTickAt(kT0);
  ASSERT_TRUE(commands_->WaitForCount("EVALSHA", 1, kWait));
  Settle();
  EXPECT_THAT(Sent("XPENDING"),
              ::testing::Contains(Command{"XPENDING", kStream, kHandler, "IDLE", "1000", "-", "+",
                                        "256", "billing-dead"}));
  for (const Command& c : Sent("XPENDING")) EXPECT_NE(c.back(), "billing:scheduled");
  EXPECT_THAT(Sent("XCLAIM"),
              ElementsAre(Command{"XCLAIM", kStream, kHandler, kConsumer, "1000", Id(7)}));
  // Claimed, it is a failed attempt (an expired lease): retried after the
  // backoff, not delivered as it is.
  const std::vector<Command> calls = ScriptCalls(ScheduleRetryScript());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0][6], Id(7));
  EXPECT_EQ(calls[0][9], "1000");
  absl::StatusOr<DueMember> m = DecodeDueMember(calls[0][10]);
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
  Start(FastTickOptions());  // min_sweep 5 s: sweeps at kT0, +5 s, +10 s, ...
  auto sink = Register(1, Reg(/*max_in_flight=*/2, /*lease_ms=*/1000));
  redis_.SetTrimResult(/*removed=*/120, /*capped=*/0);
  AwaitTickAt(kT0);
  std::vector<Command> calls = ScriptCalls(TrimRetryScript());
  ASSERT_EQ(calls.size(), 1u);
  // EVALSHA sha 1 <retry stream> <limit> <retention ms>
  EXPECT_EQ(calls[0], (Command{"EVALSHA", std::string(TrimRetryScript().sha1), "1", "orders.billing.retry",
                               "10000", "60000"}));
  EXPECT_EQ(Stats().retry_trimmed, 120u);
  // It removed something: the next sweep goes on.
  redis_.SetTrimResult(0, /*capped=*/1);
  AwaitTickAt(kT0 + absl::Seconds(5));
  EXPECT_EQ(ScriptCalls(TrimRetryScript()).size(), 2u);
  // Nothing removed but acknowledged entries wait for the retention: again.
  redis_.SetTrimResult(0, 0);
  AwaitTickAt(kT0 + absl::Seconds(10));
  EXPECT_EQ(ScriptCalls(TrimRetryScript()).size(), 3u);
  // Nothing left to do and no retry entry settled here: idle, no more trims.
  AwaitTickAt(kT0 + absl::Seconds(15));
  AwaitTickAt(kT0 + absl::Seconds(20));
  EXPECT_EQ(ScriptCalls(TrimRetryScript()).size(), 3u);
  EXPECT_EQ(Stats().retry_trims, 3u);
  EXPECT_EQ(Stats().redis_errors, 0u);
}

TEST_F(DispatcherTest, MoverRewritesDueEntriesIntoTheRetryStream) {
  redis_.Append(3, 3);
  redis_.AddGroup(kHandler, 1);
  const int64_t t0 = absl::ToUnixMillis(kT0);
  FailureRecord failure{1, "nack", "boom", "E1", kConsumer, t0 - 500};
  const std::string due = EncodeDueMember(DueMember{0, Id(3), failure});
  const std::string later = EncodeDueMember(DueMember{0, Id(4), failure});
  redis_.AddDue(due, t0 - 1);
  redis_.AddDue(later, t0 + 5000);
  Start(FastTickOptions());
  auto sink = Register(1, Reg());

  AwaitTickAt(kT0);
  ASSERT_TRUE(commands_->WaitForCount("EVALSHA", 1, kWait));
  Settle();
  // A cheap probe of the earliest member, then the batch since one is due.
  EXPECT_THAT(Sent("ZRANGE"),
              ElementsAre(Command{"ZRANGE", "orders.billing.retry.due", "0", "0", "WITHSCORES"},
                          Command{"ZRANGE", "orders.billing.retry.due", "-inf", "+inf",
                                  "BYSCORE", "LIMIT", "0", "129", "WITHSCORES"}));
  const std::vector<Command> calls = ScriptCalls(MoveDueScript());
  ASSERT_EQ(calls.size(), 1u);  // the later one is not due
  const Command& c = calls[0];
  EXPECT_THAT(Command(c.begin() + 2, c.begin() + 11),
              ElementsAre("3", kStream, "orders.billing.retry", "orders.billing.retry.due",
                          kHandler, Id(3), due, "billing-retry", "billing:scheduled"));
  std::map<std::string, std::string> f = ScriptFields(c, 11);
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
  redis_.AddRetryEntries({retry, poison, next});
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
  const std::vector<Command> calls = ScriptCalls(DeadLetterScript());
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_THAT(Command(calls[0].begin() + 2, calls[0].begin() + 10),
              ElementsAre("2", "orders.billing.retry", "orders.billing.dlq", "billing-retry",
                          "51-0", kConsumer, "0", "evict"));
  std::map<std::string, std::string> f = ScriptFields(calls[0], 10);
  EXPECT_EQ(f["x-redrive-reason"], "poison");
  EXPECT_EQ(f["x-redrive-source-stream"], "orders.billing.retry");
  EXPECT_THAT(f["x-redrive-last-error"], HasSubstr("_retry_count"));
  absl::StatusOr<DecodedEntry> data = DecodeDataValue(f["__data__"]);
  ASSERT_TRUE(data.ok());
  EXPECT_THAT(data->body, HasSubstr("\"_dlq_raw_b64\":\"eyJuIjo0LCJfcmV0cnlfY291bnQiOiJhYmMifQ==\""));
  EXPECT_EQ(Stats().poison, 1u);
}

// ------------------------------------------------------------ lost groups

TEST_F(DispatcherTest, LostGroupIsRecreatedAfterTheLastEntryRead) {
  redis_.Append(1, 2);
  Start();
  v1::Register reg = BacklogReg();
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

// Issue 10 item 5: a rolling deploy burnt attempts. What is unsettled when
// the grace ends stays pending for the next owner (broker.proto, step 6): it
// is handed back without counting an attempt, even on its final attempt
// (max_retries 0), instead of failing as "disconnected" into the DLQ.
TEST_F(DispatcherTest, DrainHandsUnsettledDeliveriesBackWithoutCountingAnAttempt) {
  redis_.Append(1, 2);
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
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());

  AwaitTickAt(kT0 + absl::Seconds(5));
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));
  // Handed back at once (delay 0), before the drain completes, as an entry
  // that was never delivered: no failure recorded, nothing dead-lettered.
  EXPECT_THAT(ScheduledIds("returned"), ElementsAre(Id(2)));
  EXPECT_THAT(ScheduledIds("disconnected"), IsEmpty());
  for (const Command& c : ScriptCalls(ScheduleRetryScript())) EXPECT_EQ(c[9], "0");
  EXPECT_THAT(ScriptCalls(DeadLetterScript()), IsEmpty());
  EXPECT_THAT(Sent("XRANGE"), IsEmpty());
  EXPECT_EQ(Stats().drain_released, 1u);
  EXPECT_EQ(Stats().returned, 1u);
  EXPECT_EQ(Stats().dead_letters, 0u);
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());
  EXPECT_THAT(Sent("XACK"), ElementsAre(AckCommand({Id(1)})));
  ASSERT_TRUE(sink->status().has_value());
  EXPECT_THAT(*sink->status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(sink->finish_calls(), 1);
  EXPECT_EQ(InFlight(1), 0u);
}

// Regression (found by this test, fixed in 54cdf63): a read that was out when
// Drain finished the sessions was delivered when it returned, to sessions
// already finished, and its entries were not released with the rest.
TEST_F(DispatcherTest, ReadReturningAfterDrainFinishedDeliversNothing) {
  redis_.Append(1, 2);
  Start();
  commands_->Hold("XREADGROUP");
  v1::Register reg = BacklogReg();
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
  EXPECT_THAT(ScheduledIds("returned"), ElementsAre(Id(1), Id(2)));
  EXPECT_THAT(Sent("XCLAIM"), IsEmpty());
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
