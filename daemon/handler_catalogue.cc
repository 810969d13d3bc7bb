#include "daemon/handler_catalogue.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/redis/scripts.h"
#include "daemon/redis/script_results.h"

namespace redrive {
namespace {

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
    absl::StatusOr<RedisReply> r =
        redis.Command({"HSCAN", kHandlersRegistryKey, cursor, "MATCH", match, "COUNT", "500"});
    if (!r.ok()) return r.status();
    if (r->is_error()) return r->ErrorStatus();
    if (!r->is_array() || r->elements.size() != 2 || !r->elements[1].is_array()) {
      return absl::InternalError("unexpected HSCAN reply");
    }
    cursor = r->elements[0].str;
    const std::vector<RedisReply>& kv = r->elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) {
      std::optional<std::string> instance =
          PresenceInstance(kv[i].str, h.channel(), h.handler_id());
      if (!instance.has_value()) continue;
      out.fields.push_back(kv[i].str);
      if (*instance == options.instance_id) continue;
      int64_t beat = 0;
      if (!absl::SimpleAtoi(kv[i + 1].str, &beat)) continue;
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
  const std::string field = RegistryField(h.channel(), h.handler_id());
  std::vector<RedisArgv> commands = {{"HDEL", kHandlersRegistryKey, field},
                                     {"HDEL", kPausedHandlersKey, field}};
  if (!presence->fields.empty()) {
    RedisArgv stale = {"HDEL", kHandlersRegistryKey};
    for (const std::string& f : presence->fields) stale.push_back(f);
    commands.push_back(std::move(stale));
  }
  absl::StatusOr<std::vector<RedisReply>> done = redis.Pipeline(commands);
  if (!done.ok()) return done.status();
  for (const RedisReply& reply : *done) {
    if (reply.is_error()) return reply.ErrorStatus();
  }
  out.set_unregistered((*done)[0].integer == 1);
  out.set_unpaused((*done)[1].integer == 1);
  return out;
}

}  // namespace redrive
