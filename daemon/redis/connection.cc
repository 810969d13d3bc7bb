#include "daemon/redis/connection.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/metrics.h"
#include "daemon/redis/sentinel.h"

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
    : options_(std::move(options)),
      peer_(options_.address.Redacted()),
      backoff_(options_.min_backoff) {}

RedisConnection::~RedisConnection() { Disconnect(); }

void RedisConnection::Disconnect() { context_.reset(); }

void RedisConnection::BackOff() {
  next_attempt_ = absl::Now() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  // Whatever failed, the primary may have moved: ask Sentinel again.
  if (options_.sentinel != nullptr) options_.sentinel->Refresh();
}

absl::Status RedisConnection::Fail(absl::string_view what) {
  std::string detail = context_ != nullptr && context_->err != 0 ? std::string(context_->errstr)
                                                                 : std::string("connection lost");
  Disconnect();
  BackOff();
  return absl::UnavailableError(absl::StrCat("redis ", peer_, ": ", what, ": ", detail));
}

absl::StatusOr<RedisAddress> RedisConnection::Target() {
  if (options_.sentinel == nullptr) return options_.address;
  absl::StatusOr<RedisAddress> target =
      options_.sentinel->PrimaryAddress(options_.address, sentinel_generation_);
  if (target.ok()) {
    peer_ = absl::StrCat(options_.address.Redacted(), " (primary ",
                         HostPort{target->host, target->port}.ToString(), ")");
  }
  return target;
}

absl::Status RedisConnection::Connect() {
  absl::StatusOr<RedisAddress> target = Target();
  if (!target.ok()) {
    BackOff();
    return absl::UnavailableError(absl::StrCat("redis ", peer_, ": ", target.status().message()));
  }
  const RedisAddress& a = *target;
  const timeval connect_tv = absl::ToTimeval(options_.connect_timeout);
  context_.reset(a.is_unix() ? redisConnectUnixWithTimeout(a.unix_path.c_str(), connect_tv)
                             : redisConnectWithTimeout(a.host.c_str(), a.port, connect_tv));
  if (context_ == nullptr) {
    BackOff();
    return absl::UnavailableError("redis: out of memory creating a context");
  }
  if (context_->err != 0) return Fail("connect");
  if (redisSetTimeout(context_.get(), absl::ToTimeval(options_.command_timeout)) != REDIS_OK) {
    return Fail("set timeout");
  }
  if (!a.is_unix() && redisEnableKeepAlive(context_.get()) != REDIS_OK) {
    return Fail("keepalive");
  }
  auto handshake = [this](const RedisArgv& argv,
                          absl::string_view what) -> absl::StatusOr<RedisReply> {
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
      BackOff();
      return absl::UnavailableError(absl::StrCat("redis ", peer_, ": ", what, ": ", err));
    }
    return RedisReply::FromHiredis(reply);
  };
  if (!a.password.empty()) {
    RedisArgv auth =
        a.user.empty() ? RedisArgv{"AUTH", a.password} : RedisArgv{"AUTH", a.user, a.password};
    if (absl::StatusOr<RedisReply> r = handshake(auth, "AUTH"); !r.ok()) return r.status();
  }
  if (options_.sentinel != nullptr) {
    // Sentinel may still name a demoted primary: only a master will do.
    absl::StatusOr<RedisReply> role = handshake({"ROLE"}, "ROLE");
    if (!role.ok()) return role.status();
    if (!IsMasterRole(*role)) {
      Disconnect();
      BackOff();
      return absl::UnavailableError(absl::StrCat("redis ", peer_, ": not a primary (ROLE)"));
    }
  }
  if (a.db != 0) {
    const std::string db = absl::StrCat(a.db);
    if (absl::StatusOr<RedisReply> r = handshake({"SELECT", db}, "SELECT"); !r.ok()) {
      return r.status();
    }
  }
  if (!options_.client_name.empty()) {
    if (absl::StatusOr<RedisReply> r =
            handshake({"CLIENT", "SETNAME", options_.client_name}, "CLIENT SETNAME");
        !r.ok()) {
      return r.status();
    }
  }
  backoff_ = options_.min_backoff;
  if (connected_before_) RedisReconnects().Add();
  connected_before_ = true;
  return absl::OkStatus();
}

absl::Status RedisConnection::EnsureConnected() {
  if (options_.sentinel != nullptr && options_.sentinel->generation() != sentinel_generation_) {
    Disconnect();  // the primary changed: go there now, whatever the backoff says
    next_attempt_ = absl::InfinitePast();
    backoff_ = options_.min_backoff;
  }
  if (context_ != nullptr) return absl::OkStatus();
  if (absl::Now() < next_attempt_) {
    return absl::UnavailableError(absl::StrCat("redis ", peer_, ": not connected (reconnecting)"));
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
  if (options_.sentinel != nullptr &&
      std::any_of(replies.begin(), replies.end(),
                  [](const RedisReply& r) { return r.is_error() && IsReadOnlyError(r.str); })) {
    // Connected to a replica (a demoted primary): the replies stand, the
    // next call goes to the primary Sentinel names then.
    Disconnect();
    BackOff();
  }
  return replies;
}

}  // namespace redrive
