// Synchronous Redis access: the RedisCommander seam, its hiredis
// implementation (RedisConnection) and a pool of worker threads that each own
// one connection (RedisExecutor), so gRPC reactions never block on Redis.
#ifndef REDRIVE_DAEMON_REDIS_CLIENT_H_
#define REDRIVE_DAEMON_REDIS_CLIENT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "daemon/redis_reply.h"
#include "daemon/redis_url.h"

struct redisContext;

namespace redrive {

using RedisArgv = std::vector<absl::string_view>;

// The seam between daemon logic and Redis. Implementations: RedisConnection
// (real) and tests/fakes.
class RedisCommander {
 public:
  virtual ~RedisCommander() = default;

  // Sends one command (binary-safe arguments) and waits for its reply.
  // A Redis error reply is returned as a RedisReply of type kError. A broken
  // or unreachable connection is UNAVAILABLE; the command may or may not have
  // run (callers must not blindly retry non-idempotent commands).
  virtual absl::StatusOr<RedisReply> Command(const RedisArgv& argv) = 0;

  // Sends every command in one round trip; one reply per command, in order.
  virtual absl::StatusOr<std::vector<RedisReply>> Pipeline(
      absl::Span<const RedisArgv> commands) = 0;
};

struct RedisConnectionOptions {
  RedisAddress address;
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration command_timeout = absl::Seconds(5);
  // Reconnect backoff after a failure: doubles from min to max.
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // CLIENT SETNAME value ([!-~] without spaces); empty = none.
  std::string client_name;
};

// One hiredis connection with connect/command timeouts and TCP keepalive.
// Connects lazily on first use, authenticates (AUTH [user] password) and
// selects the database. After any I/O error the context is dropped; the next
// call reconnects once the backoff has elapsed and fails fast with
// UNAVAILABLE until then.
//
// Thread-compatible: one thread at a time.
class RedisConnection final : public RedisCommander {
 public:
  explicit RedisConnection(RedisConnectionOptions options);
  ~RedisConnection() override;
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override;
  absl::StatusOr<std::vector<RedisReply>> Pipeline(
      absl::Span<const RedisArgv> commands) override;

  // Connects now if not connected (subject to backoff).
  absl::Status EnsureConnected();
  bool connected() const { return context_ != nullptr; }
  // Drops the connection (tests, shutdown).
  void Disconnect();

 private:
  absl::Status Connect();
  absl::Status Fail(absl::string_view what);

  const RedisConnectionOptions options_;
  redisContext* context_ = nullptr;  // owned; freed by Disconnect()
  absl::Duration backoff_;
  absl::Time next_attempt_ = absl::InfinitePast();
};

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

#endif  // REDRIVE_DAEMON_REDIS_CLIENT_H_
