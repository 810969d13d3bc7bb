#include "daemon/legacy_migration.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/redis/scripts.h"
#include "daemon/stream_entry.h"

namespace redrive {
namespace {

constexpr size_t kChunk = 500;
constexpr absl::string_view kLegacyGroupSuffix = "-retry";

struct LegacyGroup {
  std::string name;
  std::string handler_id;
  std::string last_delivered;
};

absl::StatusOr<std::vector<LegacyGroup>> Groups(RedisCommander& redis, const std::string& stream) {
  absl::StatusOr<RedisReply> r = redis.Command({"XINFO", "GROUPS", stream});
  if (!r.ok()) return r.status();
  std::vector<LegacyGroup> out;
  if (r->is_error()) {
    if (absl::StrContains(r->str, "no such key")) return out;
    return r->ErrorStatus();
  }
  for (const RedisReply& g : r->elements) {
    LegacyGroup group;
    for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
      if (g.elements[i].str == "name") group.name = g.elements[i + 1].str;
      if (g.elements[i].str == "last-delivered-id") group.last_delivered = g.elements[i + 1].str;
    }
    absl::string_view handler = group.name;
    if (!absl::ConsumeSuffix(&handler, kLegacyGroupSuffix) ||
        !ValidateHandlerId(handler).ok()) {
      spdlog::warn("legacy migration: group '{}' of '{}' names no handler; left alone",
                   group.name, stream);
      continue;
    }
    group.handler_id = std::string(handler);
    out.push_back(std::move(group));
  }
  return out;
}

// Ids pending in `group`, oldest first.
absl::StatusOr<std::vector<std::string>> PendingIds(RedisCommander& redis,
                                                    const std::string& stream,
                                                    const std::string& group) {
  std::vector<std::string> ids;
  std::string start = "-";
  while (true) {
    absl::StatusOr<RedisReply> r =
        redis.Command({"XPENDING", stream, group, start, "+", absl::StrCat(kChunk)});
    if (!r.ok()) return r.status();
    if (r->is_error()) return r->ErrorStatus();
    for (const RedisReply& p : r->elements) {
      if (!p.elements.empty()) ids.push_back(p.elements[0].str);
    }
    if (r->elements.size() < kChunk || ids.empty()) return ids;
    start = absl::StrCat("(", ids.back());
  }
}

absl::StatusOr<std::vector<StreamEntry>> Range(RedisCommander& redis, const std::string& stream,
                                               const std::string& start, const std::string& end,
                                               size_t count) {
  absl::StatusOr<RedisReply> r =
      redis.Command({"XRANGE", stream, start, end, "COUNT", absl::StrCat(count)});
  if (!r.ok()) return r.status();
  if (r->is_error()) return r->ErrorStatus();
  return ParseEntryList(*std::move(r));
}

absl::StatusOr<bool> MoveOne(RedisCommander& redis, const std::string& legacy,
                             const std::string& target, const LegacyGroup& group,
                             const std::string& target_group, const StreamEntry& entry,
                             const char* kind, const std::string& expected_last) {
  std::vector<std::string> args = {group.name, entry.id, target_group, kind, expected_last};
  for (const auto& [n, v] : entry.fields) {
    args.push_back(n);
    args.push_back(v);
  }
  absl::StatusOr<RedisReply> r = RunScript(redis, LegacyMoveScript(), {legacy, target}, args);
  if (!r.ok()) return r.status();
  return r->is_string();
}

}  // namespace

absl::StatusOr<v1::MigrateLegacyKeysResponse> MigrateLegacyKeys(RedisCommander& redis,
                                                                 const std::string& channel,
                                                                 KeyStyle style, bool dry_run) {
  v1::MigrateLegacyKeysResponse response;
  const std::string legacy = LegacyRetryStream(channel, style);
  const std::string legacy_dlq = LegacyDlqStream(channel, style);
  response.set_legacy_retry_stream(legacy);
  response.set_legacy_dlq_stream(legacy_dlq);
  response.set_dry_run(dry_run);

  absl::StatusOr<RedisReply> dlq_len = redis.Command({"XLEN", legacy_dlq});
  if (!dlq_len.ok()) return dlq_len.status();
  if (dlq_len->is_error()) return dlq_len->ErrorStatus();
  response.set_unattributed_dead_letters(static_cast<uint64_t>(dlq_len->integer));

  absl::StatusOr<std::vector<LegacyGroup>> groups = Groups(redis, legacy);
  if (!groups.ok()) return groups.status();
  for (const LegacyGroup& group : *groups) {
    const HandlerKeys keys = MakeHandlerKeys(channel, group.handler_id, style);
    v1::LegacyMigration* m = response.add_migrations();
    m->set_handler_id(group.handler_id);
    m->set_target_stream(keys.retry_stream);
    uint64_t moved = 0;

    // 1. Entries the handler read and never acknowledged.
    absl::StatusOr<std::vector<std::string>> pending = PendingIds(redis, legacy, group.name);
    if (!pending.ok()) return pending.status();
    for (const std::string& id : *pending) {
      absl::StatusOr<std::vector<StreamEntry>> e = Range(redis, legacy, id, id, 1);
      if (!e.ok()) return e.status();
      if (e->empty()) {
        // Trimmed while pending: nothing to move; clear it from the PEL.
        if (!dry_run) (void)redis.Command({"XACK", legacy, group.name, id});
        continue;
      }
      if (dry_run) {
        ++moved;
        continue;
      }
      absl::StatusOr<bool> ok =
          MoveOne(redis, legacy, keys.retry_stream, group, keys.retry_group, e->front(),
                  "pending", "");
      if (!ok.ok()) return ok.status();
      moved += *ok ? 1 : 0;
    }

    // 2. Entries after the group's last-delivered id: not read by it yet.
    std::string last = group.last_delivered;
    while (true) {
      absl::StatusOr<std::vector<StreamEntry>> batch =
          Range(redis, legacy, absl::StrCat("(", last), "+", kChunk);
      if (!batch.ok()) return batch.status();
      for (const StreamEntry& e : *batch) {
        if (!dry_run) {
          absl::StatusOr<bool> ok = MoveOne(redis, legacy, keys.retry_stream, group,
                                            keys.retry_group, e, "unread", last);
          if (!ok.ok()) return ok.status();
          if (!*ok) {
            return absl::AbortedError(absl::StrCat(
                "group '", group.name, "' of '", legacy,
                "' moved while migrating (a legacy consumer is still running?); run again"));
          }
        }
        ++moved;
        last = e.id;
      }
      if (batch->size() < kChunk) break;
    }
    m->set_retry_entries(moved);
    if (!dry_run) {
      spdlog::info("legacy migration: {} entries of '{}' moved to '{}' for handler '{}'", moved,
                   legacy, keys.retry_stream, group.handler_id);
    }
  }
  return response;
}

}  // namespace redrive
