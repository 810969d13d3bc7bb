#include "daemon/redis/connection.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/metrics.h"

namespace redrive {
namespace {

struct ReplyDeleter {
  void operator()(void* reply) const { freeReplyObject(reply); }
};
using OwnedReply = std::unique_ptr<void, ReplyDeleter>;

}  // namespace

void RedisConnection::ContextDeleter::operator()(redisContext* context) const {
  redisFree(context);
}

RedisConnection::RedisConnection(RedisConnectionOptions options)
    : options_(std::move(options)), backoff_(options_.min_backoff) {}

RedisConnection::~RedisConnection() { Disconnect(); }

void RedisConnection::Disconnect() { context_.reset(); }

absl::Status RedisConnection::Fail(absl::string_view what) {
  std::string detail = context_ != nullptr && context_->err != 0 ? std::string(context_->errstr)
                                                                 : std::string("connection lost");
  Disconnect();
  next_attempt_ = absl::Now() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  return absl::UnavailableError(
      absl::StrCat("redis ", options_.address.Redacted(), ": ", what, ": ", detail));
}

absl::Status RedisConnection::Connect() {
  const RedisAddress& a = options_.address;
  const timeval connect_tv = absl::ToTimeval(options_.connect_timeout);
  context_.reset(a.is_unix() ? redisConnectUnixWithTimeout(a.unix_path.c_str(), connect_tv)
                             : redisConnectWithTimeout(a.host.c_str(), a.port, connect_tv));
  if (context_ == nullptr) {
    next_attempt_ = absl::Now() + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    return absl::UnavailableError("redis: out of memory creating a context");
  }
  if (context_->err != 0) return Fail("connect");
  if (redisSetTimeout(context_.get(), absl::ToTimeval(options_.command_timeout)) != REDIS_OK) {
    return Fail("set timeout");
  }
  if (!a.is_unix() && redisEnableKeepAlive(context_.get()) != REDIS_OK) {
    return Fail("keepalive");
  }
  auto handshake = [this](const RedisArgv& argv, absl::string_view what) -> absl::Status {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (absl::string_view s : argv) {
      ptrs.push_back(s.data());
      lens.push_back(s.size());
    }
    OwnedReply raw(
        redisCommandArgv(context_.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data()));
    if (raw == nullptr) return Fail(what);
    const auto* reply = static_cast<const redisReply*>(raw.get());
    if (reply->type == REDIS_REPLY_ERROR) {
      // Not a transport failure: report the server's answer (never the
      // password) and back off like any other failed connect.
      std::string err(reply->str, reply->len);
      Disconnect();
      next_attempt_ = absl::Now() + backoff_;
      backoff_ = std::min(backoff_ * 2, options_.max_backoff);
      return absl::UnavailableError(
          absl::StrCat("redis ", options_.address.Redacted(), ": ", what, ": ", err));
    }
    return absl::OkStatus();
  };
  if (!a.password.empty()) {
    RedisArgv auth =
        a.user.empty() ? RedisArgv{"AUTH", a.password} : RedisArgv{"AUTH", a.user, a.password};
    if (absl::Status s = handshake(auth, "AUTH"); !s.ok()) return s;
  }
  if (a.db != 0) {
    const std::string db = absl::StrCat(a.db);
    if (absl::Status s = handshake({"SELECT", db}, "SELECT"); !s.ok()) return s;
  }
  if (!options_.client_name.empty()) {
    if (absl::Status s = handshake({"CLIENT", "SETNAME", options_.client_name}, "CLIENT SETNAME");
        !s.ok()) {
      return s;
    }
  }
  backoff_ = options_.min_backoff;
  if (connected_before_) RedisReconnects().Add();
  connected_before_ = true;
  return absl::OkStatus();
}

absl::Status RedisConnection::EnsureConnected() {
  if (context_ != nullptr) return absl::OkStatus();
  if (absl::Now() < next_attempt_) {
    return absl::UnavailableError(
        absl::StrCat("redis ", options_.address.Redacted(), ": not connected (reconnecting)"));
  }
  return Connect();
}

absl::StatusOr<RedisReply> RedisConnection::Command(const RedisArgv& argv) {
  absl::StatusOr<std::vector<RedisReply>> replies = Pipeline({&argv, 1});
  if (!replies.ok()) return replies.status();
  return std::move(replies->front());
}

absl::StatusOr<std::vector<RedisReply>> RedisConnection::Pipeline(
    absl::Span<const RedisArgv> commands) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const RedisArgv& argv : commands) {
    ptrs.clear();
    lens.clear();
    for (absl::string_view s : argv) {
      ptrs.push_back(s.data());
      lens.push_back(s.size());
    }
    if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), ptrs.data(),
                               lens.data()) != REDIS_OK) {
      return Fail("append command");
    }
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) {
      return Fail("read reply");
    }
    OwnedReply owned(raw);
    replies.push_back(RedisReply::FromHiredis(static_cast<const redisReply*>(raw)));
  }
  return replies;
}

}  // namespace redrive
