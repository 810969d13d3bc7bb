// The seams between daemon logic and Redis: RedisCommander (synchronous,
// worker threads) and AsyncCommander (the EventLoop), with the connection
// options both implementations take. Implementations: RedisConnection
// (connection.h), HiredisAsync (hiredis_async.h) and the fakes in
// tests/fakes/. Everything that speaks Redis commands lives under
// daemon/redis/; the rest of the daemon calls the typed operations there.
#ifndef REDRIVE_DAEMON_REDIS_COMMANDER_H_
#define REDRIVE_DAEMON_REDIS_COMMANDER_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "daemon/redis/reply.h"
#include "daemon/redis/url.h"

namespace redrive {

using RedisArgv = std::vector<absl::string_view>;

class SentinelWatcher;

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
  // Set for redis-sentinel:// addresses (sentinel.h): every connect goes to
  // the primary it names and checks ROLE; a change of primary or a READONLY
  // error reply drops the connection. Null: `address` as given.
  std::shared_ptr<SentinelWatcher> sentinel;
};

using AsyncCallback = std::function<void(absl::StatusOr<RedisReply>)>;

// The seam between the dispatcher and Redis. Implementations: HiredisAsync
// and tests/fakes/fake_async_redis.h.
class AsyncCommander {
 public:
  virtual ~AsyncCommander() = default;

  // Queues one command. `done` runs later on the loop thread (never inside
  // Send) with the reply (Redis error replies as kError), or UNAVAILABLE
  // when the connection is down or drops first. Replies arrive in order.
  // `extra_timeout` lengthens the command timeout for blocking commands.
  // An overload rather than a default argument (a virtual's default comes
  // from the static type): implementations override the three-argument Send
  // and say `using AsyncCommander::Send;` to keep this one visible.
  void Send(const RedisArgv& argv, AsyncCallback done) {
    Send(argv, std::move(done), absl::ZeroDuration());
  }
  virtual void Send(const RedisArgv& argv, AsyncCallback done, absl::Duration extra_timeout) = 0;

  virtual bool connected() const = 0;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_COMMANDER_H_
