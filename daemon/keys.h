// Redis key naming (R-C1, R-C2) and the name grammars for channels and
// handler ids.
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_KEYS_H_
#define REDRIVE_DAEMON_KEYS_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace redrive {

// How handler keys are spelled.
enum class KeyStyle {
  // EggAI 0.3.x names: stream = channel, `{channel}.{handler}.retry`, ...
  kEggAI,
  // Redis-Cluster-safe: every key of a channel carries the hash tag
  // `{channel}`, so a handler's keys (and its channel's stream) share a slot.
  kCluster,
};

inline constexpr size_t kMaxNameLength = 200;

// channel: [A-Za-z0-9._:/-]{1,200}, not starting with '.', ':' or '/', and
// not ending in ".retry" or ".dlq" (those are the names of retry and
// dead-letter streams). INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateChannel(absl::string_view channel, absl::string_view field = "channel");

// handler_id: [A-Za-z0-9._:-]{1,200}. INVALID_ARGUMENT naming `field`.
absl::Status ValidateHandlerId(absl::string_view handler_id,
                               absl::string_view field = "handler_id");

// Redis stream entry id: "<ms>-<seq>" or "<ms>" with decimal u64 parts.
bool IsValidEntryId(absl::string_view id);

struct HandlerKeys {
  std::string stream;        // main stream (the channel)
  std::string group;         // handler id
  std::string retry_stream;  // {stream}.{handler}.retry
  std::string retry_group;   // {handler}-retry
  std::string dlq_stream;    // {stream}.{handler}.dlq
  // Failed attempts waiting for their retry: member = the entry, score =
  // due time (Unix ms). {stream}.{handler}.retry.due
  std::string due_zset;
};

// The stream key a channel is stored under.
std::string StreamKey(absl::string_view channel, KeyStyle style);

// Every key of one (channel, handler id). Inputs must be valid.
HandlerKeys MakeHandlerKeys(absl::string_view channel, absl::string_view handler_id,
                            KeyStyle style);

// The consumer name this daemon instance uses in a handler's groups:
// `{handler_id}-{instance_id}`, or `{handler_id}-{label}-{instance_id}` with a
// registration's consumer label (EggAI uses `{handler_id}-{host}-{pid}`).
// Unique per daemon instance as long as instance ids are; a label
// ([A-Za-z0-9._-]) never contains ':', so no name is `{handler_id}:scheduled`.
std::string ConsumerName(absl::string_view handler_id, absl::string_view instance_id,
                         absl::string_view label = "");

// The consumer holding a handler's entries while they wait for their retry
// (`{handler_id}:scheduled`; no daemon instance's consumer can have it):
// sweeps leave its entries alone.
std::string ScheduledConsumerName(absl::string_view handler_id);

// Pre-#226 EggAI shared keys, for migration (R-E6).
std::string LegacyRetryStream(absl::string_view channel, KeyStyle style);
std::string LegacyDlqStream(absl::string_view channel, KeyStyle style);

// Daemon-wide administration keys. They all carry the hash tag `{redrive}`:
// no channel's keys can be spelled so (channel names have no braces), and in
// Redis Cluster they share one slot.
//   {redrive}:handlers  hash: RegistryField(channel, handler) → serialized
//                       v1::Registered of the latest registration; and, while
//                       a daemon has Subscribe streams of the handler,
//                       PresenceField(channel, handler, instance) → that
//                       daemon's last heartbeat (decimal Unix ms, its clock),
//                       renewed every kPresenceInterval and removed when its
//                       last stream of the handler ends
//   {redrive}:paused    hash: RegistryField(channel, handler) → Unix ms paused
//   {redrive}:jobs      zset: redrive job id → creation time (Unix ms)
//   {redrive}:job:{id}  hash: the job's spec, state, owner and progress
//   {redrive}:job:{id}:ids  list: the dead-letter ids the job moves, in order
inline constexpr absl::string_view kHandlersRegistryKey = "{redrive}:handlers";
inline constexpr absl::string_view kPausedHandlersKey = "{redrive}:paused";
inline constexpr absl::string_view kRedriveJobsKey = "{redrive}:jobs";
std::string RegistryField(absl::string_view channel, absl::string_view handler_id);
std::string RedriveJobKey(absl::string_view job_id);

// Presence (see {redrive}:handlers above): a daemon renews its heartbeats
// every kPresenceInterval; a heartbeat younger than kPresenceTtl means the
// handler has a stream connected to that daemon (the margin covers missed
// beats and clock skew between daemons).
inline constexpr absl::Duration kPresenceInterval = absl::Seconds(2);
inline constexpr absl::Duration kPresenceTtl = absl::Seconds(10);
// "{channel} {handler_id} {instance_id}" (instance ids have no spaces).
std::string PresenceField(absl::string_view channel, absl::string_view handler_id,
                          absl::string_view instance_id);
// The parts of a PresenceField for this (channel, handler): the instance id,
// or nullopt when `field` is not a presence field of that handler.
std::optional<std::string> PresenceInstance(absl::string_view field, absl::string_view channel,
                                            absl::string_view handler_id);
// True when `field` of {redrive}:handlers is a presence field (two spaces),
// not a registration.
bool IsPresenceField(absl::string_view field);
std::string RedriveJobIdsKey(absl::string_view job_id);
// The record of a redrive job's last step beside its dead-letter stream
// ("<dlq>:redrive:<job_id>": the DLQ's hash tag, hence its cluster slot),
// used in redrive_step's step-record form (Redis Cluster).
std::string RedriveStepRecordKey(absl::string_view dlq, absl::string_view job_id);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_KEYS_H_
