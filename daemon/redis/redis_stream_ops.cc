#include "daemon/redis/redis_stream_ops.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/scripts.h"

namespace redrive {
namespace {

using HashPairs = std::vector<std::pair<std::string, std::string>>;

// touch.lua's idle time for a release: past any lease (at most 24 h), so the
// entry is reclaimable at once.
constexpr char kReleaseIdleMs[] = "86400001";

std::string Millis(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(0, absl::ToInt64Milliseconds(d)));
}

absl::Status Unexpected(absl::string_view command, const RedisReply& reply) {
  return absl::InternalError(
      absl::StrCat("unexpected reply to ", command, ": ", reply.DebugString()));
}

// A parser's error with the command named.
template <typename T>
absl::StatusOr<T> Named(absl::string_view command, absl::StatusOr<T> value) {
  if (value.ok()) return value;
  return absl::InternalError(absl::StrCat(command, ": ", value.status().message()));
}

// The reply callback that hands `done` the reply decoded by `decode`
// (RedisReply&& → StatusOr<T>), or the error reply's or transport's status.
template <typename T, typename Decode>
AsyncCallback Decoding(OpCallback<T> done, Decode decode) {
  return [done = std::move(done), decode = std::move(decode)](absl::StatusOr<RedisReply> r) {
    r = CheckReply(std::move(r));
    if (!r.ok()) {
      done(r.status());
      return;
    }
    absl::StatusOr<T> value = decode(*std::move(r));
    done(std::move(value));
  };
}

// The reply callback of a command whose reply carries nothing the caller
// needs: OK for a reply of type `expected`. `done` may be null.
AsyncCallback Expecting(const char* command, RedisReply::Type expected, DoneCallback done) {
  return [command, expected, done = std::move(done)](absl::StatusOr<RedisReply> r) {
    if (!done) return;
    r = CheckReply(std::move(r));
    if (!r.ok()) {
      done(r.status());
      return;
    }
    done(r->type == expected ? absl::OkStatus() : Unexpected(command, *r));
  };
}

// A zset score in whole milliseconds (±inf clamp to the int64 range).
bool ParseScore(const RedisReply& score, int64_t* ms) {
  double d = 0;
  if (!score.is_string() || !absl::SimpleAtod(score.str, &d) || std::isnan(d)) return false;
  if (d >= 9.2e18) {
    *ms = std::numeric_limits<int64_t>::max();
  } else if (d <= -9.2e18) {
    *ms = std::numeric_limits<int64_t>::min();
  } else {
    *ms = static_cast<int64_t>(d);
  }
  return true;
}

// [member, score, member, score, ...]
absl::StatusOr<std::vector<DueEntry>> DecodeDueEntries(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() % 2 != 0) return Unexpected("ZRANGE", r);
  std::vector<DueEntry> out;
  out.reserve(r.elements.size() / 2);
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    DueEntry e;
    if (!r.elements[i].is_string() || !ParseScore(r.elements[i + 1], &e.due_ms)) {
      return Unexpected("ZRANGE", r);
    }
    e.member = r.elements[i].str;
    out.push_back(std::move(e));
  }
  return out;
}

// XPENDING summary: [count, min id, max id, [[consumer, count], ...] | nil].
absl::StatusOr<std::vector<std::string>> DecodePendingSummary(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() != 4) return Unexpected("XPENDING", r);
  std::vector<std::string> out;
  const RedisReply& consumers = r.elements[3];
  if (consumers.is_nil()) return out;
  if (!consumers.is_array()) return Unexpected("XPENDING", r);
  for (const RedisReply& c : consumers.elements) {
    if (!c.is_array() || c.elements.size() != 2 || !c.elements[0].is_string()) {
      return Unexpected("XPENDING", r);
    }
    out.push_back(c.elements[0].str);
  }
  return out;
}

// XPENDING extended form: [[id, consumer, idle ms, deliveries], ...].
absl::StatusOr<std::vector<std::string>> DecodePendingIds(const RedisReply& r) {
  if (!r.is_array()) return Unexpected("XPENDING", r);
  std::vector<std::string> out;
  out.reserve(r.elements.size());
  for (const RedisReply& p : r.elements) {
    if (!p.is_array() || p.elements.size() != 4 || !p.elements[0].is_string()) {
      return Unexpected("XPENDING", r);
    }
    out.push_back(p.elements[0].str);
  }
  return out;
}

// XINFO CONSUMERS: [[name, n, pending, n, idle, ms, ...], ...].
absl::StatusOr<std::vector<ConsumerInfo>> DecodeConsumers(const RedisReply& r) {
  if (!r.is_array()) return Unexpected("XINFO CONSUMERS", r);
  std::vector<ConsumerInfo> out;
  for (const RedisReply& c : r.elements) {
    if (!c.is_array() || c.elements.size() % 2 != 0) return Unexpected("XINFO CONSUMERS", r);
    ConsumerInfo info;
    int seen = 0;
    for (size_t i = 0; i + 1 < c.elements.size(); i += 2) {
      const std::string& field = c.elements[i].str;
      const RedisReply& value = c.elements[i + 1];
      if (field == "name" && value.is_string()) {
        info.name = value.str;
        seen |= 1;
      } else if (field == "pending" && value.is_integer()) {
        info.pending = value.integer;
        seen |= 2;
      } else if (field == "idle" && value.is_integer()) {
        info.idle_ms = value.integer;
        seen |= 4;
      }
    }
    if (seen != 7) return Unexpected("XINFO CONSUMERS", r);
    out.push_back(std::move(info));
  }
  return out;
}

// trim_retry.lua: {removed, MINID, capped}.
absl::StatusOr<TrimRetryResult> DecodeTrimRetry(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() != 3 || !r.elements[0].is_integer() ||
      !r.elements[1].is_string() || !r.elements[2].is_integer()) {
    return Unexpected("script trim_retry", r);
  }
  TrimRetryResult out;
  out.removed = r.elements[0].integer;
  out.min_id = r.elements[1].str;
  out.more = out.removed > 0 || r.elements[2].integer == 1;
  return out;
}

absl::StatusOr<HashPairs> DecodeHash(const RedisReply& r) {
  if (!r.is_array() || r.elements.size() % 2 != 0) return Unexpected("HGETALL", r);
  HashPairs out;
  out.reserve(r.elements.size() / 2);
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    if (!r.elements[i].is_string() || !r.elements[i + 1].is_string()) {
      return Unexpected("HGETALL", r);
    }
    out.emplace_back(r.elements[i].str, r.elements[i + 1].str);
  }
  return out;
}

void AppendFields(const FieldList& fields, std::vector<std::string>& args) {
  args.reserve(args.size() + 2 * fields.size());
  for (const auto& [name, value] : fields) {
    args.push_back(name);
    args.push_back(value);
  }
}

}  // namespace

template <typename T>
void RedisStreamOps::AnswerInOrder(T value, OpCallback<T> done) {
  redis_.Send({"PING"}, [value = std::move(value), done = std::move(done)](
                            const absl::StatusOr<RedisReply>&) mutable { done(std::move(value)); });
}

void RedisStreamOps::AnswerInOrder(DoneCallback done) {
  if (!done) return;
  redis_.Send({"PING"}, [done = std::move(done)](const absl::StatusOr<RedisReply>&) {
    done(absl::OkStatus());
  });
}

void RedisStreamOps::CreateGroup(const std::string& stream, const std::string& group,
                                 const std::string& start_id, DoneCallback done) {
  redis_.Send(
      {"XGROUP", "CREATE", stream, group, start_id, "MKSTREAM"},
      [done = std::move(done)](absl::StatusOr<RedisReply> r) {
        if (!done) return;
        r = CheckReply(std::move(r));
        if (!r.ok()) {
          // An existing group keeps its position.
          done(RedisErrorOf(r.status()) == RedisError::kBusyGroup ? absl::OkStatus() : r.status());
          return;
        }
        done(r->is_status() ? absl::OkStatus() : Unexpected("XGROUP CREATE", *r));
      });
}

void RedisStreamOps::ReadGroup(const GroupRef& g, uint32_t count, bool no_ack,
                               OpCallback<std::vector<StreamEntry>> done) {
  const std::string count_text = absl::StrCat(count);
  RedisArgv argv = {"XREADGROUP", "GROUP", g.group, g.consumer, "COUNT", count_text};
  if (no_ack) argv.push_back("NOACK");
  argv.insert(argv.end(), {"STREAMS", g.stream, ">"});
  redis_.Send(argv, Decoding(std::move(done), [stream = g.stream](RedisReply r) {
                return Named("XREADGROUP", ParseReadReply(std::move(r), stream));
              }));
}

void RedisStreamOps::Claim(const GroupRef& g, absl::Duration min_idle, std::vector<std::string> ids,
                           OpCallback<std::vector<StreamEntry>> done) {
  if (ids.empty()) {
    AnswerInOrder(std::vector<StreamEntry>{}, std::move(done));
    return;
  }
  const std::string min_idle_ms = Millis(min_idle);
  RedisArgv argv = {"XCLAIM", g.stream, g.group, g.consumer, min_idle_ms};
  argv.insert(argv.end(), ids.begin(), ids.end());
  redis_.Send(argv, Decoding(std::move(done), [](RedisReply r) {
                return Named("XCLAIM", ParseEntryList(std::move(r)));
              }));
}

void RedisStreamOps::ReadEntry(const std::string& stream, const std::string& id,
                               OpCallback<std::optional<StreamEntry>> done) {
  redis_.Send({"XRANGE", stream, id, id},
              Decoding(std::move(done),
                       [](const RedisReply& r) -> absl::StatusOr<std::optional<StreamEntry>> {
                         absl::StatusOr<std::vector<StreamEntry>> entries =
                             Named("XRANGE", ParseEntryList(r));
                         if (!entries.ok()) return entries.status();
                         if (entries->size() > 1) return Unexpected("XRANGE", r);
                         if (entries->empty()) return std::nullopt;
                         return std::move(entries->front());
                       }));
}

void RedisStreamOps::Ack(const std::string& stream, const std::string& group,
                         std::vector<std::string> ids, DoneCallback done) {
  if (ids.empty()) {
    AnswerInOrder(std::move(done));
    return;
  }
  RedisArgv argv = {"XACK", stream, group};
  argv.insert(argv.end(), ids.begin(), ids.end());
  redis_.Send(argv, Expecting("XACK", RedisReply::Type::kInteger, std::move(done)));
}

void RedisStreamOps::PendingConsumers(const std::string& stream, const std::string& group,
                                      OpCallback<std::vector<std::string>> done) {
  redis_.Send({"XPENDING", stream, group}, [done = std::move(done)](absl::StatusOr<RedisReply> r) {
    r = CheckReply(std::move(r));
    if (!r.ok()) {
      // No group (or no stream): nobody has anything pending.
      if (RedisErrorOf(r.status()) == RedisError::kNoGroup) {
        done(std::vector<std::string>{});
      } else {
        done(r.status());
      }
      return;
    }
    done(DecodePendingSummary(*r));
  });
}

void RedisStreamOps::IdlePending(const GroupRef& g, absl::Duration min_idle, uint32_t count,
                                 OpCallback<std::vector<std::string>> done) {
  const std::string min_idle_ms = Millis(min_idle);
  const std::string count_text = absl::StrCat(count);
  redis_.Send(
      {"XPENDING", g.stream, g.group, "IDLE", min_idle_ms, "-", "+", count_text, g.consumer},
      Decoding(std::move(done), [](const RedisReply& r) { return DecodePendingIds(r); }));
}

void RedisStreamOps::Consumers(const std::string& stream, const std::string& group,
                               OpCallback<std::vector<ConsumerInfo>> done) {
  redis_.Send({"XINFO", "CONSUMERS", stream, group},
              Decoding(std::move(done), [](const RedisReply& r) { return DecodeConsumers(r); }));
}

void RedisStreamOps::DeleteIdleConsumer(const std::string& stream, const std::string& group,
                                        const std::string& consumer, OpCallback<bool> done) {
  SendScript(redis_, DeleteIdleConsumerScript(), {stream}, {group, consumer},
             Decoding(std::move(done), [](const RedisReply& r) -> absl::StatusOr<bool> {
               if (!r.is_integer() || (r.integer != 0 && r.integer != 1)) {
                 return Unexpected("script delete_idle_consumer", r);
               }
               return r.integer == 1;
             }));
}

void RedisStreamOps::Touch(const GroupRef& g, std::vector<std::string> ids, bool release,
                           DoneCallback done) {
  if (ids.empty()) {
    AnswerInOrder(std::move(done));
    return;
  }
  std::vector<std::string> args = {g.group, g.consumer, release ? kReleaseIdleMs : ""};
  args.insert(args.end(), std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
  SendScript(redis_, TouchScript(), {g.stream}, std::move(args),
             Expecting("script touch", RedisReply::Type::kInteger, std::move(done)));
}

void RedisStreamOps::EarliestDue(const std::string& due_zset,
                                 OpCallback<std::optional<DueEntry>> done) {
  redis_.Send(
      {"ZRANGE", due_zset, "0", "0", "WITHSCORES"},
      Decoding(std::move(done), [](const RedisReply& r) -> absl::StatusOr<std::optional<DueEntry>> {
        absl::StatusOr<std::vector<DueEntry>> due = DecodeDueEntries(r);
        if (!due.ok()) return due.status();
        if (due->size() > 1) return Unexpected("ZRANGE", r);
        if (due->empty()) return std::nullopt;
        return std::move(due->front());
      }));
}

void RedisStreamOps::DueBatch(const std::string& due_zset, uint32_t limit,
                              OpCallback<std::vector<DueEntry>> done) {
  const std::string limit_text = absl::StrCat(limit);
  redis_.Send(
      {"ZRANGE", due_zset, "-inf", "+inf", "BYSCORE", "LIMIT", "0", limit_text, "WITHSCORES"},
      Decoding(std::move(done), [](const RedisReply& r) { return DecodeDueEntries(r); }));
}

void RedisStreamOps::RemoveDue(const std::string& due_zset, const std::string& member) {
  // Fire and forget: a member left behind is met again by the next pass.
  redis_.Send({"ZREM", due_zset, member}, [due_zset](absl::StatusOr<RedisReply> r) {
    r = CheckReply(std::move(r));
    if (!r.ok()) {
      spdlog::debug("ZREM on '{}' failed: {}", due_zset, std::string(r.status().message()));
    }
  });
}

void RedisStreamOps::ScheduleRetry(const ScheduleRetryOp& op,
                                   OpCallback<ScheduleRetryResult> done) {
  SendScript(redis_, ScheduleRetryScript(), {op.owner.stream, op.due_zset},
             {op.owner.group, op.id, op.owner.consumer, op.scheduled_consumer, Millis(op.delay),
              op.member},
             Decoding(std::move(done), [](const RedisReply& r) { return DecodeScheduleRetry(r); }));
}

void RedisStreamOps::MoveDue(const MoveDueOp& op, OpCallback<MoveDueResult> done) {
  std::vector<std::string> args = {op.from.group, op.id, op.member, op.retry_group,
                                   op.from.consumer};
  AppendFields(op.fields, args);
  SendScript(redis_, MoveDueScript(), {op.from.stream, op.retry_stream, op.due_zset},
             std::move(args),
             Decoding(std::move(done), [](const RedisReply& r) { return DecodeMoveDue(r); }));
}

void RedisStreamOps::DeadLetter(const DeadLetterOp& op, OpCallback<DeadLetterResult> done) {
  std::vector<std::string> args = {op.from.group, op.id, op.from.consumer, absl::StrCat(op.max_len),
                                   op.hold_when_full ? "hold" : "evict"};
  AppendFields(op.fields, args);
  SendScript(redis_, DeadLetterScript(), {op.from.stream, op.dlq_stream}, std::move(args),
             Decoding(std::move(done), [](const RedisReply& r) { return DecodeDeadLetter(r); }));
}

void RedisStreamOps::TrimRetry(const std::string& retry_stream, uint32_t limit,
                               absl::Duration retention, OpCallback<TrimRetryResult> done) {
  SendScript(redis_, TrimRetryScript(), {retry_stream}, {absl::StrCat(limit), Millis(retention)},
             Decoding(std::move(done), [](const RedisReply& r) { return DecodeTrimRetry(r); }));
}

void RedisStreamOps::HashFields(const std::string& key, OpCallback<HashPairs> done) {
  redis_.Send({"HGETALL", key},
              Decoding(std::move(done), [](const RedisReply& r) { return DecodeHash(r); }));
}

void RedisStreamOps::HashHas(const std::string& key, const std::string& field,
                             OpCallback<bool> done) {
  redis_.Send({"HEXISTS", key, field},
              Decoding(std::move(done), [](const RedisReply& r) -> absl::StatusOr<bool> {
                if (!r.is_integer() || (r.integer != 0 && r.integer != 1)) {
                  return Unexpected("HEXISTS", r);
                }
                return r.integer == 1;
              }));
}

void RedisStreamOps::HashSet(const std::string& key, HashPairs fields, DoneCallback done) {
  if (fields.empty()) {
    AnswerInOrder(std::move(done));
    return;
  }
  RedisArgv argv = {"HSET", key};
  argv.reserve(2 + 2 * fields.size());
  for (const auto& [name, value] : fields) {
    argv.push_back(name);
    argv.push_back(value);
  }
  redis_.Send(argv, Expecting("HSET", RedisReply::Type::kInteger, std::move(done)));
}

void RedisStreamOps::HashDelete(const std::string& key, const std::string& field,
                                DoneCallback done) {
  redis_.Send({"HDEL", key, field}, Expecting("HDEL", RedisReply::Type::kInteger, std::move(done)));
}

void RedisStreamOps::Barrier(DoneCallback done) {
  redis_.Send({"PING"}, Expecting("PING", RedisReply::Type::kStatus, std::move(done)));
}

}  // namespace redrive
