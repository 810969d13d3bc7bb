// RedisConnection: the hiredis implementation of RedisCommander (see
// commander.h). It owns its redisContext (freed on drop and destruction).
#ifndef REDRIVE_DAEMON_REDIS_CONNECTION_H_
#define REDRIVE_DAEMON_REDIS_CONNECTION_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "daemon/redis/commander.h"

struct redisContext;

namespace redrive {

// One hiredis connection with connect/command timeouts and TCP keepalive.
// Connects lazily on first use, authenticates (AUTH [user] password) and
// selects the database. After any I/O error the context is dropped; the next
// call reconnects once the backoff has elapsed and fails fast with
// UNAVAILABLE until then. With options.sentinel, it connects to the primary
// the watcher names, verifies ROLE, and reconnects at the next call after the
// primary changed or a command got a READONLY error.
//
// Thread-compatible: one thread at a time.
class RedisConnection final : public RedisCommander {
 public:
  explicit RedisConnection(RedisConnectionOptions options);
  ~RedisConnection() override;
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override;
  absl::StatusOr<std::vector<RedisReply>> Pipeline(absl::Span<const RedisArgv> commands) override;

  // Connects now if not connected (subject to backoff).
  absl::Status EnsureConnected();
  bool connected() const { return context_ != nullptr; }
  // Drops the connection (tests, shutdown).
  void Disconnect();

 private:
  absl::Status Connect();
  absl::Status Fail(absl::string_view what);
  // Schedules the next attempt after the backoff, and doubles it.
  void BackOff();
  // The node to connect to: the address, or the primary Sentinel names.
  absl::StatusOr<RedisAddress> Target();

  const RedisConnectionOptions options_;
  std::string peer_;  // for messages: the address, and the primary in use
  struct ContextDeleter {
    void operator()(redisContext* context) const;
  };
  std::unique_ptr<redisContext, ContextDeleter> context_;  // null when down
  absl::Duration backoff_;
  absl::Time next_attempt_ = absl::InfinitePast();
  bool connected_before_ = false;     // a later connect is a reconnect (metrics)
  uint64_t sentinel_generation_ = 0;  // SentinelWatcher::generation() at connect
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_CONNECTION_H_
