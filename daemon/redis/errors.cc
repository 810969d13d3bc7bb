#include "daemon/redis/errors.h"

#include <optional>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace redrive {
namespace {

constexpr char kPayloadUrl[] = "redrive.dev/redis-error";

struct Prefix {
  const char* text;
  RedisError kind;
};
constexpr Prefix kPrefixes[] = {
    {"NOGROUP", RedisError::kNoGroup},       {"NOSCRIPT", RedisError::kNoScript},
    {"BUSYGROUP", RedisError::kBusyGroup},   {"WRONGTYPE", RedisError::kWrongType},
    {"MOVED ", RedisError::kMoved},          {"ASK ", RedisError::kAsk},
    {"LOADING", RedisError::kTransient},     {"BUSY ", RedisError::kTransient},
    {"MASTERDOWN", RedisError::kTransient},  {"TRYAGAIN", RedisError::kTransient},
    {"CLUSTERDOWN", RedisError::kTransient}, {"ERR no such key", RedisError::kNoSuchKey},
};

absl::StatusCode CodeOf(RedisError kind) {
  switch (kind) {
    case RedisError::kMoved:
    case RedisError::kAsk:
    case RedisError::kTransient:
      return absl::StatusCode::kUnavailable;
    case RedisError::kNone:
    case RedisError::kNoGroup:
    case RedisError::kBusyGroup:
    case RedisError::kWrongType:
    case RedisError::kNoSuchKey:
    case RedisError::kNoScript:
    case RedisError::kOther:
      break;
  }
  return absl::StatusCode::kInternal;
}

}  // namespace

RedisError ClassifyRedisError(absl::string_view reply_text) {
  for (const Prefix& p : kPrefixes) {
    if (absl::StartsWith(reply_text, p.text)) return p.kind;
  }
  return RedisError::kOther;
}

absl::Status RedisErrorStatus(const RedisReply& reply) {
  if (!reply.is_error()) return absl::OkStatus();
  const RedisError kind = ClassifyRedisError(reply.str);
  absl::Status status(CodeOf(kind), absl::StrCat("redis: ", reply.str));
  status.SetPayload(kPayloadUrl, absl::Cord(absl::StrCat(static_cast<int>(kind))));
  return status;
}

RedisError RedisErrorOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kPayloadUrl);
  if (!payload.has_value()) return RedisError::kNone;
  const std::string text(*payload);
  for (RedisError kind : {RedisError::kNoGroup, RedisError::kNoScript, RedisError::kBusyGroup,
                          RedisError::kWrongType, RedisError::kNoSuchKey, RedisError::kMoved,
                          RedisError::kAsk, RedisError::kTransient, RedisError::kOther}) {
    if (text == absl::StrCat(static_cast<int>(kind))) return kind;
  }
  return RedisError::kNone;
}

absl::StatusOr<RedisReply> CheckReply(absl::StatusOr<RedisReply> reply) {
  if (reply.ok() && reply->is_error()) return RedisErrorStatus(*reply);
  return reply;
}

absl::Status FirstRedisError(const std::vector<RedisReply>& replies) {
  for (const RedisReply& r : replies) {
    if (r.is_error()) return RedisErrorStatus(r);
  }
  return absl::OkStatus();
}

}  // namespace redrive
