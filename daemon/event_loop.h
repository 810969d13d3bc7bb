// EventLoop: one libevent loop on its own thread. Everything that touches
// hiredis async contexts or the dispatcher runs on it.
//
// Thread-safe: Post() may be called from any thread; the timer methods and
// the loop's callbacks run on the loop thread only.
#ifndef REDRIVE_DAEMON_EVENT_LOOP_H_
#define REDRIVE_DAEMON_EVENT_LOOP_H_

#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct event_base;
struct event;

namespace redrive {

// The capability "running on an event-loop thread", for clang's
// thread-safety analysis (a role, like a thread checker): state that only
// the loop thread may touch is ABSL_GUARDED_BY(kLoopThread) and the
// functions that touch it are ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread), so
// the -Wthread-safety build (scripts/test.sh) rejects an access from a
// function not known to run on the loop. Code entered on the loop — a
// posted task, a timer, a Redis callback — states it with
// kLoopThread.AssertHeld(), which debug builds check at run time.
class ABSL_LOCKABLE LoopThread {
 public:
  constexpr LoopThread() = default;
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK();
};
extern const LoopThread kLoopThread;

class EventLoop {
 public:
  using Task = std::function<void()>;

  // Starts the loop thread.
  EventLoop();
  // Stops the loop (tasks already posted run first) and joins the thread.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs `task` on the loop thread, in posting order. Returns false (and
  // drops the task) once the loop is stopping.
  bool Post(Task task);

  // Runs `task` on the loop thread and waits for it. Must not be called from
  // the loop thread.
  void RunSync(Task task);

  // A timer owned by the caller; destroying it cancels it. Loop thread only.
  class Timer {
   public:
    ~Timer();
    // (Re)arms the timer to fire once after `delay`. libevent reads the time
    // from CLOCK_MONOTONIC_COARSE (one kernel tick, 4 ms here), so the timer
    // may fire up to one tick before `delay` by a precise clock.
    void Arm(absl::Duration delay);
    void Cancel();

   private:
    friend class EventLoop;
    explicit Timer(Task task) : task_(std::move(task)) {}
    static void Fire(int, short, void* self);
    Task task_;
    struct event* event_ = nullptr;
  };
  std::unique_ptr<Timer> NewTimer(Task task);

  bool InLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }
  struct event_base* base() {
    return base_;
  }

  // Stops the loop after running what is already posted. Idempotent.
  void Stop();

 private:
  static void OnWakeup(int, short, void* self);
  void RunPosted();

  struct event_base* base_ = nullptr;
  struct event* wakeup_ = nullptr;
  absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_EVENT_LOOP_H_
