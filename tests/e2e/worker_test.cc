// redrive::Worker and redrive::Publisher against the real redrived binary
// and a real redis-server: delivery, retries into the DLQ, the concurrency
// limit, lease extension, reconnect after kill -9, late verbs of a dead
// stream, graceful stop, TLS with a bearer token.
#include "redrive/worker.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "redrive/publisher.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/ports.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::DaemonProcess;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::WaitFor;

std::string FieldOr(const StreamEntry& e, absl::string_view name) {
  for (const auto& [k, v] : e.fields) {
    if (k == name) return v;
  }
  return "<absent>";
}

v1::RetryPolicy Policy(uint32_t max_retries, uint32_t initial_backoff_ms) {
  v1::RetryPolicy p;
  p.set_max_retries(max_retries);
  p.set_initial_backoff_ms(initial_backoff_ms);
  p.set_multiplier(1.0);
  p.set_jitter(0.0);
  return p;
}

// What a handler saw: payload → calls, guarded.
class Seen {
 public:
  void Add(const Message& m) {
    absl::MutexLock lock(&mu_);
    ++calls_[m.payload()];
    ++total_;
  }
  int total() const {
    absl::MutexLock lock(&mu_);
    return total_;
  }
  std::map<std::string, int> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

// A gate handlers wait on until the test opens it.
class Gate {
 public:
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  // False when not opened within `timeout`.
  bool Wait(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&open_), timeout);
  }

 private:
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
};

// Opens its gates when it goes out of scope: declared after the Worker, so
// that a test ending early never leaves the Worker's destructor waiting for
// a blocked handler.
class OpenOnExit {
 public:
  explicit OpenOnExit(std::vector<Gate*> gates) : gates_(std::move(gates)) {}
  ~OpenOnExit() {
    for (Gate* g : gates_) g->Open();
  }
  OpenOnExit(const OpenOnExit&) = delete;
  OpenOnExit& operator=(const OpenOnExit&) = delete;

 private:
  std::vector<Gate*> gates_;
};

// The Worker's log lines (WorkerOptions::log), guarded.
class LogLines {
 public:
  std::function<void(absl::string_view)> Sink() {
    return [this](absl::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    };
  }
  // Lines containing `text`.
  int Count(absl::string_view text) const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const std::string& l : lines_) n += absl::StrContains(l, text) ? 1 : 0;
    return n;
  }
  std::string All() const {
    absl::MutexLock lock(&mu_);
    std::string out;
    for (const std::string& l : lines_) absl::StrAppend(&out, l, "\n");
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

// Runs `args` (args[0] looked up in PATH) with stdout and stderr appended to
// `log`; "" when it exits 0, else what went wrong.
std::string RunTool(std::vector<std::string> args, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    return absl::StrCat("cannot run ", args[0], ": ", std::strerror(err),
                        " (scripts/deps.sh installs it)");
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    return absl::StrCat(args[0], " failed (status ", status, "):\n", text.str());
  }
  return "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class WorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { redis_ = TestRedisServer::Start().release(); }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(redis_, nullptr);
    conn_ = redis_->Connect();
    daemon_ = StartDaemon();
    ASSERT_NE(daemon_, nullptr);
    publisher_ = Publisher::Connect(daemon_->address());
  }

  static std::unique_ptr<DaemonProcess> StartDaemon(const std::string& listen = "") {
    DaemonProcess::Options o;
    o.redis_url = redis_->url();
    o.grpc_listen = listen;
    o.extra_args = {"--instance-id=w1", "--reclaim-tick-ms=100", "--log-level=info"};
    return DaemonProcess::Start(o);
  }

  // Replaces the fixture's daemon with one on a fixed port, so that a
  // restarted daemon answers at the same target; returns that target.
  std::string UseFixedPortDaemon() {
    daemon_.reset();
    const std::string listen = absl::StrCat("127.0.0.1:", testing::PickFreePort());
    daemon_ = StartDaemon(listen);
    if (daemon_ != nullptr) publisher_ = Publisher::Connect(listen);
    return listen;
  }

  WorkerOptions Options() const {
    WorkerOptions o;
    o.target = daemon_->address();
    o.reconnect_initial = absl::Milliseconds(50);
    o.reconnect_max = absl::Milliseconds(400);
    return o;
  }

  // Handle(channel, "h", fn, options), Start and WaitReady.
  static absl::Status Begin(Worker& worker, const std::string& channel, HandlerFn fn,
                            HandlerOptions options = {}) {
    absl::Status s = worker.Handle(channel, "h", std::move(fn), std::move(options));
    if (s.ok()) s = worker.Start();
    if (s.ok()) s = worker.WaitReady(absl::Seconds(10));
    return s;
  }

  // Publishes payloads prefix0..prefix{n-1} in batches; their entry ids.
  std::vector<std::string> PublishN(const std::string& channel, const std::string& prefix, int n) {
    std::vector<std::string> ids;
    for (int start = 0; start < n; start += 500) {
      std::vector<OutgoingMessage> batch;
      for (int i = start; i < std::min(n, start + 500); ++i) {
        OutgoingMessage m;
        m.payload = absl::StrCat(prefix, i);
        batch.push_back(std::move(m));
      }
      absl::StatusOr<std::vector<Published>> r = publisher_->PublishBatch(channel, batch);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) return ids;
      for (const Published& p : *r) ids.push_back(p.entry_id);
    }
    return ids;
  }

  int64_t Pending(const std::string& stream, const std::string& group) {
    return testing::PendingCount(*conn_, stream, group);
  }

  static TestRedisServer* redis_;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Publisher> publisher_;
};

TestRedisServer* WorkerTest::redis_ = nullptr;

TEST_F(WorkerTest, PublisherReturnsIdsAndCarriesHeadersTraceAndCorrelationId) {
  const std::string ch = "pub.meta";
  Worker worker(Options());
  absl::Mutex mu;
  std::vector<Message> got;
  HandlerOptions ho;
  ho.max_in_flight = 4;
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    absl::MutexLock lock(&mu);
                    got.push_back(m);
                    return absl::OkStatus();
                  },
                  ho)
                  .ok());

  OutgoingMessage m;
  m.payload = R"({"order":1})";
  m.content_type = "application/json";
  m.headers = {{"tenant", "acme"}, {"tenant", "again"}};
  m.correlation_id = "corr-1";
  m.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  m.tracestate = "k=v";
  absl::StatusOr<Published> p = publisher_->Publish(ch, m);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->correlation_id, "corr-1");
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mu);
    return got.size() == 1;
  }));
  worker.Stop(absl::Seconds(5));
  const Message& d = got[0];
  EXPECT_EQ(d.payload(), m.payload);
  EXPECT_EQ(d.entry_id(), p->entry_id);
  EXPECT_EQ(d.original_entry_id(), p->entry_id);
  EXPECT_EQ(d.content_type(), "application/json");
  EXPECT_EQ(d.correlation_id(), "corr-1");
  EXPECT_EQ(d.traceparent(), m.traceparent);
  EXPECT_EQ(d.tracestate(), "k=v");
  EXPECT_EQ(d.headers(), m.headers);
  EXPECT_EQ(d.header("tenant"), "acme");
  EXPECT_EQ(d.attempt(), 1u);
  EXPECT_EQ(d.max_attempts(), 6u);  // the daemon's default policy: 5 retries
  // The daemon writes XACKs in batches, shortly after the verb.
  EXPECT_TRUE(WaitFor([&] { return Pending(ch, "h") == 0; }));
  EXPECT_EQ(publisher_->Publish("bad channel", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerTest, DeliversAThousandMessagesExactlyOnce) {
  const std::string ch = "once";
  Seen seen;
  Worker worker(Options());
  HandlerOptions ho;
  ho.max_in_flight = 64;
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    seen.Add(m);
                    return Result::Ack();
                  },
                  ho)
                  .ok());
  ASSERT_EQ(PublishN(ch, "m-", 1000).size(), 1000u);
  ASSERT_TRUE(
      WaitFor([&] { return seen.total() >= 1000 && Pending(ch, "h") == 0; }, absl::Seconds(30)))
      << seen.total() << " handled, pending " << Pending(ch, "h");
  worker.Stop(absl::Seconds(5));
  std::map<std::string, int> want;
  for (int i = 0; i < 1000; ++i) want[absl::StrCat("m-", i)] = 1;
  EXPECT_EQ(seen.calls(), want);
  const WorkerStats s = worker.stats();
  EXPECT_EQ(s.deliveries, 1000u);
  EXPECT_EQ(s.acks, 1000u);
  EXPECT_EQ(s.nacks + s.terminates + s.dropped_verbs, 0u);
  // Verbs travel batched: fewer writes than verbs.
  EXPECT_LT(s.verb_writes, 1000u);
  EXPECT_EQ(testing::XLenOf(*conn_, "once.h.dlq"), 0);
}

TEST_F(WorkerTest, FailuresReachTheDeadLetterQueueWithTheHandlersErrorText) {
  const std::string ch = "fail";
  absl::Mutex mu;
  std::map<std::string, std::vector<std::pair<uint32_t, std::string>>> attempts;
  Worker worker(Options());
  HandlerOptions ho;
  ho.retry_policy = Policy(/*max_retries=*/2, /*initial_backoff_ms=*/50);
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    {
                      absl::MutexLock lock(&mu);
                      attempts[m.payload()].emplace_back(m.attempt(), m.previous_error());
                    }
                    if (m.payload() == "throw") throw std::runtime_error("thrown: bad input");
                    if (m.payload() == "terminate") {
                      return Result::Terminate("not an order", "E_SCHEMA");
                    }
                    if (m.payload() == "delay") {
                      return Result::Retry("later", absl::Milliseconds(20), "E_LATER");
                    }
                    return absl::InternalError(absl::StrCat("cannot handle ", m.payload()));
                  },
                  ho)
                  .ok());
  const std::vector<std::string> payloads = {"a", "b", "throw", "terminate", "delay"};
  std::map<std::string, std::string> id_of;
  for (const std::string& p : payloads) {
    absl::StatusOr<Published> r = publisher_->Publish(ch, p);
    ASSERT_TRUE(r.ok()) << r.status();
    id_of[p] = r->entry_id;
  }
  ASSERT_TRUE(WaitFor([&] { return testing::XLenOf(*conn_, "fail.h.dlq") == 5; }))
      << testing::XLenOf(*conn_, "fail.h.dlq");
  worker.Stop(absl::Seconds(5));

  std::map<std::string, const StreamEntry*> dlq_by_original;
  const std::vector<StreamEntry> dlq = testing::XRangeAll(*conn_, "fail.h.dlq");
  for (const StreamEntry& e : dlq) dlq_by_original[FieldOr(e, "x-redrive-original-id")] = &e;
  ASSERT_EQ(dlq_by_original.size(), 5u);
  struct Want {
    std::string reason, error, code, attempts;
  };
  const std::map<std::string, Want> want = {
      {"a", {"max_retries", "cannot handle a", "INTERNAL", "3"}},
      {"b", {"max_retries", "cannot handle b", "INTERNAL", "3"}},
      {"throw", {"max_retries", "thrown: bad input", "EXCEPTION", "3"}},
      {"terminate", {"terminated", "not an order", "E_SCHEMA", "1"}},
      {"delay", {"max_retries", "later", "E_LATER", "3"}},
  };
  for (const auto& [payload, w] : want) {
    ASSERT_EQ(dlq_by_original.count(id_of[payload]), 1u) << payload;
    const StreamEntry& e = *dlq_by_original[id_of[payload]];
    EXPECT_EQ(FieldOr(e, "x-redrive-reason"), w.reason) << payload;
    EXPECT_EQ(FieldOr(e, "x-redrive-last-error"), w.error) << payload;
    EXPECT_EQ(FieldOr(e, "x-redrive-last-error-code"), w.code) << payload;
    EXPECT_EQ(FieldOr(e, "x-redrive-attempts"), w.attempts) << payload;
  }
  // The handler saw each attempt once, with the previous attempt's error.
  absl::MutexLock lock(&mu);
  using Seq = std::vector<std::pair<uint32_t, std::string>>;
  EXPECT_EQ(attempts["a"], (Seq{{1, ""}, {2, "cannot handle a"}, {3, "cannot handle a"}}));
  EXPECT_EQ(attempts["throw"], (Seq{{1, ""}, {2, "thrown: bad input"}, {3, "thrown: bad input"}}));
  EXPECT_EQ(attempts["terminate"], (Seq{{1, ""}}));
  EXPECT_EQ(attempts["delay"], (Seq{{1, ""}, {2, "later"}, {3, "later"}}));
  EXPECT_EQ(Pending(ch, "h"), 0);
}

TEST_F(WorkerTest, NeverRunsMoreThanMaxInFlightHandlersAtOnce) {
  const std::string ch = "limit";
  constexpr int kLimit = 4;
  std::atomic<int> now{0};
  std::atomic<int> most{0};
  Seen seen;
  WorkerOptions wo = Options();
  wo.threads = 16;  // more threads than the limit: the limit is the worker's
  Worker worker(wo);
  HandlerOptions ho;
  ho.max_in_flight = kLimit;
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    const int n = ++now;
                    int m0 = most.load();
                    while (n > m0 && !most.compare_exchange_weak(m0, n)) {
                    }
                    absl::SleepFor(absl::Milliseconds(15));
                    --now;
                    seen.Add(m);
                    return absl::OkStatus();
                  },
                  ho)
                  .ok());
  ASSERT_EQ(PublishN(ch, "c-", 60).size(), 60u);
  ASSERT_TRUE(WaitFor([&] { return seen.total() == 60 && Pending(ch, "h") == 0; }));
  worker.Stop(absl::Seconds(5));
  EXPECT_EQ(most.load(), kLimit);
  EXPECT_EQ(seen.calls().size(), 60u);
}

// Deliveries live in the arena their read was parsed into, and read arenas
// are reused: a Message the handler keeps must keep its own batch.
TEST_F(WorkerTest, MessagesKeptPastTheirHandlerStayIntact) {
  const std::string ch = "kept";
  absl::Mutex mu;
  std::vector<Message> kept;
  Worker worker(Options());
  HandlerOptions ho;
  ho.max_in_flight = 50;  // many reads, so many arenas go back to the pool
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    absl::MutexLock lock(&mu);
                    kept.push_back(m);
                    return Result::Ack();
                  },
                  ho)
                  .ok());
  const std::vector<std::string> ids = PublishN(ch, "keep-", 600);
  ASSERT_EQ(ids.size(), 600u);
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::MutexLock lock(&mu);
        return kept.size() >= 600 && Pending(ch, "h") == 0;
      },
      absl::Seconds(30)));
  worker.Stop(absl::Seconds(5));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(kept.size(), 600u);
  std::map<std::string, std::string> by_id;  // entry id → payload, read now
  for (const Message& m : kept) {
    EXPECT_EQ(m.channel(), ch);
    by_id[m.entry_id()] = m.payload();
  }
  ASSERT_EQ(by_id.size(), 600u);
  for (int i = 0; i < 600; ++i) EXPECT_EQ(by_id[ids[i]], absl::StrCat("keep-", i)) << i;
}

// Pool threads are shared by the handlers: a handler with a long queue
// hands its thread over now and then, so another handler's deliveries do
// not wait for that queue to empty.
TEST_F(WorkerTest, AHandlerWithABacklogDoesNotStarveAnotherOnASharedPool) {
  const std::string busy = "busy";
  const std::string quiet = "quiet";
  std::atomic<int> busy_done{0};
  std::atomic<int> busy_done_when_quiet_finished{-1};
  std::atomic<int> quiet_done{0};
  WorkerOptions wo = Options();
  wo.threads = 1;
  Worker worker(wo);
  HandlerOptions ho;
  ho.max_in_flight = 1000;  // the busy handler holds all 600 at once
  ASSERT_TRUE(worker
                  .Handle(
                      busy, "h",
                      [&](const Message&) -> Result {
                        absl::SleepFor(absl::Milliseconds(1));
                        ++busy_done;
                        return Result::Ack();
                      },
                      ho)
                  .ok());
  ASSERT_TRUE(worker
                  .Handle(quiet, "h",
                          [&](const Message&) -> Result {
                            if (++quiet_done == 5) busy_done_when_quiet_finished = busy_done.load();
                            return Result::Ack();
                          })
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(worker.WaitReady(absl::Seconds(10)).ok());
  ASSERT_EQ(PublishN(busy, "b-", 600).size(), 600u);
  ASSERT_TRUE(WaitFor([&] { return busy_done.load() >= 10; }));
  ASSERT_EQ(PublishN(quiet, "q-", 5).size(), 5u);
  ASSERT_TRUE(WaitFor([&] { return quiet_done.load() == 5 && busy_done.load() == 600; },
                      absl::Seconds(30)));
  worker.Stop(absl::Seconds(5));
  // Measured: the quiet handler finishes after about 64 more busy calls; it
  // would wait for all 600 if a task ran its queue dry.
  EXPECT_LT(busy_done_when_quiet_finished.load(), 400);
  EXPECT_EQ(busy_done.load(), 600);
}

TEST_F(WorkerTest, HandlerRunningThreeLeasesIsExtendedNotRedelivered) {
  const std::string ch = "long";
  std::atomic<int> calls{0};
  std::atomic<uint32_t> attempt{0};
  std::atomic<bool> done{false};
  Worker worker(Options());
  HandlerOptions ho;
  ho.lease = absl::Milliseconds(1000);
  ho.retry_policy = Policy(/*max_retries=*/5, /*initial_backoff_ms=*/10);
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    ++calls;
                    attempt = m.attempt();
                    absl::SleepFor(absl::Milliseconds(3000));
                    done = true;
                    return absl::OkStatus();
                  },
                  ho)
                  .ok());
  ASSERT_TRUE(publisher_->Publish(ch, "slow").ok());
  ASSERT_TRUE(WaitFor([&] { return done.load() && Pending(ch, "h") == 0; }));
  worker.Stop(absl::Seconds(5));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(attempt.load(), 1u);
  const WorkerStats s = worker.stats();
  EXPECT_EQ(s.acks, 1u);
  EXPECT_EQ(s.deliveries, 1u);
  // Every half lease (500 ms) of a 3,000 ms call: 5 or 6 extensions.
  EXPECT_GE(s.extends, 5u);
  EXPECT_LE(s.extends, 6u);
  EXPECT_EQ(testing::XLenOf(*conn_, "long.h.retry"), 0);
}

TEST_F(WorkerTest, StopLetsTheRunningHandlerFinishAndItsAckLand) {
  const std::string ch = "stop";
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  Worker worker(Options());
  ASSERT_TRUE(Begin(worker, ch, [&](const Message&) -> Result {
                started = true;
                absl::SleepFor(absl::Milliseconds(500));
                finished = true;
                return absl::OkStatus();
              }).ok());
  ASSERT_TRUE(publisher_->Publish(ch, "in-flight").ok());
  ASSERT_TRUE(WaitFor([&] { return started.load(); }));
  EXPECT_EQ(Pending(ch, "h"), 1);
  worker.Stop(absl::Seconds(5));
  EXPECT_TRUE(finished.load());
  // The ACK was written before the stream closed; the daemon's XACK follows.
  EXPECT_TRUE(WaitFor([&] { return Pending(ch, "h") == 0; }));
  EXPECT_EQ(worker.stats().acks, 1u);
  EXPECT_EQ(worker.stats().dropped_verbs, 0u);
  EXPECT_EQ(testing::XLenOf(*conn_, "stop.h.retry"), 0);
}

TEST_F(WorkerTest, ReconnectsAfterKill9AndSettlesEveryMessage) {
  const std::string listen = UseFixedPortDaemon();
  ASSERT_NE(daemon_, nullptr);

  const std::string ch = "crash";
  constexpr int kN = 400;
  Seen seen;
  WorkerOptions wo = Options();
  wo.target = listen;
  Worker worker(wo);
  HandlerOptions ho;
  ho.max_in_flight = 16;
  ho.lease = absl::Milliseconds(1000);
  ho.retry_policy = Policy(/*max_retries=*/10, /*initial_backoff_ms=*/50);
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    absl::SleepFor(absl::Milliseconds(2));
                    seen.Add(m);
                    return absl::OkStatus();
                  },
                  ho)
                  .ok());
  ASSERT_EQ(PublishN(ch, "k-", kN).size(), static_cast<size_t>(kN));
  ASSERT_TRUE(WaitFor([&] { return seen.total() >= kN / 4; }));
  daemon_->Kill9();
  const int at_kill = seen.total();
  daemon_ = StartDaemon(listen);
  ASSERT_NE(daemon_, nullptr);

  auto settled = [&] {
    return static_cast<int>(seen.calls().size()) + testing::XLenOf(*conn_, "crash.h.dlq") >= kN &&
           Pending(ch, "h") == 0 && Pending("crash.h.retry", "h-retry") <= 0;
  };
  ASSERT_TRUE(WaitFor(settled, absl::Seconds(30)))
      << seen.calls().size() << " handled, pending " << Pending(ch, "h");
  worker.Stop(absl::Seconds(5));

  const std::map<std::string, int> calls = seen.calls();
  int lost = 0;
  int duplicates = 0;
  for (int i = 0; i < kN; ++i) {
    auto it = calls.find(absl::StrCat("k-", i));
    if (it == calls.end()) {
      ++lost;
    } else {
      duplicates += it->second - 1;
    }
  }
  std::cout << "kill -9 after " << at_kill << " of " << kN << " handled: lost " << lost
            << ", handled twice " << duplicates << ", dropped late verbs "
            << worker.stats().dropped_verbs << ", registrations " << worker.stats().registrations
            << "\n";
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(testing::XLenOf(*conn_, "crash.h.dlq"), 0);
  EXPECT_GE(worker.stats().registrations, 2u);  // reconnected by itself
  // Handled twice: deliveries whose ACK had not reached Redis when the
  // daemon died (at-least-once); reported, not bounded here.
  EXPECT_TRUE(worker.status().ok()) << worker.status();
}

TEST_F(WorkerTest, DrainNoticeFinishesRunningWorkThenReconnects) {
  const std::string listen = UseFixedPortDaemon();
  ASSERT_NE(daemon_, nullptr);
  const std::string ch = "drain";
  std::atomic<int> started{0};
  Seen seen;
  WorkerOptions wo = Options();
  wo.target = listen;
  Worker worker(wo);
  ASSERT_TRUE(Begin(worker, ch, [&](const Message& m) -> Result {
                ++started;
                absl::SleepFor(absl::Milliseconds(300));
                seen.Add(m);
                return absl::OkStatus();
              }).ok());
  ASSERT_TRUE(publisher_->Publish(ch, "during-drain").ok());
  ASSERT_TRUE(WaitFor([&] { return started.load() == 1; }));
  // SIGTERM: drain (grace 2,000 ms); the running call's ACK lands in it.
  EXPECT_EQ(daemon_->Terminate(), 0);
  EXPECT_EQ(seen.total(), 1);
  EXPECT_EQ(Pending(ch, "h"), 0);
  EXPECT_EQ(worker.stats().acks, 1u);
  daemon_ = StartDaemon(listen);
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(WaitFor([&] { return worker.stats().registrations == 2; }));
  ASSERT_TRUE(publisher_->Publish(ch, "after-restart").ok());
  ASSERT_TRUE(WaitFor([&] { return seen.total() == 2 && Pending(ch, "h") == 0; }));
  worker.Stop(absl::Seconds(5));
  EXPECT_EQ(seen.calls(), (std::map<std::string, int>{{"during-drain", 1}, {"after-restart", 1}}));
}

TEST_F(WorkerTest, FatalRegistrationErrorIsReported) {
  Worker worker(Options());
  HandlerOptions ho;
  ho.lease = absl::Milliseconds(10);  // below the daemon's 1,000 ms minimum
  ASSERT_TRUE(worker
                  .Handle(
                      "bad", "h", [](const Message&) { return Result::Ack(); }, ho)
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  const absl::Status s = worker.WaitReady(absl::Seconds(10));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(worker.status().code(), absl::StatusCode::kInvalidArgument);
  worker.Stop(absl::Seconds(1));
  EXPECT_EQ(worker.Handle("x", "", [](const Message&) { return Result::Ack(); }).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerTest, LateVerbsOfADeadStreamAreDroppedNotSentOnTheNewStream) {
  // A freshly started daemon: its delivery ids count from 1.
  const std::string listen = UseFixedPortDaemon();
  ASSERT_NE(daemon_, nullptr);

  const std::string ch = "late";
  constexpr int kN = 3;
  // First attempts block on `old_gate` across the kill; the redeliveries
  // (attempt 2) block on `new_gate`.
  Gate old_gate;
  Gate new_gate;
  absl::Mutex mu;
  // payload → (attempt, previous_error_code, previous_error) per call.
  std::map<std::string, std::vector<std::tuple<uint32_t, std::string, std::string>>> calls;
  std::set<uint64_t> old_ids;
  std::set<uint64_t> new_ids;
  std::atomic<int> old_started{0};
  std::atomic<int> new_started{0};
  LogLines logs;
  WorkerOptions wo = Options();
  wo.target = listen;
  wo.log = logs.Sink();
  Worker worker(wo);
  OpenOnExit open_on_exit({&old_gate, &new_gate});
  HandlerOptions ho;
  ho.max_in_flight = 2 * kN;  // room for the redeliveries beside the blocked calls
  ho.lease = absl::Milliseconds(1000);
  ho.retry_policy = Policy(/*max_retries=*/3, /*initial_backoff_ms=*/50);
  ASSERT_TRUE(Begin(
                  worker, ch,
                  [&](const Message& m) -> Result {
                    {
                      absl::MutexLock lock(&mu);
                      calls[m.payload()].emplace_back(m.attempt(), m.previous_error_code(),
                                                      m.previous_error());
                      (m.attempt() == 1 ? old_ids : new_ids).insert(m.delivery().delivery_id());
                    }
                    Gate& gate = m.attempt() == 1 ? old_gate : new_gate;
                    ++(m.attempt() == 1 ? old_started : new_started);
                    if (!gate.Wait(absl::Seconds(30))) return Result::Retry("gate not opened");
                    return Result::Ack();
                  },
                  ho)
                  .ok());
  ASSERT_EQ(PublishN(ch, "late-", kN).size(), static_cast<size_t>(kN));
  ASSERT_TRUE(WaitFor([&] { return old_started.load() == kN; }));

  daemon_->Kill9();
  daemon_ = StartDaemon(listen);
  ASSERT_NE(daemon_, nullptr);
  ASSERT_TRUE(WaitFor([&] { return worker.stats().registrations == 2; }))
      << worker.stats().registrations;
  // The new daemon claims the entries once idle past the lease (an attempt
  // failed: LEASE_EXPIRED) and delivers them again as attempt 2, under the
  // delivery ids the blocked calls hold: ids count per daemon instance, so a
  // late ACK sent on this stream would settle these redeliveries.
  ASSERT_TRUE(WaitFor([&] { return new_started.load() == kN; }))
      << new_started.load() << " redeliveries running";
  {
    absl::MutexLock lock(&mu);
    const std::set<uint64_t> first = {1, 2, 3};
    ASSERT_EQ(old_ids, first);
    ASSERT_EQ(new_ids, first);
  }
  EXPECT_EQ(worker.stats().acks, 0u);

  // The calls of the dead stream return: their ACKs are dropped.
  old_gate.Open();
  ASSERT_TRUE(WaitFor([&] {
    const WorkerStats s = worker.stats();
    return s.dropped_verbs + s.acks + s.nacks + s.terminates >= static_cast<uint64_t>(kN);
  }));
  EXPECT_EQ(worker.stats().dropped_verbs, static_cast<uint64_t>(kN));
  EXPECT_EQ(worker.stats().acks, 0u);
  EXPECT_EQ(logs.Count("dropping ACK of delivery"), kN) << logs.All();
  // The redeliveries are still unsettled at the daemon.
  EXPECT_EQ(Pending("late.h.retry", "h-retry"), kN);

  new_gate.Open();
  ASSERT_TRUE(WaitFor([&] {
    return worker.stats().acks >= static_cast<uint64_t>(kN) && Pending(ch, "h") == 0 &&
           Pending("late.h.retry", "h-retry") == 0;
  })) << "acks "
      << worker.stats().acks << ", pending " << Pending("late.h.retry", "h-retry");
  worker.Stop(absl::Seconds(5));

  const WorkerStats s = worker.stats();
  EXPECT_EQ(s.registrations, 2u);
  EXPECT_EQ(s.deliveries, static_cast<uint64_t>(2 * kN));
  EXPECT_EQ(s.acks, static_cast<uint64_t>(kN));  // each once, on the new stream
  EXPECT_EQ(s.nacks + s.terminates, 0u);
  EXPECT_EQ(s.dropped_verbs, static_cast<uint64_t>(kN));
  // Nothing of the old stream reached the new one: the daemon answered no
  // verb with a notice (UNKNOWN_DELIVERY, ALREADY_SETTLED).
  EXPECT_EQ(logs.Count("notice for delivery"), 0) << logs.All();
  EXPECT_EQ(testing::XLenOf(*conn_, "late.h.dlq"), 0);
  absl::MutexLock lock(&mu);
  ASSERT_EQ(calls.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    const auto& c = calls[absl::StrCat("late-", i)];
    ASSERT_EQ(c.size(), 2u) << i;
    EXPECT_EQ(c[0], std::make_tuple(1u, std::string(), std::string())) << i;
    EXPECT_EQ(std::get<0>(c[1]), 2u) << i;
    EXPECT_EQ(std::get<1>(c[1]), "LEASE_EXPIRED") << i;
    EXPECT_TRUE(absl::StartsWith(std::get<2>(c[1]), "lease expired on consumer "))
        << std::get<2>(c[1]);
  }
}

TEST_F(WorkerTest, TlsWithBearerTokenEndToEnd) {
  constexpr char kToken[] = "worker-broker-token-0123456789";
  // A CA and a server certificate for 127.0.0.1, made with openssl.
  std::string dir = (std::filesystem::temp_directory_path() / "redrive-worker-tls-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string log = dir + "/openssl.log";
  const std::string ca = dir + "/ca.crt";
  const std::string crt = dir + "/server.crt";
  const std::string key = dir + "/server.key";
  { std::ofstream(dir + "/san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"; }
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                       "-nodes"};
  std::vector<std::string> make_ca = {"openssl", "req", "-x509"};
  make_ca.insert(make_ca.end(), ec.begin(), ec.end());
  make_ca.insert(make_ca.end(), {"-keyout", dir + "/ca.key", "-out", ca, "-days", "1", "-subj",
                                 "/CN=redrive-test-ca"});
  ASSERT_EQ(RunTool(make_ca, log), "");
  std::vector<std::string> make_csr = {"openssl", "req", "-new"};
  make_csr.insert(make_csr.end(), ec.begin(), ec.end());
  make_csr.insert(make_csr.end(),
                  {"-keyout", key, "-out", dir + "/server.csr", "-subj", "/CN=localhost"});
  ASSERT_EQ(RunTool(make_csr, log), "");
  ASSERT_EQ(RunTool({"openssl", "x509", "-req", "-in", dir + "/server.csr", "-CA", ca, "-CAkey",
                     dir + "/ca.key", "-set_serial", "1001", "-days", "1", "-extfile",
                     dir + "/san.ext", "-out", crt},
                    log),
            "");

  daemon_.reset();
  DaemonProcess::Options o;
  o.redis_url = redis_->url();
  o.extra_args = {"--instance-id=w1", "--tls-cert=" + crt, "--tls-key=" + key,
                  "--broker-auth=token"};
  o.env = {absl::StrCat("REDRIVE_BROKER_TOKEN=", kToken)};
  daemon_ = DaemonProcess::Start(o);
  ASSERT_NE(daemon_, nullptr);

  ClientOptions secure;
  secure.tls = ClientTlsOptions{};
  secure.tls->root_certs = ReadFile(ca);
  secure.bearer_token = kToken;
  ASSERT_FALSE(secure.tls->root_certs.empty());
  publisher_ = Publisher::Connect(daemon_->address(), secure);

  const std::string ch = "tls";
  Seen seen;
  {
    WorkerOptions wo = Options();
    wo.client = secure;
    Worker worker(wo);
    ASSERT_TRUE(Begin(worker, ch, [&](const Message& m) -> Result {
                  seen.Add(m);
                  return Result::Ack();
                }).ok());
    ASSERT_EQ(PublishN(ch, "t-", 10).size(), 10u);
    ASSERT_TRUE(WaitFor([&] { return seen.total() >= 10 && Pending(ch, "h") == 0; }))
        << seen.total();
    worker.Stop(absl::Seconds(5));
    std::map<std::string, int> want;
    for (int i = 0; i < 10; ++i) want[absl::StrCat("t-", i)] = 1;
    EXPECT_EQ(seen.calls(), want);
    EXPECT_EQ(worker.stats().acks, 10u);
    EXPECT_EQ(worker.stats().registrations, 1u);
  }

  std::atomic<int> others{0};
  auto count = [&](const Message&) -> Result {
    ++others;
    return Result::Ack();
  };
  {
    // TLS without the token: the registration is refused for good.
    WorkerOptions wo = Options();
    wo.client = secure;
    wo.client.bearer_token.clear();
    Worker worker(wo);
    ASSERT_TRUE(worker.Handle(ch, "no-token", count).ok());
    ASSERT_TRUE(worker.Start().ok());
    const absl::Status s = worker.WaitReady(absl::Seconds(5));
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
    EXPECT_EQ(worker.status().code(), absl::StatusCode::kUnauthenticated);
    worker.Stop(absl::Seconds(1));
    EXPECT_EQ(worker.stats().registrations, 0u);
    ClientOptions no_token = secure;
    no_token.bearer_token.clear();
    EXPECT_EQ(Publisher::Connect(daemon_->address(), no_token)->Publish(ch, "x").status().code(),
              absl::StatusCode::kUnauthenticated);
  }
  {
    // The token without TLS: the daemon does not answer plaintext; the
    // worker keeps retrying (UNAVAILABLE is not fatal) and never registers.
    LogLines logs;
    WorkerOptions wo = Options();
    wo.client.bearer_token = kToken;
    wo.log = logs.Sink();
    Worker worker(wo);
    ASSERT_TRUE(worker.Handle(ch, "no-tls", count).ok());
    ASSERT_TRUE(worker.Start().ok());
    const absl::Status s = worker.WaitReady(absl::Seconds(1));
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    worker.Stop(absl::Seconds(1));
    EXPECT_EQ(worker.stats().registrations, 0u);
    EXPECT_GE(logs.Count("stream ended (UNAVAILABLE"), 1) << logs.All();
    ClientOptions plain;
    plain.bearer_token = kToken;
    plain.call_timeout = absl::Seconds(2);
    EXPECT_EQ(Publisher::Connect(daemon_->address(), plain)->Publish(ch, "x").status().code(),
              absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(others.load(), 0);
  EXPECT_EQ(testing::XLenOf(*conn_, ch), 10);  // nothing published without TLS and token
  // No consumer group was made for the refused handlers.
  EXPECT_EQ(conn_->Command({"XINFO", "GROUPS", ch})->elements.size(), 1u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace redrive
