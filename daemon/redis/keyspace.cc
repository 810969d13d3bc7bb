#include "daemon/redis/keyspace.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/redis/errors.h"

namespace redrive {
namespace {

absl::Status Unexpected(absl::string_view command, const RedisReply& reply) {
  return absl::InternalError(absl::StrCat(command, " answered ", reply.DebugString()));
}

absl::StatusOr<int64_t> IntegerOf(absl::StatusOr<RedisReply> reply, absl::string_view command) {
  reply = CheckReply(std::move(reply));
  if (!reply.ok()) return reply.status();
  if (!reply->is_integer()) return Unexpected(command, *reply);
  return reply->integer;
}

// An array of bulk strings (nil elements become "").
absl::StatusOr<std::vector<std::string>> StringsOf(absl::StatusOr<RedisReply> reply,
                                                   absl::string_view command) {
  reply = CheckReply(std::move(reply));
  if (!reply.ok()) return reply.status();
  if (!reply->is_array()) return Unexpected(command, *reply);
  std::vector<std::string> out;
  out.reserve(reply->elements.size());
  for (RedisReply& e : reply->elements) out.push_back(std::move(e.str));
  return out;
}

HashFields PairsOf(std::vector<RedisReply>& flat) {
  HashFields out;
  out.reserve(flat.size() / 2);
  for (size_t i = 0; i + 1 < flat.size(); i += 2) {
    out.emplace_back(std::move(flat[i].str), std::move(flat[i + 1].str));
  }
  return out;
}

}  // namespace

absl::Status Ping(RedisCommander& redis) {
  absl::StatusOr<RedisReply> reply = CheckReply(redis.Command({"PING"}));
  if (!reply.ok()) return reply.status();
  if (!reply->is_status() || reply->str != "PONG") return Unexpected("PING", *reply);
  return absl::OkStatus();
}

absl::Status CheckNotClusterNode(RedisCommander& redis) {
  absl::StatusOr<RedisReply> info = CheckReply(redis.Command({"INFO", "cluster"}));
  if (!info.ok()) return info.status();
  if (!info->is_string()) return Unexpected("INFO cluster", *info);
  for (absl::string_view line : absl::StrSplit(info->str, '\n')) {
    if (absl::StripAsciiWhitespace(line) == "cluster_enabled:1") {
      return absl::FailedPreconditionError(
          "this Redis is a Redis Cluster node (cluster_enabled:1), but redrived took it for a "
          "single server (it did not answer when redrived started): restart redrived, or give "
          "the cluster's nodes as --redis-url=redis-cluster://host:port[,host:port] (README "
          "\"Redis Cluster\")");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> ServerTime(RedisCommander& redis) {
  absl::StatusOr<RedisReply> reply = CheckReply(redis.Command({"TIME"}));
  if (!reply.ok()) return reply.status();
  int64_t sec = 0, usec = 0;
  if (!reply->is_array() || reply->elements.size() != 2 ||
      !absl::SimpleAtoi(reply->elements[0].str, &sec) ||
      !absl::SimpleAtoi(reply->elements[1].str, &usec)) {
    return Unexpected("TIME", *reply);
  }
  return absl::FromUnixMicros(sec * 1000000 + usec);
}

absl::StatusOr<std::string> KeyType(RedisCommander& redis, absl::string_view key) {
  absl::StatusOr<RedisReply> reply = CheckReply(redis.Command({"TYPE", key}));
  if (!reply.ok()) return reply.status();
  if (!reply->is_status()) return Unexpected("TYPE", *reply);
  return std::move(reply->str);
}

absl::StatusOr<HashFields> HGetAll(RedisCommander& redis, absl::string_view key) {
  absl::StatusOr<RedisReply> reply = CheckReply(redis.Command({"HGETALL", key}));
  if (!reply.ok()) return reply.status();
  if (!reply->is_array()) return Unexpected("HGETALL", *reply);
  return PairsOf(reply->elements);
}

absl::StatusOr<std::optional<std::string>> HGet(RedisCommander& redis, absl::string_view key,
                                                absl::string_view field) {
  absl::StatusOr<RedisReply> reply = CheckReply(redis.Command({"HGET", key, field}));
  if (!reply.ok()) return reply.status();
  if (reply->is_nil()) return std::optional<std::string>();
  if (!reply->is_string()) return Unexpected("HGET", *reply);
  return std::optional<std::string>(std::move(reply->str));
}

absl::Status HSet(RedisCommander& redis, absl::string_view key, absl::string_view field,
                  absl::string_view value) {
  return IntegerOf(redis.Command({"HSET", key, field, value}), "HSET").status();
}

absl::StatusOr<int64_t> HDel(RedisCommander& redis, absl::string_view key,
                             const std::vector<std::string>& fields) {
  if (fields.empty()) return 0;
  RedisArgv argv = {"HDEL", key};
  for (const std::string& f : fields) argv.push_back(f);
  return IntegerOf(redis.Command(argv), "HDEL");
}

absl::StatusOr<HashScanPage> HScan(RedisCommander& redis, absl::string_view key,
                                   absl::string_view cursor, absl::string_view pattern,
                                   size_t count) {
  const std::string n = absl::StrCat(count);
  absl::StatusOr<RedisReply> reply =
      CheckReply(redis.Command({"HSCAN", key, cursor, "MATCH", pattern, "COUNT", n}));
  if (!reply.ok()) return reply.status();
  if (!reply->is_array() || reply->elements.size() != 2 || !reply->elements[1].is_array()) {
    return Unexpected("HSCAN", *reply);
  }
  HashScanPage page;
  page.cursor = std::move(reply->elements[0].str);
  page.fields = PairsOf(reply->elements[1].elements);
  return page;
}

absl::StatusOr<std::vector<std::string>> ZMembers(RedisCommander& redis, absl::string_view key) {
  return StringsOf(redis.Command({"ZRANGE", key, "0", "-1"}), "ZRANGE");
}

absl::StatusOr<bool> ZRem(RedisCommander& redis, absl::string_view key, absl::string_view member) {
  absl::StatusOr<int64_t> n = IntegerOf(redis.Command({"ZREM", key, member}), "ZREM");
  if (!n.ok()) return n.status();
  return *n == 1;
}

absl::StatusOr<std::vector<std::string>> LRange(RedisCommander& redis, absl::string_view key,
                                                int64_t start, int64_t stop) {
  const std::string from = absl::StrCat(start);
  const std::string to = absl::StrCat(stop);
  return StringsOf(redis.Command({"LRANGE", key, from, to}), "LRANGE");
}

}  // namespace redrive
