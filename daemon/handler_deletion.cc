#include "daemon/handler_deletion.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/redis/handler_store.h"
#include "daemon/redis/keyspace.h"
#include "daemon/redis/script_results.h"
#include "daemon/redis/scripts.h"

namespace redrive {
namespace {

// Fields per HSCAN step of the presence scan.
constexpr size_t kPresenceScanCount = 500;

std::string Describe(const v1::HandlerRef& h) {
  return absl::StrCat("handler '", h.handler_id(), "' on channel '", h.channel(), "'");
}

// The instance ids of other daemons whose heartbeat for the handler is
// fresh, and every presence field of the handler (fresh or stale).
struct Presence {
  std::vector<std::string> live;
  std::vector<std::string> fields;
};

absl::StatusOr<Presence> ReadPresence(RedisCommander& redis, const v1::HandlerRef& h,
                                      const DeleteHandlerOptions& options) {
  Presence out;
  // Channel and handler grammars have no glob characters.
  const std::string match = absl::StrCat(h.channel(), " ", h.handler_id(), " *");
  std::string cursor = "0";
  const int64_t now_ms = absl::ToUnixMillis(options.now);
  const int64_t ttl_ms = absl::ToInt64Milliseconds(kPresenceTtl);
  do {
    absl::StatusOr<HashScanPage> page =
        HScan(redis, kHandlersRegistryKey, cursor, match, kPresenceScanCount);
    if (!page.ok()) return page.status();
    cursor = std::move(page->cursor);
    for (const auto& [field, value] : page->fields) {
      std::optional<std::string> instance = PresenceInstance(field, h.channel(), h.handler_id());
      if (!instance.has_value()) continue;
      out.fields.push_back(field);
      if (*instance == options.instance_id) continue;
      int64_t beat = 0;
      if (!absl::SimpleAtoi(value, &beat)) continue;
      if (now_ms - beat < ttl_ms) out.live.push_back(*std::move(instance));
    }
  } while (cursor != "0");
  return out;
}

}  // namespace

absl::StatusOr<v1::DeleteHandlerResponse> DeleteHandler(RedisCommander& redis,
                                                        const v1::DeleteHandlerRequest& request,
                                                        const DeleteHandlerOptions& options) {
  const v1::HandlerRef& h = request.handler();
  if (options.connected_here) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(h), " has Subscribe streams connected to this daemon (",
                     options.instance_id, "); stop them before deleting it"));
  }
  absl::StatusOr<Presence> presence = ReadPresence(redis, h, options);
  if (!presence.ok()) return presence.status();
  if (!presence->live.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(h), " has Subscribe streams connected to daemon(s) ",
                     absl::StrJoin(presence->live, ", "), "; stop them before deleting it"));
  }

  const HandlerKeys keys = MakeHandlerKeys(h.channel(), h.handler_id(), options.key_style);
  absl::StatusOr<RedisReply> r =
      RunScript(redis, DeleteHandlerScript(),
                {keys.stream, keys.retry_stream, keys.due_zset, keys.dlq_stream},
                {keys.group, keys.retry_group, request.force() ? "1" : "0",
                 absl::StrCat(request.expected_retry_entries()),
                 absl::StrCat(request.expected_dead_letters())});
  if (!r.ok()) return r.status();
  absl::StatusOr<DeleteHandlerResult> deleted = DecodeDeleteHandler(*r);
  if (!deleted.ok()) return deleted.status();
  const int64_t entries = deleted->retry_entries;
  const int64_t dead = deleted->dead_letters;
  if (deleted->kind == DeleteHandlerResult::Kind::kEntriesRemain) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(h), " holds ", entries, " retry entries and ", dead,
                     " dead letters; nothing was deleted (to discard them: force with "
                     "expected_retry_entries=",
                     entries, " expected_dead_letters=", dead, ")"));
  }
  if (deleted->kind == DeleteHandlerResult::Kind::kCountMismatch) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(h), " holds ", entries, " retry entries and ", dead,
                     " dead letters, not ", request.expected_retry_entries(), " and ",
                     request.expected_dead_letters(), "; nothing was deleted"));
  }

  v1::DeleteHandlerResponse out;
  *out.mutable_handler() = h;
  out.set_retry_entries(static_cast<uint64_t>(entries));
  out.set_dead_letters(static_cast<uint64_t>(dead));
  if (deleted->group_destroyed) {
    out.add_destroyed_groups(absl::StrCat(keys.stream, " ", keys.group));
  }
  if (deleted->retry_group_existed) {
    out.add_destroyed_groups(absl::StrCat(keys.retry_stream, " ", keys.retry_group));
  }
  for (const std::string& key : deleted->deleted_keys) out.add_deleted_keys(key);

  // The {redrive} keys: registration, presence fields, pause flag.
  absl::StatusOr<ForgottenHandler> forgotten =
      ForgetHandler(redis, RegistryField(h.channel(), h.handler_id()), presence->fields);
  if (!forgotten.ok()) return forgotten.status();
  out.set_unregistered(forgotten->unregistered);
  out.set_unpaused(forgotten->unpaused);
  return out;
}

}  // namespace redrive
