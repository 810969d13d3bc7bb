#include "daemon/redis/executor.h"

#include <utility>

#include "daemon/redis/connect.h"

namespace redrive {

RedisExecutor::RedisExecutor(Options options) : options_(std::move(options)) {
  workers_.reserve(options_.threads);
  for (size_t i = 0; i < options_.threads; ++i) {
    workers_.emplace_back([this, i] { Work(i); });
  }
}

RedisExecutor::~RedisExecutor() { Stop(); }

bool RedisExecutor::Submit(Task task) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || queue_.size() >= options_.max_queue) return false;
  queue_.push_back(std::move(task));
  return true;
}

void RedisExecutor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void RedisExecutor::Work(size_t index) {
  RedisConnectionOptions conn = options_.connection;
  if (!conn.client_name.empty()) absl::StrAppend(&conn.client_name, "-w", index);
  std::unique_ptr<RedisCommander> connection = OpenRedis(conn);
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task(*connection);
  }
}

}  // namespace redrive
