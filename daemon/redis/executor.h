// RedisExecutor: a pool of worker threads that each own one RedisConnection,
// so gRPC reactions never block on Redis.
#ifndef REDRIVE_DAEMON_REDIS_EXECUTOR_H_
#define REDRIVE_DAEMON_REDIS_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/redis/connection.h"

namespace redrive {

// Runs tasks on `threads` worker threads, each owning one RedisConnection.
// Submit never blocks: a full queue or a stopped executor refuses the task.
//
// Thread-safe.
class RedisExecutor {
 public:
  struct Options {
    RedisConnectionOptions connection;
    size_t threads = 4;
    size_t max_queue = 10000;
  };
  using Task = std::function<void(RedisCommander&)>;

  explicit RedisExecutor(Options options);
  // Stops: runs what is queued, then joins the workers.
  ~RedisExecutor();

  // False when the queue is full or the executor is stopping; the task is
  // then dropped without running.
  bool Submit(Task task);
  // Runs every queued task, then stops the workers. Idempotent.
  void Stop();

 private:
  void Work(size_t index);

  const Options options_;
  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_EXECUTOR_H_
