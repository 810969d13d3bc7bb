#include "daemon/handler_catalogue.h"

#include <algorithm>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "daemon/dead_letter_codec.h"
#include "daemon/redis/handler_store.h"
#include "daemon/redis/keyspace.h"

namespace redrive {
namespace {

const LocalHandler* FindLocal(const std::vector<LocalHandler>& local,
                              const v1::HandlerRef& handler) {
  const LocalHandler* found = nullptr;
  for (const LocalHandler& l : local) {
    if (l.channel == handler.channel() && l.handler_id == handler.handler_id()) found = &l;
  }
  return found;
}

void FillNames(const HandlerKeys& keys, const v1::Registered* registered, v1::HandlerInfo& info) {
  if (registered != nullptr) {
    *info.mutable_names() = registered->names();
    *info.mutable_retry_policy() = registered->retry_policy();
    *info.mutable_dead_letter_policy() = registered->dead_letter_policy();
    return;
  }
  v1::RedisNames* n = info.mutable_names();
  n->set_stream(keys.stream);
  n->set_group(keys.group);
  n->set_retry_stream(keys.retry_stream);
  n->set_retry_group(keys.retry_group);
  n->set_dlq_stream(keys.dlq_stream);
}

// The numbers of `state` into `info`; `own` is this daemon's consumer.
void FillState(const HandlerRedisState& state, const std::string& own, v1::HandlerInfo& info) {
  const int64_t main_pending = state.group.has_value() ? state.group->pending : 0;
  const int64_t retry_pending = state.retry_group.has_value() ? state.retry_group->pending : 0;
  info.set_pending(static_cast<uint64_t>(std::max<int64_t>(0, main_pending) +
                                         std::max<int64_t>(0, retry_pending)));
  info.set_lag(state.group.has_value() ? state.group->lag : -1);
  const int64_t retry_lag =
      state.retry_group.has_value() ? std::max<int64_t>(0, state.retry_group->lag) : 0;
  info.set_retry_depth(static_cast<uint64_t>(state.due + retry_lag));
  info.set_dlq_depth(static_cast<uint64_t>(std::max<int64_t>(0, state.dead_letters)));
  if (state.oldest_dead_letter_id.has_value()) {
    const int64_t now_ms = absl::ToUnixMillis(state.redis_now.value_or(absl::Now()));
    const int64_t oldest = EntryIdMillis(*state.oldest_dead_letter_id);
    info.set_oldest_dead_letter_age_ms(std::max<int64_t>(0, now_ms - oldest));
  }
  info.set_paused(state.paused);
  for (const StreamConsumerInfo& c : state.consumers) {
    v1::ConsumerInfo* ci = info.add_consumers();
    ci->set_name(c.name);
    ci->set_pending(static_cast<uint64_t>(std::max<int64_t>(0, c.pending)));
    ci->set_idle_ms(c.idle_ms);
    ci->set_local(c.name == own);
  }
}

}  // namespace

absl::Status CheckKnown(RedisCommander& redis, const v1::HandlerRef& handler, KeyStyle style) {
  const HandlerKeys keys = MakeHandlerKeys(handler.channel(), handler.handler_id(), style);
  absl::StatusOr<HandlerTraces> traces =
      ReadHandlerTraces(redis, keys, RegistryField(handler.channel(), handler.handler_id()));
  if (!traces.ok()) return traces.status();
  if (traces->registered || traces->own_keys > 0 ||
      FindGroup(traces->channel_groups, keys.group).has_value()) {
    return absl::OkStatus();
  }
  return absl::NotFoundError(
      absl::StrCat("no handler '", handler.handler_id(), "' on channel '", handler.channel(), "'"));
}

absl::StatusOr<v1::HandlerInfo> DescribeHandler(RedisCommander& redis,
                                                const v1::HandlerRef& handler,
                                                const v1::Registered* registered,
                                                const std::vector<LocalHandler>& local,
                                                const CatalogueOptions& options) {
  const HandlerKeys keys =
      MakeHandlerKeys(handler.channel(), handler.handler_id(), options.key_style);
  absl::StatusOr<HandlerRedisState> state =
      ReadHandlerState(redis, keys, RegistryField(handler.channel(), handler.handler_id()));
  if (!state.ok()) return state.status();
  v1::HandlerInfo info;
  *info.mutable_handler() = handler;
  FillNames(keys, registered, info);
  // This daemon's consumer: the one its registered streams share (named with
  // their consumer_label), else the unlabelled name.
  const LocalHandler* here = FindLocal(local, handler);
  const std::string own =
      here != nullptr ? here->consumer : ConsumerName(handler.handler_id(), options.instance_id);
  info.mutable_names()->set_consumer(own);
  FillState(*state, own, info);
  if (here != nullptr) {
    info.set_connected_streams(here->sessions);
    info.set_in_flight(here->in_flight);
  }
  if (options.metrics != nullptr) {
    if (const HandlerMetrics* m = options.metrics->Find(handler.channel(), handler.handler_id())) {
      v1::HandlerCounters& c = *info.mutable_counters();
      c.set_deliveries(m->deliveries.value());
      c.set_acks(m->acks.value());
      c.set_nacks(m->nacks.value());
      c.set_terminates(m->terminates.value());
      c.set_extends(m->extends.value());
      c.set_lease_expiries(m->lease_expiries.value());
      c.set_retries_scheduled(m->retries_scheduled.value());
      c.set_dead_letters(m->dead_letters_total());
    }
  }
  return info;
}

absl::StatusOr<v1::HandlerInfo> DescribeHandler(RedisCommander& redis,
                                                const v1::HandlerRef& handler,
                                                const std::vector<LocalHandler>& local,
                                                const CatalogueOptions& options) {
  absl::StatusOr<std::optional<std::string>> reg =
      HGet(redis, kHandlersRegistryKey, RegistryField(handler.channel(), handler.handler_id()));
  v1::Registered registered;
  const bool have = reg.ok() && reg->has_value() && registered.ParseFromString(**reg);
  return DescribeHandler(redis, handler, have ? &registered : nullptr, local, options);
}

absl::StatusOr<std::vector<v1::HandlerInfo>> ListHandlers(RedisCommander& redis,
                                                          const std::string& channel,
                                                          const std::vector<LocalHandler>& local,
                                                          const CatalogueOptions& options) {
  absl::StatusOr<HashFields> all = HGetAll(redis, kHandlersRegistryKey);
  if (!all.ok()) return all.status();
  std::vector<v1::Registered> found;
  for (const auto& [field, value] : *all) {
    if (IsPresenceField(field)) continue;  // a heartbeat, not a handler
    v1::Registered reg;
    if (!reg.ParseFromString(value)) continue;
    if (!channel.empty() && reg.channel() != channel) continue;
    found.push_back(std::move(reg));
  }
  std::sort(found.begin(), found.end(), [](const v1::Registered& a, const v1::Registered& b) {
    return std::tie(a.channel(), a.handler_id()) < std::tie(b.channel(), b.handler_id());
  });
  std::vector<v1::HandlerInfo> out;
  out.reserve(found.size());
  for (const v1::Registered& reg : found) {
    v1::HandlerRef ref;
    ref.set_channel(reg.channel());
    ref.set_handler_id(reg.handler_id());
    absl::StatusOr<v1::HandlerInfo> info = DescribeHandler(redis, ref, &reg, local, options);
    if (!info.ok()) return info.status();
    out.push_back(*std::move(info));
  }
  return out;
}

absl::Status RecordPaused(RedisCommander& redis, const v1::HandlerRef& handler, bool paused,
                          absl::Time now, KeyStyle style) {
  if (absl::Status s = CheckKnown(redis, handler, style); !s.ok()) return s;
  const std::string field = RegistryField(handler.channel(), handler.handler_id());
  if (paused) return HSet(redis, kPausedHandlersKey, field, absl::StrCat(absl::ToUnixMillis(now)));
  return HDel(redis, kPausedHandlersKey, {field}).status();
}

}  // namespace redrive
