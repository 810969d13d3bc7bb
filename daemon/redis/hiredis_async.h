// HiredisAsync: the hiredis-async implementation of AsyncCommander (see
// commander.h), driven by libevent on the EventLoop.
//
// Loop thread only: Send() and every callback run on the EventLoop thread.
#ifndef REDRIVE_DAEMON_REDIS_HIREDIS_ASYNC_H_
#define REDRIVE_DAEMON_REDIS_HIREDIS_ASYNC_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/event_loop.h"
#include "daemon/redis/commander.h"

struct redisAsyncContext;

namespace redrive {

// One hiredis async connection driven by libevent. Connects at once and
// reconnects with exponential backoff after any failure; authenticates and
// selects the database on every connect; enables TCP keepalive. Connect and
// command timeouts are enforced by a watchdog timer (hiredis 0.14 async has
// none): a command unanswered past its deadline drops the connection, failing
// every outstanding command with UNAVAILABLE. With options.sentinel, every
// connect goes to the primary the watcher names (read from its cache: no
// blocking on the loop) and checks ROLE; the watchdog drops the connection
// when the primary changes, and so does a READONLY error reply.
class HiredisAsync final : public AsyncCommander {
 public:
  // `on_connected` runs (on the loop) after every successful (re)connect,
  // once AUTH/SELECT succeeded.
  HiredisAsync(EventLoop& loop, RedisConnectionOptions options,
               std::function<void()> on_connected = nullptr);
  // Loop thread only. Fails outstanding commands.
  ~HiredisAsync() override;

  using AsyncCommander::Send;
  void Send(const RedisArgv& argv, AsyncCallback done, absl::Duration extra_timeout) override;
  bool connected() const override { return state_ == State::kReady; }

  // Redis CLIENT ID of the current connection (0 until known).
  int64_t client_id() const { return client_id_; }

 private:
  enum class State { kIdle, kConnecting, kReady };
  struct Pending;

  void Connect();
  // The node to connect to: the address, or the primary Sentinel names.
  absl::StatusOr<RedisAddress> Target();
  void Drop(absl::string_view why);
  void ScheduleReconnect();
  void Watchdog();
  void SendRaw(const RedisArgv& argv, AsyncCallback done, absl::Duration timeout);
  static void OnReply(redisAsyncContext* ctx, void* reply, void* privdata);
  static void OnConnect(const redisAsyncContext* ctx, int status);
  static void OnDisconnect(const redisAsyncContext* ctx, int status);

  EventLoop& loop_;
  const RedisConnectionOptions options_;
  const std::function<void()> on_connected_;
  std::string peer_;  // for messages: the node of the current connection
  redisAsyncContext* ctx_ = nullptr;
  State state_ = State::kIdle;
  absl::Duration backoff_;
  bool connected_before_ = false;  // a later connect is a reconnect (metrics)
  absl::Time connect_deadline_ = absl::InfiniteFuture();
  // Deadlines of outstanding commands, oldest first (replies come in order).
  std::deque<absl::Time> deadlines_;
  int64_t client_id_ = 0;
  uint64_t generation_ = 0;           // bumps on every connection attempt
  uint64_t sentinel_generation_ = 0;  // SentinelWatcher::generation() at connect
  std::unique_ptr<EventLoop::Timer> reconnect_timer_;
  std::unique_ptr<EventLoop::Timer> watchdog_timer_;
  // Set while this object is being destroyed: callbacks must not touch it.
  std::shared_ptr<bool> alive_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_HIREDIS_ASYNC_H_
