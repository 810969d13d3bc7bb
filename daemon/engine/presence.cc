#include "daemon/engine/presence.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"

namespace redrive {

void Presence::Record(const SubscriptionSpec& spec, std::function<void()> done) {
  const std::string& instance = ctx_.options.instance_id;
  ctx_.ops.HashSet(std::string(kHandlersRegistryKey),
                   {{RegistryField(spec.channel, spec.handler_id),
                     MakeRegistered(spec, instance).SerializeAsString()},
                    {PresenceField(spec.channel, spec.handler_id, instance),
                     absl::StrCat(absl::ToUnixMillis(ctx_.now()))}},
                   guard_.Wrap([done = std::move(done), channel = spec.channel,
                                handler = spec.handler_id](absl::Status status) {
                     if (!status.ok()) {
                       LogWarn(
                           LogFields().Channel(channel).Handler(handler).Error(status.message()),
                           "handler registry update failed");
                     }
                     done();
                   }));
}

void Presence::MaybeBeat(absl::Time now, const std::vector<const SubscriptionSpec*>& specs) {
  if (now < next_beat_) return;
  next_beat_ = now + ctx_.options.presence_interval;
  if (specs.empty()) return;
  const std::string beat = absl::StrCat(absl::ToUnixMillis(now));
  std::vector<std::pair<std::string, std::string>> fields;
  fields.reserve(specs.size());
  for (const SubscriptionSpec* spec : specs) {
    fields.emplace_back(PresenceField(spec->channel, spec->handler_id, ctx_.options.instance_id),
                        beat);
  }
  ctx_.ops.HashSet(std::string(kHandlersRegistryKey), std::move(fields), [](absl::Status status) {
    if (!status.ok()) {
      LogDebug(LogFields().Error(status.message()), "presence heartbeat failed");
    }
  });
}

void Presence::Remove(const SubscriptionSpec& spec) {
  ctx_.ops.HashDelete(std::string(kHandlersRegistryKey),
                      PresenceField(spec.channel, spec.handler_id, ctx_.options.instance_id),
                      nullptr);
}

}  // namespace redrive
