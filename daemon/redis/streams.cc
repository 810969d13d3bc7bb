#include "daemon/redis/streams.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/errors.h"

namespace redrive {
namespace {

absl::StatusOr<std::vector<StreamEntry>> EntriesOf(absl::StatusOr<RedisReply> reply) {
  reply = CheckReply(std::move(reply));
  if (!reply.ok()) return reply.status();
  return ParseEntryList(*std::move(reply));
}

absl::StatusOr<std::vector<StreamEntry>> Range(RedisCommander& redis, absl::string_view command,
                                               absl::string_view key, absl::string_view from,
                                               absl::string_view to, size_t count) {
  const std::string n = absl::StrCat(count);
  RedisArgv argv = {command, key, from, to};
  if (count > 0) argv.insert(argv.end(), {"COUNT", n});
  return EntriesOf(redis.Command(argv));
}

absl::StatusOr<int64_t> IntegerOf(absl::StatusOr<RedisReply> reply, absl::string_view what) {
  reply = CheckReply(std::move(reply));
  if (!reply.ok()) return reply.status();
  if (!reply->is_integer()) {
    return absl::InternalError(absl::StrCat(what, " answered ", reply->DebugString()));
  }
  return reply->integer;
}

// A [name, value, name, value, ...] reply's integer field, or `fallback`.
int64_t IntField(const RedisReply& map, absl::string_view name, int64_t fallback) {
  for (size_t i = 0; i + 1 < map.elements.size(); i += 2) {
    if (map.elements[i].str == name) {
      const RedisReply& v = map.elements[i + 1];
      return v.is_integer() ? v.integer : fallback;
    }
  }
  return fallback;
}

std::string StringField(const RedisReply& map, absl::string_view name) {
  for (size_t i = 0; i + 1 < map.elements.size(); i += 2) {
    if (map.elements[i].str == name) return map.elements[i + 1].str;
  }
  return std::string();
}

// XADD key [MAXLEN ~ max] *
RedisArgv XAddHead(absl::string_view key, uint64_t max_len, const std::string& max) {
  RedisArgv argv = {"XADD", key};
  if (max_len > 0) argv.insert(argv.end(), {"MAXLEN", "~", max});
  argv.push_back("*");
  return argv;
}

// Runs the XADDs `adds` (in a MULTI/EXEC when more than one): their ids.
absl::StatusOr<std::vector<std::string>> AddAll(RedisCommander& redis,
                                                std::vector<RedisArgv> adds) {
  std::vector<std::string> ids;
  if (adds.empty()) return ids;
  const size_t n = adds.size();
  const bool single = n == 1;
  if (!single) {
    adds.insert(adds.begin(), RedisArgv{"MULTI"});
    adds.push_back({"EXEC"});
  }
  absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(adds);
  if (!replies.ok()) return replies.status();
  // A refused queued command (EXECABORT) is reported by its own error.
  if (absl::Status s = FirstRedisError(*replies); !s.ok()) return s;
  const std::vector<RedisReply>& added = single ? *replies : replies->back().elements;
  if (!single && (!replies->back().is_array() || added.size() != n)) {
    return absl::InternalError(absl::StrCat("EXEC answered ", replies->back().DebugString()));
  }
  // Errors at EXEC time (WRONGTYPE) are elements of its reply.
  if (absl::Status s = FirstRedisError(added); !s.ok()) return s;
  ids.reserve(n);
  for (const RedisReply& r : added) {
    if (!r.is_string()) return absl::InternalError(absl::StrCat("XADD answered ", r.DebugString()));
    ids.push_back(r.str);
  }
  return ids;
}

}  // namespace

absl::StatusOr<int64_t> XLen(RedisCommander& redis, absl::string_view key) {
  return IntegerOf(redis.Command({"XLEN", key}), "XLEN");
}

absl::StatusOr<std::vector<StreamEntry>> XRange(RedisCommander& redis, absl::string_view key,
                                                absl::string_view start, absl::string_view end,
                                                size_t count) {
  return Range(redis, "XRANGE", key, start, end, count);
}

absl::StatusOr<std::vector<StreamEntry>> XRevRange(RedisCommander& redis, absl::string_view key,
                                                   absl::string_view end, absl::string_view start,
                                                   size_t count) {
  return Range(redis, "XREVRANGE", key, end, start, count);
}

absl::StatusOr<std::vector<std::optional<StreamEntry>>> XRangeEach(
    RedisCommander& redis, absl::string_view key, const std::vector<std::string>& ids) {
  std::vector<std::optional<StreamEntry>> out;
  if (ids.empty()) return out;
  std::vector<RedisArgv> commands;
  commands.reserve(ids.size());
  for (const std::string& id : ids) commands.push_back({"XRANGE", key, id, id});
  absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  out.reserve(ids.size());
  for (RedisReply& r : *replies) {
    absl::StatusOr<std::vector<StreamEntry>> entries = EntriesOf(std::move(r));
    if (!entries.ok()) return entries.status();
    if (entries->empty()) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(std::move(entries->front()));
    }
  }
  return out;
}

absl::StatusOr<std::vector<bool>> XDelEach(RedisCommander& redis, absl::string_view key,
                                           const std::vector<std::string>& ids) {
  std::vector<bool> out;
  if (ids.empty()) return out;
  std::vector<RedisArgv> commands;
  commands.reserve(ids.size());
  for (const std::string& id : ids) commands.push_back({"XDEL", key, id});
  absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  if (absl::Status s = FirstRedisError(*replies); !s.ok()) return s;
  out.reserve(ids.size());
  for (const RedisReply& r : *replies) out.push_back(r.is_integer() && r.integer == 1);
  return out;
}

absl::StatusOr<std::vector<StreamEntry>> XRead(RedisCommander& redis, absl::string_view key,
                                               absl::string_view after_id, size_t count) {
  const std::string n = absl::StrCat(count);
  absl::StatusOr<RedisReply> reply =
      CheckReply(redis.Command({"XREAD", "COUNT", n, "STREAMS", key, after_id}));
  if (!reply.ok()) return reply.status();
  return ParseReadReply(*std::move(reply), key);
}

absl::StatusOr<std::vector<std::string>> XAdd(RedisCommander& redis, absl::string_view key,
                                              const std::vector<FieldList>& entries,
                                              uint64_t max_len) {
  const std::string max = absl::StrCat(max_len);
  std::vector<RedisArgv> commands;
  commands.reserve(entries.size());
  for (const FieldList& fields : entries) {
    RedisArgv argv = XAddHead(key, max_len, max);
    for (const auto& [name, value] : fields) argv.insert(argv.end(), {name, value});
    commands.push_back(std::move(argv));
  }
  return AddAll(redis, std::move(commands));
}

absl::StatusOr<std::vector<std::string>> XAdd(RedisCommander& redis, absl::string_view key,
                                              absl::string_view field,
                                              const std::vector<std::string>& values,
                                              uint64_t max_len) {
  const std::string max = absl::StrCat(max_len);
  std::vector<RedisArgv> commands;
  commands.reserve(values.size());
  for (const std::string& value : values) {
    RedisArgv argv = XAddHead(key, max_len, max);
    argv.insert(argv.end(), {field, value});
    commands.push_back(std::move(argv));
  }
  return AddAll(redis, std::move(commands));
}

absl::StatusOr<std::vector<StreamGroupInfo>> ParseGroupInfos(const RedisReply& reply) {
  std::vector<StreamGroupInfo> out;
  if (absl::Status s = RedisErrorStatus(reply); !s.ok()) {
    if (RedisErrorOf(s) == RedisError::kNoSuchKey) return out;
    return s;
  }
  if (!reply.is_array()) {
    return absl::InternalError(absl::StrCat("XINFO GROUPS answered ", reply.DebugString()));
  }
  for (const RedisReply& g : reply.elements) {
    StreamGroupInfo info;
    info.name = StringField(g, "name");
    info.consumers = IntField(g, "consumers", 0);
    info.pending = IntField(g, "pending", 0);
    info.last_delivered_id = StringField(g, "last-delivered-id");
    info.lag = IntField(g, "lag", -1);
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::vector<StreamConsumerInfo>> ParseConsumerInfos(const RedisReply& reply) {
  if (absl::Status s = RedisErrorStatus(reply); !s.ok()) return s;
  if (!reply.is_array()) {
    return absl::InternalError(absl::StrCat("XINFO CONSUMERS answered ", reply.DebugString()));
  }
  std::vector<StreamConsumerInfo> out;
  for (const RedisReply& c : reply.elements) {
    StreamConsumerInfo info;
    info.name = StringField(c, "name");
    info.pending = IntField(c, "pending", 0);
    info.idle_ms = IntField(c, "idle", 0);
    out.push_back(std::move(info));
  }
  return out;
}

std::optional<StreamGroupInfo> FindGroup(const std::vector<StreamGroupInfo>& groups,
                                         absl::string_view name) {
  for (const StreamGroupInfo& g : groups) {
    if (g.name == name) return g;
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<StreamGroupInfo>> XInfoGroups(RedisCommander& redis,
                                                         absl::string_view key) {
  absl::StatusOr<RedisReply> reply = redis.Command({"XINFO", "GROUPS", key});
  if (!reply.ok()) return reply.status();
  return ParseGroupInfos(*reply);
}

absl::StatusOr<std::vector<StreamConsumerInfo>> XInfoConsumers(RedisCommander& redis,
                                                               absl::string_view key,
                                                               absl::string_view group) {
  absl::StatusOr<RedisReply> reply = redis.Command({"XINFO", "CONSUMERS", key, group});
  if (!reply.ok()) return reply.status();
  return ParseConsumerInfos(*reply);
}

absl::StatusOr<std::vector<std::string>> XPendingIds(RedisCommander& redis, absl::string_view key,
                                                     absl::string_view group,
                                                     absl::string_view start, size_t count) {
  const std::string n = absl::StrCat(count);
  absl::StatusOr<RedisReply> reply =
      CheckReply(redis.Command({"XPENDING", key, group, start, "+", n}));
  if (!reply.ok()) return reply.status();
  std::vector<std::string> ids;
  for (RedisReply& p : reply->elements) {
    if (!p.elements.empty()) ids.push_back(std::move(p.elements[0].str));
  }
  return ids;
}

absl::StatusOr<bool> XAck(RedisCommander& redis, absl::string_view key, absl::string_view group,
                          absl::string_view id) {
  absl::StatusOr<int64_t> n = IntegerOf(redis.Command({"XACK", key, group, id}), "XACK");
  if (!n.ok()) return n.status();
  return *n == 1;
}

}  // namespace redrive
