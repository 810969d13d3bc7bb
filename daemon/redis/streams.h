// Typed synchronous stream commands over a RedisCommander: what the admin
// side, Tail and Publish ask of a stream (lengths, ranges, reads, appends,
// deletions, group and consumer listings), with replies parsed into
// StreamEntry and small structs. Redis error replies come back as statuses
// from errors.h (test their kind with RedisErrorOf: kWrongType for a key of
// another type, ...); a reply of an unexpected shape is INTERNAL; a
// transport failure is UNAVAILABLE, as RedisCommander says.
//
// Thread-safe: free functions over the caller's connection (one thread at a
// time, as RedisCommander requires).
#ifndef REDRIVE_DAEMON_REDIS_STREAMS_H_
#define REDRIVE_DAEMON_REDIS_STREAMS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/redis/commander.h"
#include "daemon/stream_entry.h"

namespace redrive {

// One consumer group of XINFO GROUPS.
struct StreamGroupInfo {
  std::string name;
  int64_t consumers = 0;
  int64_t pending = 0;
  std::string last_delivered_id;
  // Entries not yet delivered to the group; -1 when Redis cannot tell (or
  // is older than 7.0).
  int64_t lag = -1;
};

// One consumer of XINFO CONSUMERS.
struct StreamConsumerInfo {
  std::string name;
  int64_t pending = 0;
  int64_t idle_ms = 0;
};

// XLEN: 0 for a missing key.
absl::StatusOr<int64_t> XLen(RedisCommander& redis, absl::string_view key);

// XRANGE key start end [COUNT count] (count 0: no limit), oldest first.
// Bounds are Redis's: "-", "+", an id, "(" + id for an exclusive one.
absl::StatusOr<std::vector<StreamEntry>> XRange(RedisCommander& redis, absl::string_view key,
                                                absl::string_view start, absl::string_view end,
                                                size_t count = 0);
// XREVRANGE key end start [COUNT count], newest first.
absl::StatusOr<std::vector<StreamEntry>> XRevRange(RedisCommander& redis, absl::string_view key,
                                                   absl::string_view end, absl::string_view start,
                                                   size_t count = 0);

// Each of `ids` looked up with XRANGE id id, in one round trip: one element
// per id, in order, nullopt for an id that is not in the stream.
absl::StatusOr<std::vector<std::optional<StreamEntry>>> XRangeEach(
    RedisCommander& redis, absl::string_view key, const std::vector<std::string>& ids);

// XDEL of each of `ids`, in one round trip: one element per id, true when
// that id existed (and is now deleted).
absl::StatusOr<std::vector<bool>> XDelEach(RedisCommander& redis, absl::string_view key,
                                           const std::vector<std::string>& ids);

// Non-blocking XREAD COUNT count STREAMS key after_id: the entries after
// `after_id`, oldest first (none for a missing key).
absl::StatusOr<std::vector<StreamEntry>> XRead(RedisCommander& redis, absl::string_view key,
                                               absl::string_view after_id, size_t count);

// Appends one entry per element of `entries` (field-value lists) with
// XADD key [MAXLEN ~ max_len] * fields...: one command for one entry, one
// MULTI/EXEC (all or none) for several. The new ids, in order. A refused
// command's error (WRONGTYPE, ...) is the status.
absl::StatusOr<std::vector<std::string>> XAdd(RedisCommander& redis, absl::string_view key,
                                              const std::vector<FieldList>& entries,
                                              uint64_t max_len = 0);
// The same for entries of one field `field` each, with the values `values`.
absl::StatusOr<std::vector<std::string>> XAdd(RedisCommander& redis, absl::string_view key,
                                              absl::string_view field,
                                              const std::vector<std::string>& values,
                                              uint64_t max_len = 0);

// XINFO GROUPS: the stream's groups; none for a missing key.
absl::StatusOr<std::vector<StreamGroupInfo>> XInfoGroups(RedisCommander& redis,
                                                         absl::string_view key);
// XINFO CONSUMERS key group. A missing key or group is the error status
// (NOGROUP, no such key).
absl::StatusOr<std::vector<StreamConsumerInfo>> XInfoConsumers(RedisCommander& redis,
                                                               absl::string_view key,
                                                               absl::string_view group);

// The ids of XPENDING key group start + count (start: "-", or "(" + id to
// continue after an id), oldest first.
absl::StatusOr<std::vector<std::string>> XPendingIds(RedisCommander& redis, absl::string_view key,
                                                     absl::string_view group,
                                                     absl::string_view start, size_t count);

// XACK key group id: true when the id was pending.
absl::StatusOr<bool> XAck(RedisCommander& redis, absl::string_view key, absl::string_view group,
                          absl::string_view id);

// Reply parsers, for pipelines built elsewhere under daemon/redis/. Each
// turns an error reply into its status.
absl::StatusOr<std::vector<StreamGroupInfo>> ParseGroupInfos(const RedisReply& reply);
absl::StatusOr<std::vector<StreamConsumerInfo>> ParseConsumerInfos(const RedisReply& reply);
// The group named `name` in `groups`, or nullopt.
std::optional<StreamGroupInfo> FindGroup(const std::vector<StreamGroupInfo>& groups,
                                         absl::string_view name);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_STREAMS_H_
