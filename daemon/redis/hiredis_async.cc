#include "daemon/redis/hiredis_async.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/metrics.h"
#include "daemon/redis/hiredis_reply.h"
#include "daemon/redis/resp.h"
#include "daemon/redis/sentinel.h"

namespace redrive {

struct HiredisAsync::Pending {
  HiredisAsync* self;
  std::shared_ptr<bool> alive;
  uint64_t generation;
  AsyncCallback done;
};

HiredisAsync::HiredisAsync(EventLoop& loop, RedisConnectionOptions options,
                           std::function<void()> on_connected)
    : loop_(loop),
      options_(std::move(options)),
      on_connected_(std::move(on_connected)),
      peer_(options_.address.Redacted()),
      backoff_(options_.min_backoff),
      alive_(std::make_shared<bool>(true)) {
  reconnect_timer_ = loop_.NewTimer([this] { Connect(); });
  watchdog_timer_ = loop_.NewTimer([this] { Watchdog(); });
  watchdog_timer_->Arm(absl::Milliseconds(100));
  Connect();
}

HiredisAsync::~HiredisAsync() {
  *alive_ = false;
  if (ctx_ != nullptr) {
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;
    ctx->data = nullptr;  // a deferred free must not reach this object
    redisAsyncFree(ctx);  // runs pending callbacks with a null reply
  }
}

absl::StatusOr<RedisAddress> HiredisAsync::Target() {
  if (options_.sentinel == nullptr) return options_.address;
  return options_.sentinel->PrimaryAddress(options_.address, sentinel_generation_);
}

void HiredisAsync::Connect() {
  ++generation_;
  absl::StatusOr<RedisAddress> target = Target();
  if (!target.ok()) {
    spdlog::warn("redis async connect to {} failed: {}", options_.address.Redacted(),
                 std::string(target.status().message()));
    ScheduleReconnect();
    return;
  }
  const RedisAddress& a = *target;
  peer_ = a.Redacted();
  ctx_ = a.is_unix() ? redisAsyncConnectUnix(a.unix_path.c_str())
                     : redisAsyncConnect(a.host.c_str(), a.port);
  if (ctx_ == nullptr || ctx_->err != 0) {
    spdlog::warn("redis async connect to {} failed: {}", a.Redacted(),
                 ctx_ != nullptr ? ctx_->errstr : "out of memory");
    if (ctx_ != nullptr) redisAsyncFree(ctx_);
    ctx_ = nullptr;
    ScheduleReconnect();
    return;
  }
  ctx_->data = this;
  // Replies are built as RedisReply by the reader itself (this connection
  // never subscribes).
  ctx_->c.reader->fn = ReplyBuilder();
  redisLibeventAttach(ctx_, loop_.base());
  redisAsyncSetConnectCallback(ctx_, &HiredisAsync::OnConnect);
  redisAsyncSetDisconnectCallback(ctx_, &HiredisAsync::OnDisconnect);
  state_ = State::kConnecting;
  connect_deadline_ = absl::Now() + options_.connect_timeout;
  // The handshake is queued ahead of anything else on this connection.
  auto handshake_step = [this, gen = generation_](absl::string_view what) {
    return [this, gen, what = std::string(what)](absl::StatusOr<RedisReply> r) {
      if (gen != generation_) return;
      if (!r.ok() || r->is_error()) {
        spdlog::warn("redis {} {} failed: {}", peer_, what,
                     r.ok() ? r->str : std::string(r.status().message()));
        Drop(what);
      }
    };
  };
  if (!a.password.empty()) {
    RedisArgv auth =
        a.user.empty() ? RedisArgv{"AUTH", a.password} : RedisArgv{"AUTH", a.user, a.password};
    SendRaw(auth, handshake_step("AUTH"), options_.command_timeout);
  }
  if (options_.sentinel != nullptr) {
    // Sentinel may still name a demoted primary: only a master will do.
    SendRaw(
        {"ROLE"},
        [this, gen = generation_](absl::StatusOr<RedisReply> r) {
          if (gen != generation_ || !r.ok() || IsMasterRole(*r)) return;
          spdlog::warn("redis {} is not a primary (ROLE): asking Sentinel again", peer_);
          Drop("not a primary");
        },
        options_.command_timeout);
  }
  if (a.db != 0) {
    const std::string db = absl::StrCat(a.db);
    SendRaw({"SELECT", db}, handshake_step("SELECT"), options_.command_timeout);
  }
  if (!options_.client_name.empty()) {
    SendRaw({"CLIENT", "SETNAME", options_.client_name}, handshake_step("CLIENT SETNAME"),
            options_.command_timeout);
  }
  SendRaw(
      {"CLIENT", "ID"},
      [this, gen = generation_](absl::StatusOr<RedisReply> r) {
        if (gen != generation_ || !r.ok() || !r->is_integer()) return;
        client_id_ = r->integer;
        state_ = State::kReady;
        connect_deadline_ = absl::InfiniteFuture();
        backoff_ = options_.min_backoff;
        if (connected_before_) RedisReconnects().Add();
        connected_before_ = true;
        if (on_connected_) on_connected_();
      },
      options_.command_timeout);
}

void HiredisAsync::ScheduleReconnect() {
  // Whatever failed, the primary may have moved: ask Sentinel again.
  if (options_.sentinel != nullptr) options_.sentinel->Refresh();
  state_ = State::kIdle;
  reconnect_timer_->Arm(backoff_);
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
}

void HiredisAsync::Drop(absl::string_view why) {
  if (ctx_ == nullptr) return;
  spdlog::debug("redis async connection to {} dropped: {}", peer_, std::string(why));
  redisAsyncContext* ctx = ctx_;
  ctx_ = nullptr;
  ++generation_;
  deadlines_.clear();
  client_id_ = 0;
  ctx->data = nullptr;  // a deferred free must not reach this object
  redisAsyncFree(ctx);  // pending callbacks get a null reply → UNAVAILABLE
  ScheduleReconnect();
}

void HiredisAsync::Watchdog() {
  const absl::Time now = absl::Now();
  if (state_ == State::kConnecting && now > connect_deadline_) {
    Drop("connect timeout");
  } else if (!deadlines_.empty() && now > deadlines_.front()) {
    Drop("command timeout");
  } else if (options_.sentinel != nullptr &&
             options_.sentinel->generation() != sentinel_generation_) {
    // The primary changed: go there now, whatever the backoff says.
    sentinel_generation_ = options_.sentinel->generation();
    backoff_ = options_.min_backoff;
    if (state_ == State::kIdle) {
      reconnect_timer_->Arm(absl::ZeroDuration());
    } else {
      Drop("the primary changed");
    }
  }
  watchdog_timer_->Arm(absl::Milliseconds(100));
}

void HiredisAsync::Send(const RedisArgv& argv, AsyncCallback done, absl::Duration extra_timeout) {
  if (ctx_ == nullptr) {
    loop_.Post([done = std::move(done), addr = options_.address.Redacted()] {
      done(absl::UnavailableError(absl::StrCat("redis ", addr, ": not connected")));
    });
    return;
  }
  SendRaw(argv, std::move(done), options_.command_timeout + extra_timeout);
}

void HiredisAsync::SendRaw(const RedisArgv& argv, AsyncCallback done, absl::Duration timeout) {
  const std::string command = EncodeCommand(argv);
  auto* pending = new Pending{this, alive_, generation_, std::move(done)};
  if (redisAsyncFormattedCommand(ctx_, &HiredisAsync::OnReply, pending, command.data(),
                                 command.size()) != REDIS_OK) {
    AsyncCallback cb = std::move(pending->done);
    delete pending;
    loop_.Post([cb = std::move(cb)] { cb(absl::UnavailableError("redis: cannot queue command")); });
    return;
  }
  deadlines_.push_back(absl::Now() + timeout);
}

void HiredisAsync::OnReply(redisAsyncContext*, void* reply, void* privdata) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(privdata));
  if (*pending->alive && pending->generation == pending->self->generation_ &&
      !pending->self->deadlines_.empty()) {
    pending->self->deadlines_.pop_front();
  }
  if (reply == nullptr) {
    pending->done(absl::UnavailableError("redis: connection lost before the reply"));
    return;
  }
  RedisReply value = TakeBuiltReply(reply);
  HiredisAsync* self = pending->self;
  if (*pending->alive && pending->generation == self->generation_ &&
      self->options_.sentinel != nullptr && value.is_error() && IsReadOnlyError(value.str)) {
    // Connected to a replica (a demoted primary): reconnect to the primary.
    self->Drop("READONLY");
  }
  pending->done(std::move(value));
}

void HiredisAsync::OnConnect(const redisAsyncContext* ctx, int status) {
  auto* self = static_cast<HiredisAsync*>(ctx->data);
  if (self == nullptr || self->ctx_ != ctx) return;
  if (status != REDIS_OK) {
    spdlog::warn("redis async connect to {} failed: {}", self->peer_, ctx->errstr);
    // hiredis frees the context after this callback.
    self->ctx_ = nullptr;
    ++self->generation_;
    self->deadlines_.clear();
    self->ScheduleReconnect();
    return;
  }
  if (!self->options_.address.is_unix()) {
    redisEnableKeepAlive(const_cast<redisContext*>(&ctx->c));
  }
}

void HiredisAsync::OnDisconnect(const redisAsyncContext* ctx, int status) {
  auto* self = static_cast<HiredisAsync*>(ctx->data);
  if (self == nullptr || self->ctx_ != ctx) return;  // our own Drop/free
  spdlog::warn("redis async connection to {} lost{}", self->peer_,
               status == REDIS_OK ? "" : absl::StrCat(": ", ctx->errstr));
  self->ctx_ = nullptr;  // hiredis frees it
  ++self->generation_;
  self->deadlines_.clear();
  self->client_id_ = 0;
  self->ScheduleReconnect();
}

}  // namespace redrive
