// Reading Redis state in tests: exact key sets and pending counts.
#ifndef REDRIVE_TESTS_TESTING_REDIS_INSPECT_H_
#define REDRIVE_TESTS_TESTING_REDIS_INSPECT_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/redis_client.h"

namespace redrive::testing {

// Every key of the database, sorted (tests use private servers).
inline std::vector<std::string> SortedKeys(RedisCommander& redis) {
  std::vector<std::string> keys;
  absl::StatusOr<RedisReply> reply = redis.Command({"KEYS", "*"});
  EXPECT_TRUE(reply.ok()) << reply.status();
  if (!reply.ok()) return keys;
  for (const RedisReply& k : reply->elements) keys.push_back(k.str);
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Entries pending in `group` of `stream`; -1 when Redis cannot say.
inline int64_t PendingCount(RedisCommander& redis, const std::string& stream,
                            const std::string& group) {
  absl::StatusOr<RedisReply> r = redis.Command({"XPENDING", stream, group});
  return r.ok() && r->is_array() && !r->elements.empty() ? r->elements[0].integer : -1;
}

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_REDIS_INSPECT_H_
