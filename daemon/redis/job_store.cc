#include "daemon/redis/job_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "daemon/redis/errors.h"

namespace redrive {
namespace {

// Ids per RPUSH (Redis takes any number; this bounds one command's size).
constexpr size_t kIdsPerPush = 1000;

}  // namespace

absl::Status CreateJobRecord(RedisCommander& redis, const NewJobRecord& record) {
  const std::string score = absl::StrCat(record.created_ms);
  std::vector<RedisArgv> commands;
  commands.push_back({"MULTI"});
  for (size_t i = 0; i < record.ids.size(); i += kIdsPerPush) {
    RedisArgv push = {"RPUSH", record.ids_key};
    for (size_t j = i; j < std::min(record.ids.size(), i + kIdsPerPush); ++j) {
      push.push_back(record.ids[j]);
    }
    commands.push_back(std::move(push));
  }
  RedisArgv hset = {"HSET", record.hash_key};
  for (const auto& [name, value] : record.fields) hset.insert(hset.end(), {name, value});
  commands.push_back(std::move(hset));
  commands.push_back({"ZADD", record.index_key, score, record.job_id});
  commands.push_back({"EXEC"});
  absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  const RedisReply& exec = replies->back();
  if (exec.is_error() || !exec.is_array()) {
    return absl::InternalError(absl::StrCat("creating the job failed: ", exec.DebugString()));
  }
  return FirstRedisError(exec.elements);
}

absl::StatusOr<std::vector<std::optional<std::string>>> ReadJobField(
    RedisCommander& redis, const std::vector<std::string>& hash_keys, const std::string& field) {
  std::vector<std::optional<std::string>> out;
  if (hash_keys.empty()) return out;
  std::vector<RedisArgv> commands;
  commands.reserve(hash_keys.size());
  for (const std::string& key : hash_keys) commands.push_back({"HGET", key, field});
  absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  if (absl::Status s = FirstRedisError(*replies); !s.ok()) return s;
  out.reserve(replies->size());
  for (RedisReply& r : *replies) {
    if (r.is_nil()) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(std::move(r.str));
    }
  }
  return out;
}

}  // namespace redrive
