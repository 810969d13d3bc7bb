#include "daemon/event_loop.h"

#include <event2/event.h>
#include <event2/thread.h>

#include <cassert>
#include <cstdlib>

#include "absl/synchronization/notification.h"

namespace redrive {
namespace {

void UsePthreadsOnce() {
  static const bool ok = [] { return evthread_use_pthreads() == 0; }();
  if (!ok) std::abort();  // libevent without thread support: broken install
}

}  // namespace

namespace {
// True on every EventLoop thread.
thread_local bool on_event_loop = false;
}  // namespace

const LoopThread kLoopThread;

void LoopThread::AssertHeld() const { assert(on_event_loop); }

EventLoop::EventLoop() {
  UsePthreadsOnce();
  base_ = event_base_new();
  if (base_ == nullptr) std::abort();
  // A persistent user event: event_active() from any thread wakes the loop.
  wakeup_ = event_new(base_, -1, EV_PERSIST, &EventLoop::OnWakeup, this);
  event_add(wakeup_, nullptr);
  thread_ = std::thread([this] {
    on_event_loop = true;
    event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  });
}

EventLoop::~EventLoop() {
  Stop();
  if (thread_.joinable()) thread_.join();
  RunPosted();  // anything posted between the last wakeup and the exit
  event_free(wakeup_);
  event_base_free(base_);
}

void EventLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  event_active(wakeup_, EV_READ, 0);
}

bool EventLoop::Post(Task task) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    tasks_.push_back(std::move(task));
  }
  event_active(wakeup_, EV_READ, 0);
  return true;
}

void EventLoop::RunSync(Task task) {
  absl::Notification done;
  if (!Post([&] {
        task();
        done.Notify();
      })) {
    return;
  }
  done.WaitForNotification();
}

void EventLoop::OnWakeup(int, short, void* self) {
  auto* loop = static_cast<EventLoop*>(self);
  loop->RunPosted();
  absl::MutexLock lock(&loop->mu_);
  if (loop->stopping_ && loop->tasks_.empty()) event_base_loopbreak(loop->base_);
}

void EventLoop::RunPosted() {
  std::deque<Task> batch;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(tasks_);
  }
  for (Task& t : batch) t();
}

std::unique_ptr<EventLoop::Timer> EventLoop::NewTimer(Task task) {
  std::unique_ptr<Timer> timer(new Timer(std::move(task)));
  timer->event_ = evtimer_new(base_, &Timer::Fire, timer.get());
  return timer;
}

EventLoop::Timer::~Timer() {
  if (event_ != nullptr) event_free(event_);
}

void EventLoop::Timer::Arm(absl::Duration delay) {
  const timeval tv = absl::ToTimeval(std::max(delay, absl::ZeroDuration()));
  // libevent measures a timer from the time it cached when the loop turn
  // began; refresh it so the delay counts from now, not from the start of a
  // turn that may already have run for milliseconds. (That time is still the
  // coarse clock's: see the header.)
  event_base_update_cache_time(event_get_base(event_));
  evtimer_add(event_, &tv);
}

void EventLoop::Timer::Cancel() { evtimer_del(event_); }

void EventLoop::Timer::Fire(int, short, void* self) { static_cast<Timer*>(self)->task_(); }

}  // namespace redrive
