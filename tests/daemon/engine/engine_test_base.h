// What the unit tests of the engine's parts (tests/daemon/engine/) share: an
// EngineContext over a FakeStreamOps on a real EventLoop thread, an injected
// clock (time moves only when a test sets it), and the registration the
// parts serve (channel "orders", handler "billing", instance "i1", EggAI key
// names).
//
// Every call into a part runs on the loop thread (Run); after it the test
// waits until no fake reply is in transit (Settle), so what FakeStreamOps
// recorded is final. Parts are created and destroyed on the loop thread
// (their timers and guards belong to it).
#ifndef REDRIVE_TESTS_DAEMON_ENGINE_ENGINE_TEST_BASE_H_
#define REDRIVE_TESTS_DAEMON_ENGINE_ENGINE_TEST_BASE_H_

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/engine/context.h"
#include "daemon/event_loop.h"
#include "daemon/event_summary.h"
#include "daemon/keys.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/reply.h"
#include "daemon/subscription.h"
#include "tests/fakes/fake_stream_ops.h"
#include "tests/testing/wait.h"

namespace redrive::testing {

inline constexpr char kChannel[] = "orders";
inline constexpr char kHandler[] = "billing";
inline constexpr char kInstance[] = "i1";
inline constexpr char kKey[] = "orders/billing";
inline const absl::Time kT0 = absl::FromUnixMillis(1'700'000'000'000);

inline v1::Register BaseRegister() {
  v1::Register r;
  r.set_channel(kChannel);
  r.set_handler_id(kHandler);
  return r;
}

// The effective settings of `reg` (defaults filled in), as the dispatcher
// would hold them.
inline SpecPtr MakeSpec(const v1::Register& reg = BaseRegister()) {
  absl::StatusOr<SubscriptionSpec> spec = ResolveRegistration(reg, KeyStyle::kEggAI, kInstance);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return std::make_shared<const SubscriptionSpec>(spec.ok() ? *std::move(spec)
                                                            : SubscriptionSpec{});
}

// A Redis error reply as the ops report it ("NOGROUP ..." → kNoGroup).
inline absl::Status RedisErrorReply(const std::string& text) {
  return RedisErrorStatus(RedisReply::Error(text));
}

inline std::string Id(int n) { return absl::StrCat(n, "-0"); }

inline StreamEntry DataEntry(const std::string& id, const std::string& data) {
  StreamEntry e;
  e.id = id;
  e.fields = {{"__data__", data}};
  return e;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    options_.instance_id = kInstance;
    options_.now = [this] { return now_; };
    options_.unit_random = [] { return 0.5; };
  }

  // Runs `fn` on the loop thread, then waits until every fake reply it
  // caused (and those they caused) has been delivered.
  void Run(const std::function<void()>& fn) {
    loop_.RunSync(fn);
    Settle();
  }
  void Settle() {
    ASSERT_TRUE(WaitFor([this] {
      bool idle = false;
      loop_.RunSync([&] { idle = ops_.in_transit() == 0; });
      return idle;
    }));
  }
  // The clock the parts read (ctx.now()).
  void SetNow(absl::Time t) {
    loop_.RunSync([&] { now_ = t; });
  }
  absl::Time Now() const { return now_; }

  // A copy of the calls of op R so far, read on the loop thread.
  template <typename R>
  std::vector<R> Calls() {
    std::vector<R> out;
    loop_.RunSync([&] { out = ops_.calls<R>(); });
    return out;
  }
  template <typename R>
  void Answer(std::function<typename R::Reply(const R&)> fn) {
    loop_.RunSync([&] { ops_.Answer<R>(std::move(fn)); });
  }
  DispatcherStats Stats() {
    DispatcherStats s;
    loop_.RunSync([&] { s = stats_; });
    return s;
  }

  // Declared first: destroyed last, after everything that posts to it.
  EventLoop loop_;
  FakeStreamOps ops_{loop_};
  absl::Time now_ = kT0;  // loop thread
  DispatcherOptions options_;
  DispatcherStats stats_;
  EventSummary summary_{absl::Seconds(10), kT0};
  OpTracker tracker_;
  EngineContext ctx_{loop_, ops_, options_, stats_, summary_, tracker_};
  const SpecPtr spec_ = MakeSpec();
  const HandlerRef ref_{kKey, 1};
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_DAEMON_ENGINE_ENGINE_TEST_BASE_H_
