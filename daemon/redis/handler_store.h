// The Redis reads and writes of one handler's state that the admin side does
// in one round trip each: its traces (is it known anywhere?), its state (a
// HandlerInfo's numbers), and forgetting it (registry, presence, pause
// flag). Keys are named by keys.h; the meaning of the numbers is the
// catalogue's (handler_catalogue.h).
//
// Thread-safe: free functions over the caller's connection.
#ifndef REDRIVE_DAEMON_REDIS_HANDLER_STORE_H_
#define REDRIVE_DAEMON_REDIS_HANDLER_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/redis/commander.h"
#include "daemon/redis/streams.h"

namespace redrive {

// What Redis holds of a handler, whoever made it.
struct HandlerTraces {
  bool registered = false;  // its {redrive}:handlers field exists
  int64_t own_keys = 0;     // how many of its DLQ and retry stream exist
  // The groups of its channel stream (none when the key is missing or not a
  // stream).
  std::vector<StreamGroupInfo> channel_groups;
};
// `registry_field` is RegistryField(channel, handler id).
absl::StatusOr<HandlerTraces> ReadHandlerTraces(RedisCommander& redis, const HandlerKeys& keys,
                                                const std::string& registry_field);

// A handler's numbers, read in one pipeline. A part Redis refuses (a key of
// another type, a missing group) reads as absent or zero; only a transport
// failure is an error.
struct HandlerRedisState {
  std::optional<StreamGroupInfo> group;        // on the channel stream
  std::optional<StreamGroupInfo> retry_group;  // on the retry stream
  std::vector<StreamConsumerInfo> consumers;   // of `group`
  int64_t due = 0;                             // members of the due zset
  int64_t dead_letters = 0;                    // DLQ length
  std::optional<std::string> oldest_dead_letter_id;
  bool paused = false;                  // its {redrive}:paused field exists
  std::optional<absl::Time> redis_now;  // TIME
};
absl::StatusOr<HandlerRedisState> ReadHandlerState(RedisCommander& redis, const HandlerKeys& keys,
                                                   const std::string& registry_field);

// Deletes the handler's registration, pause flag and the presence fields
// `presence_fields` of {redrive}:handlers, in one round trip.
struct ForgottenHandler {
  bool unregistered = false;  // the registration existed
  bool unpaused = false;      // the pause flag existed
};
absl::StatusOr<ForgottenHandler> ForgetHandler(RedisCommander& redis,
                                               const std::string& registry_field,
                                               const std::vector<std::string>& presence_fields);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_HANDLER_STORE_H_
