// Typed synchronous commands on the keys the daemon keeps besides streams —
// hashes ({redrive}:handlers, {redrive}:paused, job records), sorted sets and
// lists (redrive jobs) — and on the server itself (PING, TIME, TYPE). Error
// replies come back as statuses from errors.h; a reply of an unexpected
// shape is INTERNAL; a transport failure is UNAVAILABLE.
//
// Thread-safe: free functions over the caller's connection.
#ifndef REDRIVE_DAEMON_REDIS_KEYSPACE_H_
#define REDRIVE_DAEMON_REDIS_KEYSPACE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/redis/commander.h"

namespace redrive {

// A hash's fields and values, in Redis's order.
using HashFields = std::vector<std::pair<std::string, std::string>>;

// PING: OK when Redis answers PONG.
absl::Status Ping(RedisCommander& redis);

// FAILED_PRECONDITION when the server is a Redis Cluster node (INFO
// cluster: cluster_enabled:1). redrived decides at start-up whether it talks
// to a cluster (connect.h); a node that turns out to be one later, through
// a single-server connection, would serve some channels and fail others, so
// it is refused instead. Other errors as Ping's.
absl::Status CheckNotClusterNode(RedisCommander& redis);

// TIME: Redis's clock (microseconds).
absl::StatusOr<absl::Time> ServerTime(RedisCommander& redis);

// TYPE: "none" for a missing key, else "string", "stream", "hash", ...
absl::StatusOr<std::string> KeyType(RedisCommander& redis, absl::string_view key);

// HGETALL: empty for a missing key.
absl::StatusOr<HashFields> HGetAll(RedisCommander& redis, absl::string_view key);
// HGET: nullopt when the field (or the key) is missing.
absl::StatusOr<std::optional<std::string>> HGet(RedisCommander& redis, absl::string_view key,
                                                absl::string_view field);
// HSET key field value.
absl::Status HSet(RedisCommander& redis, absl::string_view key, absl::string_view field,
                  absl::string_view value);
// HDEL key fields...: how many existed.
absl::StatusOr<int64_t> HDel(RedisCommander& redis, absl::string_view key,
                             const std::vector<std::string>& fields);

// One HSCAN step: HSCAN key cursor MATCH pattern COUNT count.
struct HashScanPage {
  std::string cursor;  // "0" after the last page
  HashFields fields;
};
absl::StatusOr<HashScanPage> HScan(RedisCommander& redis, absl::string_view key,
                                   absl::string_view cursor, absl::string_view pattern,
                                   size_t count);

// ZRANGE key 0 -1: every member, lowest score first.
absl::StatusOr<std::vector<std::string>> ZMembers(RedisCommander& redis, absl::string_view key);
// ZREM key member: true when it was there.
absl::StatusOr<bool> ZRem(RedisCommander& redis, absl::string_view key, absl::string_view member);

// LRANGE key start stop (inclusive indexes).
absl::StatusOr<std::vector<std::string>> LRange(RedisCommander& redis, absl::string_view key,
                                                int64_t start, int64_t stop);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_KEYSPACE_H_
