#include "daemon/redis/handler_store.h"

#include "absl/strings/numbers.h"
#include "daemon/redis/errors.h"

namespace redrive {
namespace {

int64_t IntegerOr(const RedisReply& r, int64_t fallback) {
  return r.is_integer() ? r.integer : fallback;
}

std::optional<StreamGroupInfo> GroupNamed(const RedisReply& reply, absl::string_view name) {
  absl::StatusOr<std::vector<StreamGroupInfo>> groups = ParseGroupInfos(reply);
  if (!groups.ok()) return std::nullopt;
  return FindGroup(*groups, name);
}

}  // namespace

absl::StatusOr<HandlerTraces> ReadHandlerTraces(RedisCommander& redis, const HandlerKeys& keys,
                                                const std::string& registry_field) {
  const std::vector<RedisArgv> commands = {{"HEXISTS", kHandlersRegistryKey, registry_field},
                                           {"EXISTS", keys.dlq_stream, keys.retry_stream},
                                           {"XINFO", "GROUPS", keys.stream}};
  absl::StatusOr<std::vector<RedisReply>> r = redis.Pipeline(commands);
  if (!r.ok()) return r.status();
  if (absl::Status s = RedisErrorStatus((*r)[0]); !s.ok()) return s;
  HandlerTraces out;
  out.registered = IntegerOr((*r)[0], 0) == 1;
  out.own_keys = IntegerOr((*r)[1], 0);
  if (absl::StatusOr<std::vector<StreamGroupInfo>> groups = ParseGroupInfos((*r)[2]); groups.ok()) {
    out.channel_groups = *std::move(groups);
  }
  return out;
}

absl::StatusOr<HandlerRedisState> ReadHandlerState(RedisCommander& redis, const HandlerKeys& keys,
                                                   const std::string& registry_field) {
  const std::vector<RedisArgv> commands = {{"XINFO", "GROUPS", keys.stream},
                                           {"XINFO", "GROUPS", keys.retry_stream},
                                           {"XINFO", "CONSUMERS", keys.stream, keys.group},
                                           {"ZCARD", keys.due_zset},
                                           {"XLEN", keys.dlq_stream},
                                           {"XRANGE", keys.dlq_stream, "-", "+", "COUNT", "1"},
                                           {"HEXISTS", kPausedHandlersKey, registry_field},
                                           {"TIME"}};
  absl::StatusOr<std::vector<RedisReply>> r = redis.Pipeline(commands);
  if (!r.ok()) return r.status();
  const std::vector<RedisReply>& rep = *r;
  HandlerRedisState out;
  out.group = GroupNamed(rep[0], keys.group);
  out.retry_group = GroupNamed(rep[1], keys.retry_group);
  if (absl::StatusOr<std::vector<StreamConsumerInfo>> c = ParseConsumerInfos(rep[2]); c.ok()) {
    out.consumers = *std::move(c);
  }
  out.due = IntegerOr(rep[3], 0);
  out.dead_letters = IntegerOr(rep[4], 0);
  if (rep[5].is_array() && !rep[5].elements.empty() && !rep[5].elements[0].elements.empty()) {
    out.oldest_dead_letter_id = rep[5].elements[0].elements[0].str;
  }
  out.paused = IntegerOr(rep[6], 0) == 1;
  int64_t sec = 0, usec = 0;
  if (rep[7].is_array() && rep[7].elements.size() == 2 &&
      absl::SimpleAtoi(rep[7].elements[0].str, &sec) &&
      absl::SimpleAtoi(rep[7].elements[1].str, &usec)) {
    out.redis_now = absl::FromUnixMicros(sec * 1000000 + usec);
  }
  return out;
}

absl::StatusOr<ForgottenHandler> ForgetHandler(RedisCommander& redis,
                                               const std::string& registry_field,
                                               const std::vector<std::string>& presence_fields) {
  std::vector<RedisArgv> commands = {{"HDEL", kHandlersRegistryKey, registry_field},
                                     {"HDEL", kPausedHandlersKey, registry_field}};
  if (!presence_fields.empty()) {
    RedisArgv stale = {"HDEL", kHandlersRegistryKey};
    for (const std::string& f : presence_fields) stale.push_back(f);
    commands.push_back(std::move(stale));
  }
  absl::StatusOr<std::vector<RedisReply>> done = redis.Pipeline(commands);
  if (!done.ok()) return done.status();
  if (absl::Status s = FirstRedisError(*done); !s.ok()) return s;
  ForgottenHandler out;
  out.unregistered = IntegerOr((*done)[0], 0) == 1;
  out.unpaused = IntegerOr((*done)[1], 0) == 1;
  return out;
}

}  // namespace redrive
