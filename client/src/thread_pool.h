// ThreadPool: a fixed number of threads running queued closures, for the
// worker's handler calls. Internal to redrive_client.
//
// Thread-safe.
#ifndef REDRIVE_CLIENT_SRC_THREAD_POOL_H_
#define REDRIVE_CLIENT_SRC_THREAD_POOL_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace redrive::client_internal {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  // Runs what is queued, then joins the threads.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Schedule(absl::AnyInvocable<void() &&> fn) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace redrive::client_internal

#endif  // REDRIVE_CLIENT_SRC_THREAD_POOL_H_
