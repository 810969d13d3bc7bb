// Reading Redis state in tests: exact key sets and pending counts.
#ifndef REDRIVE_TESTS_TESTING_REDIS_INSPECT_H_
#define REDRIVE_TESTS_TESTING_REDIS_INSPECT_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/redis/connection.h"
#include "daemon/stream_entry.h"

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

// Every entry of `stream`, oldest first (a failed expectation if Redis errs).
inline std::vector<StreamEntry> XRangeAll(RedisCommander& redis, const std::string& stream) {
  absl::StatusOr<RedisReply> r = redis.Command({"XRANGE", stream, "-", "+"});
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok() || r->is_error()) return {};
  absl::StatusOr<std::vector<StreamEntry>> entries = ParseEntryList(*r);
  EXPECT_TRUE(entries.ok()) << entries.status();
  return entries.ok() ? *std::move(entries) : std::vector<StreamEntry>{};
}

// XLEN of `stream`; -1 when Redis cannot say.
inline int64_t XLenOf(RedisCommander& redis, const std::string& stream) {
  absl::StatusOr<RedisReply> r = redis.Command({"XLEN", stream});
  return r.ok() && r->is_integer() ? r->integer : -1;
}

// A group's last-delivered-id (XINFO GROUPS); "" when there is no such group.
inline std::string LastDeliveredId(RedisCommander& redis, const std::string& stream,
                                   const std::string& group) {
  absl::StatusOr<RedisReply> r = redis.Command({"XINFO", "GROUPS", stream});
  if (!r.ok() || !r->is_array()) return "";
  for (const RedisReply& g : r->elements) {
    std::string name, last;
    for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
      if (g.elements[i].str == "name") name = g.elements[i + 1].str;
      if (g.elements[i].str == "last-delivered-id") last = g.elements[i + 1].str;
    }
    if (name == group) return last;
  }
  return "";
}

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_REDIS_INSPECT_H_
