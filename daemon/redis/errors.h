// Redis error replies as absl::Status: the one place that reads an error
// reply's text. Every operation under daemon/redis/ returns its Redis errors
// through these functions; callers test the kind with RedisErrorOf instead of
// matching prefixes.
//
// Status codes: LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, MOVED and
// ASK are UNAVAILABLE (retry later, or elsewhere); the rest are INTERNAL,
// and callers that give a kind its own meaning (WRONGTYPE → "not a stream")
// test RedisErrorOf. The message is "redis: " + the reply text.
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_REDIS_ERRORS_H_
#define REDRIVE_DAEMON_REDIS_ERRORS_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/redis/reply.h"

namespace redrive {

// The kinds of Redis error reply the daemon acts on.
enum class RedisError {
  kNone,       // not a Redis error reply (OK, or a transport failure)
  kNoGroup,    // NOGROUP: the consumer group (or its stream) does not exist
  kNoScript,   // NOSCRIPT: EVALSHA of a script not in the cache
  kBusyGroup,  // BUSYGROUP: XGROUP CREATE of a group that exists
  kWrongType,  // WRONGTYPE: the key holds another type
  kNoSuchKey,  // ERR no such key: XINFO of a key that does not exist
  kMoved,      // MOVED slot host:port (Redis Cluster; reserved)
  kAsk,        // ASK slot host:port (Redis Cluster; reserved)
  kTransient,  // LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN
  kOther,
};

// The kind of an error reply's text ("NOGROUP No such key ..." → kNoGroup).
RedisError ClassifyRedisError(absl::string_view reply_text);

// The Status of an error reply (OK for any other reply); it carries the kind.
absl::Status RedisErrorStatus(const RedisReply& reply);

// The kind a Status from RedisErrorStatus carries; kNone for other statuses.
RedisError RedisErrorOf(const absl::Status& status);

// `reply` with an error reply turned into its Status.
absl::StatusOr<RedisReply> CheckReply(absl::StatusOr<RedisReply> reply);

// The first error reply among `replies` (a pipeline, an EXEC), or OK.
absl::Status FirstRedisError(const std::vector<RedisReply>& replies);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_ERRORS_H_
