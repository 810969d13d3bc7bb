// FakeAsyncCommander: a scripted AsyncCommander for unit tests of the code
// that runs on the EventLoop (Dispatcher, StreamNotifier).
//
// Every command is recorded as owned strings. Its reply comes from a
// test-installed responder, computed inside Send (as Redis executes a
// command when it arrives) and delivered LATER through EventLoop::Post,
// never inside Send: that is the AsyncCommander contract. Replies of one
// command kind (argv[0], e.g. "XREADGROUP") can be held back until the test
// releases them; held replies let later replies of other kinds overtake
// them, which a real connection never does, so hold only what the test
// reasons about. While `connected()` is false every command fails with
// UNAVAILABLE (still later, still recorded).
//
// Thread-safe: Send() runs on the loop thread; the inspection, hold and
// wait methods may be called from any thread. The responder runs on the
// loop thread, outside the fake's lock. Destroy on the loop thread.
#ifndef REDRIVE_TESTS_FAKES_FAKE_ASYNC_REDIS_H_
#define REDRIVE_TESTS_FAKES_FAKE_ASYNC_REDIS_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/event_loop.h"
#include "daemon/redis/hiredis_async.h"

namespace redrive::testing {

class FakeAsyncCommander final : public AsyncCommander {
 public:
  using Command = std::vector<std::string>;
  using Responder = std::function<absl::StatusOr<RedisReply>(const Command&)>;

  explicit FakeAsyncCommander(EventLoop& loop) : loop_(loop) {}
  // Loop thread. Replies still in transit are then delivered without
  // touching this object; held replies are dropped unanswered.
  ~FakeAsyncCommander() override { *alive_ = false; }

  FakeAsyncCommander(const FakeAsyncCommander&) = delete;
  FakeAsyncCommander& operator=(const FakeAsyncCommander&) = delete;

  using AsyncCommander::Send;
  void Send(const RedisArgv& argv, AsyncCallback done, absl::Duration /*extra_timeout*/) override {
    Command command(argv.begin(), argv.end());
    Responder responder;
    bool up = false;
    {
      absl::MutexLock lock(&mu_);
      commands_.push_back(command);
      responder = responder_;
      up = connected_;
    }
    absl::StatusOr<RedisReply> reply =
        !up         ? absl::StatusOr<RedisReply>(absl::UnavailableError("fake: not connected"))
        : responder ? responder(command)
                    : absl::StatusOr<RedisReply>(RedisReply::Error("ERR fake: no responder"));
    absl::MutexLock lock(&mu_);
    if (up && !command.empty() && held_kinds_.contains(command.front())) {
      held_.push_back(Held{command.front(), std::move(done), std::move(reply)});
      return;
    }
    PostLocked(std::move(done), std::move(reply));
  }

  bool connected() const override {
    absl::MutexLock lock(&mu_);
    return connected_;
  }

  void set_connected(bool connected) {
    absl::MutexLock lock(&mu_);
    connected_ = connected;
  }

  void set_responder(Responder responder) {
    absl::MutexLock lock(&mu_);
    responder_ = std::move(responder);
  }

  // From now on, replies to commands named `kind` are parked.
  void Hold(absl::string_view kind) {
    absl::MutexLock lock(&mu_);
    held_kinds_.insert(std::string(kind));
  }

  // Stops parking `kind` and delivers its parked replies, oldest first.
  // Returns how many were parked.
  size_t Release(absl::string_view kind) {
    absl::MutexLock lock(&mu_);
    held_kinds_.erase(std::string(kind));
    size_t released = 0;
    std::vector<Held> keep;
    for (Held& h : held_) {
      if (h.kind == kind) {
        PostLocked(std::move(h.done), std::move(h.reply));
        ++released;
      } else {
        keep.push_back(std::move(h));
      }
    }
    held_ = std::move(keep);
    return released;
  }

  // Replies parked right now for `kind`.
  size_t held(absl::string_view kind) const {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const Held& h : held_) n += h.kind == kind ? 1 : 0;
    return n;
  }

  // Replies posted to the loop whose callback has not run yet (held replies
  // excluded). Zero, read on the loop thread, means no reply is on its way.
  size_t in_transit() const {
    absl::MutexLock lock(&mu_);
    return in_transit_;
  }

  // Every command received, in order.
  std::vector<Command> commands() const {
    absl::MutexLock lock(&mu_);
    return commands_;
  }

  // The commands whose argv[0] is `kind`, in order.
  std::vector<Command> commands(absl::string_view kind) const {
    absl::MutexLock lock(&mu_);
    std::vector<Command> out;
    for (const Command& c : commands_) {
      if (!c.empty() && c.front() == kind) out.push_back(c);
    }
    return out;
  }

  size_t count(absl::string_view kind) const { return commands(kind).size(); }

  // Waits until at least `n` commands named `kind` were received.
  bool WaitForCount(absl::string_view kind, size_t n, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto reached = [this, kind, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      size_t seen = 0;
      for (const Command& c : commands_) seen += !c.empty() && c.front() == kind ? 1 : 0;
      return seen >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }

 private:
  struct Held {
    std::string kind;
    AsyncCallback done;
    absl::StatusOr<RedisReply> reply;
  };

  void PostLocked(AsyncCallback done, absl::StatusOr<RedisReply> reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++in_transit_;
    // The task owns the callback and the reply; it touches the fake only
    // while the fake is alive (`alive_` is read and written on the loop).
    auto task = std::make_shared<std::pair<AsyncCallback, absl::StatusOr<RedisReply>>>(
        std::move(done), std::move(reply));
    const bool posted = loop_.Post([this, alive = alive_, task] {
      if (*alive) {
        absl::MutexLock lock(&mu_);
        --in_transit_;
      }
      task->first(std::move(task->second));
    });
    if (!posted) --in_transit_;
  }

  EventLoop& loop_;
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  mutable absl::Mutex mu_;
  std::vector<Command> commands_ ABSL_GUARDED_BY(mu_);
  Responder responder_ ABSL_GUARDED_BY(mu_);
  bool connected_ ABSL_GUARDED_BY(mu_) = true;
  absl::flat_hash_set<std::string> held_kinds_ ABSL_GUARDED_BY(mu_);
  std::vector<Held> held_ ABSL_GUARDED_BY(mu_);
  size_t in_transit_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_FAKES_FAKE_ASYNC_REDIS_H_
