#include "daemon/redis/sentinel.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/time.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "daemon/metrics.h"
#include "daemon/redis/commander.h"

namespace redrive {
namespace {

constexpr const char kSwitchMaster[] = "+switch-master";

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(void* r) const { freeReplyObject(r); }
};
using OwnedReply = std::unique_ptr<void, ReplyDeleter>;

absl::Status ContextError(const HostPort& at, const redisContext* c, absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("sentinel ", at.ToString(), ": ", what, ": ",
                                             c != nullptr ? c->errstr : "out of memory"));
}

absl::StatusOr<RedisReply> Call(redisContext* c, const HostPort& at, const RedisArgv& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (absl::string_view s : argv) {
    ptrs.push_back(s.data());
    lens.push_back(s.size());
  }
  OwnedReply raw(redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
  if (raw == nullptr) return ContextError(at, c, argv.front());
  RedisReply reply = RedisReply::FromHiredis(static_cast<const redisReply*>(raw.get()));
  if (reply.is_error()) {
    return absl::UnavailableError(
        absl::StrCat("sentinel ", at.ToString(), ": ", argv.front(), ": ", reply.str));
  }
  return reply;
}

// A connection to one sentinel, authenticated when the URL says so.
absl::StatusOr<Context> ConnectSentinel(const HostPort& at, const SentinelAddress& sentinel,
                                        absl::Duration timeout) {
  const timeval tv = absl::ToTimeval(timeout);
  Context c(redisConnectWithTimeout(at.host.c_str(), at.port, tv));
  if (c == nullptr || c->err != 0) return ContextError(at, c.get(), "connect");
  if (redisSetTimeout(c.get(), tv) != REDIS_OK) return ContextError(at, c.get(), "set timeout");
  if (!sentinel.password.empty()) {
    RedisArgv auth = sentinel.user.empty() ? RedisArgv{"AUTH", sentinel.password}
                                           : RedisArgv{"AUTH", sentinel.user, sentinel.password};
    if (absl::StatusOr<RedisReply> r = Call(c.get(), at, auth); !r.ok()) return r.status();
  }
  return c;
}

absl::StatusOr<HostPort> AskOne(redisContext* c, const HostPort& at, absl::string_view master) {
  absl::StatusOr<RedisReply> r = Call(c, at, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", master});
  if (!r.ok()) return r.status();
  HostPort primary;
  if (r->is_nil()) {
    return absl::UnavailableError(absl::StrCat("sentinel ", at.ToString(),
                                               ": does not monitor a master named '", master, "'"));
  }
  if (!r->is_array() || r->elements.size() != 2 || !r->elements[0].is_string() ||
      !absl::SimpleAtoi(r->elements[1].str, &primary.port)) {
    return absl::UnavailableError(
        absl::StrCat("sentinel ", at.ToString(),
                     ": unexpected reply to GET-MASTER-ADDR-BY-NAME: ", r->DebugString()));
  }
  primary.host = r->elements[0].str;
  return primary;
}

// Waits up to `timeout` for one complete reply on a subscribed context.
// nullptr reply with OK: nothing arrived yet.
absl::StatusOr<OwnedReply> ReadReply(redisContext* c, const HostPort& at, absl::Duration timeout) {
  void* raw = nullptr;
  if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return ContextError(at, c, "read");
  if (raw != nullptr) return OwnedReply(raw);
  pollfd fd{c->fd, POLLIN, 0};
  const int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready <= 0) return OwnedReply(nullptr);  // timeout (or EINTR: try again later)
  if (redisBufferRead(c) != REDIS_OK) return ContextError(at, c, "read");
  if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return ContextError(at, c, "read");
  return OwnedReply(raw);
}

}  // namespace

bool IsMasterRole(const RedisReply& role) {
  return role.is_array() && !role.elements.empty() && role.elements[0].str == "master";
}

bool IsReadOnlyError(absl::string_view error) { return absl::StartsWith(error, "READONLY"); }

absl::StatusOr<HostPort> AskSentinels(const SentinelAddress& sentinel, absl::Duration timeout) {
  std::vector<std::string> failures;
  for (const HostPort& at : sentinel.sentinels) {
    absl::StatusOr<Context> c = ConnectSentinel(at, sentinel, timeout);
    absl::StatusOr<HostPort> primary =
        c.ok() ? AskOne(c->get(), at, sentinel.master_name) : c.status();
    if (primary.ok()) return primary;
    failures.emplace_back(primary.status().message());
  }
  return absl::UnavailableError(absl::StrCat("no sentinel named the primary of '",
                                             sentinel.master_name,
                                             "': ", absl::StrJoin(failures, "; ")));
}

std::shared_ptr<SentinelWatcher> SentinelWatcher::Start(Options options) {
  std::shared_ptr<SentinelWatcher> w(new SentinelWatcher(std::move(options)));
  absl::StatusOr<HostPort> first = AskSentinels(w->options_.sentinel, w->options_.timeout);
  if (first.ok()) {
    w->SetPrimary(*first, "named by Sentinel");
  } else {
    spdlog::warn("{}", std::string(first.status().message()));
  }
  w->thread_ = std::thread([raw = w.get()] { raw->Run(); });
  return w;
}

SentinelWatcher::SentinelWatcher(Options options) : options_(std::move(options)) {}

SentinelWatcher::~SentinelWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<SentinelWatcher::Primary> SentinelWatcher::primary() const {
  absl::MutexLock lock(&mu_);
  if (!primary_.has_value()) {
    return absl::UnavailableError(absl::StrCat("no sentinel has named the primary of '",
                                               options_.sentinel.master_name, "' yet"));
  }
  return Primary{*primary_, generation()};
}

absl::StatusOr<RedisAddress> SentinelWatcher::PrimaryAddress(const RedisAddress& address,
                                                             uint64_t& generation) const {
  absl::StatusOr<Primary> p = primary();
  if (!p.ok()) return p.status();
  RedisAddress target = address;
  target.host = p->address.host;
  target.port = p->address.port;
  target.sentinel = {};
  generation = p->generation;
  return target;
}

void SentinelWatcher::Refresh() {
  absl::MutexLock lock(&mu_);
  refresh_ = true;
}

bool SentinelWatcher::stopping() const {
  absl::MutexLock lock(&mu_);
  return stop_;
}

void SentinelWatcher::SetPrimary(const HostPort& address, absl::string_view why) {
  absl::MutexLock lock(&mu_);
  if (primary_.has_value() && *primary_ == address) return;
  if (primary_.has_value()) {
    spdlog::info("redis primary of '{}' moved from {} to {} ({})", options_.sentinel.master_name,
                 primary_->ToString(), address.ToString(), std::string(why));
    RedisPrimaryChanges().Add();
  } else {
    spdlog::info("redis primary of '{}' is {} ({})", options_.sentinel.master_name,
                 address.ToString(), std::string(why));
  }
  primary_ = address;
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

void SentinelWatcher::AskIfRequested() {
  {
    absl::MutexLock lock(&mu_);
    if (!refresh_ || absl::Now() - last_ask_ < options_.retry) return;
    refresh_ = false;
  }
  last_ask_ = absl::Now();
  absl::StatusOr<HostPort> primary = AskSentinels(options_.sentinel, options_.timeout);
  if (primary.ok()) {
    SetPrimary(*primary, "named by Sentinel");
  } else {
    spdlog::debug("{}", std::string(primary.status().message()));
  }
}

void SentinelWatcher::OnSwitchMaster(absl::string_view payload) {
  // "<master name> <old ip> <old port> <new ip> <new port>"
  std::vector<absl::string_view> parts = absl::StrSplit(payload, ' ');
  HostPort next;
  if (parts.size() != 5 || parts[0] != options_.sentinel.master_name ||
      !absl::SimpleAtoi(parts[4], &next.port)) {
    return;  // another master's failover
  }
  next.host = std::string(parts[3]);
  SetPrimary(next, "+switch-master");
}

bool SentinelWatcher::Follow(const HostPort& at) {
  absl::StatusOr<Context> c = ConnectSentinel(at, options_.sentinel, options_.timeout);
  if (!c.ok()) {
    spdlog::debug("{}", std::string(c.status().message()));
    return false;
  }
  absl::StatusOr<HostPort> primary = AskOne(c->get(), at, options_.sentinel.master_name);
  if (!primary.ok()) {
    spdlog::debug("{}", std::string(primary.status().message()));
    return false;
  }
  SetPrimary(*primary, "named by Sentinel");
  if (absl::StatusOr<RedisReply> r = Call(c->get(), at, {"SUBSCRIBE", kSwitchMaster}); !r.ok()) {
    spdlog::debug("{}", std::string(r.status().message()));
    return false;
  }
  spdlog::debug("following {} on sentinel {}", kSwitchMaster, at.ToString());
  while (!stopping()) {
    AskIfRequested();
    absl::StatusOr<OwnedReply> raw = ReadReply(c->get(), at, absl::Milliseconds(100));
    if (!raw.ok()) {
      spdlog::warn("{}; following another sentinel", std::string(raw.status().message()));
      return true;
    }
    if (*raw == nullptr) continue;
    const RedisReply message = RedisReply::FromHiredis(static_cast<const redisReply*>(raw->get()));
    if (message.is_array() && message.elements.size() == 3 &&
        message.elements[0].str == "message" && message.elements[1].str == kSwitchMaster) {
      OnSwitchMaster(message.elements[2].str);
    }
  }
  return true;
}

void SentinelWatcher::Run() {
  const std::vector<HostPort>& sentinels = options_.sentinel.sentinels;
  size_t first = 0;  // the sentinel that answered last is asked first
  while (!stopping()) {
    bool followed = false;
    for (size_t k = 0; k < sentinels.size() && !stopping() && !followed; ++k) {
      const size_t i = (first + k) % sentinels.size();
      if (Follow(sentinels[i])) {
        followed = true;
        first = i;
      }
    }
    if (followed) continue;
    // No sentinel answered: the next pass asks them all again.
    absl::MutexLock lock(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), options_.retry);
  }
}

}  // namespace redrive
