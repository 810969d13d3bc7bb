#include "daemon/legacy_migration.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/logging.h"
#include "daemon/redis/script_results.h"
#include "daemon/redis/scripts.h"
#include "daemon/redis/streams.h"
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
  absl::StatusOr<std::vector<StreamGroupInfo>> groups = XInfoGroups(redis, stream);
  if (!groups.ok()) return groups.status();
  std::vector<LegacyGroup> out;
  for (const StreamGroupInfo& g : *groups) {
    LegacyGroup group;
    group.name = g.name;
    group.last_delivered = g.last_delivered_id;
    absl::string_view handler = group.name;
    if (!absl::ConsumeSuffix(&handler, kLegacyGroupSuffix) || !ValidateHandlerId(handler).ok()) {
      LogWarn(LogFields().Stream(stream).Group(group.name),
              "legacy migration: the group names no handler; left alone");
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
    absl::StatusOr<std::vector<std::string>> page =
        XPendingIds(redis, stream, group, start, kChunk);
    if (!page.ok()) return page.status();
    ids.insert(ids.end(), page->begin(), page->end());
    if (page->size() < kChunk || ids.empty()) return ids;
    start = absl::StrCat("(", ids.back());
  }
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
  absl::StatusOr<LegacyMoveResult> moved = DecodeLegacyMove(*r);
  if (!moved.ok()) return moved.status();
  return moved->kind == LegacyMoveResult::Kind::kMoved;
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

  absl::StatusOr<int64_t> dlq_len = XLen(redis, legacy_dlq);
  if (!dlq_len.ok()) return dlq_len.status();
  response.set_unattributed_dead_letters(static_cast<uint64_t>(*dlq_len));

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
      absl::StatusOr<std::vector<StreamEntry>> e = XRange(redis, legacy, id, id, 1);
      if (!e.ok()) return e.status();
      if (e->empty()) {
        // Trimmed while pending: nothing to move; clear it from the PEL.
        if (!dry_run) (void)XAck(redis, legacy, group.name, id);
        continue;
      }
      if (dry_run) {
        ++moved;
        continue;
      }
      absl::StatusOr<bool> ok = MoveOne(redis, legacy, keys.retry_stream, group, keys.retry_group,
                                        e->front(), "pending", "");
      if (!ok.ok()) return ok.status();
      moved += *ok ? 1 : 0;
    }

    // 2. Entries after the group's last-delivered id: not read by it yet.
    std::string last = group.last_delivered;
    while (true) {
      absl::StatusOr<std::vector<StreamEntry>> batch =
          XRange(redis, legacy, absl::StrCat("(", last), "+", kChunk);
      if (!batch.ok()) return batch.status();
      for (const StreamEntry& e : *batch) {
        if (!dry_run) {
          absl::StatusOr<bool> ok =
              MoveOne(redis, legacy, keys.retry_stream, group, keys.retry_group, e, "unread", last);
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
      LogInfo(LogFields().Channel(channel).Handler(group.handler_id).Stream(keys.retry_stream),
              "legacy migration: {} entries of '{}' moved", moved, legacy);
    }
  }
  return response;
}

}  // namespace redrive
