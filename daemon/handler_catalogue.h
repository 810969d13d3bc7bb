// The handler catalogue (R-E4, R-E5): which handlers exist and what state
// each is in, as the Admin service reports it (v1::HandlerInfo).
//
// A handler is known when a registration (on any daemon) recorded it in
// {redrive}:handlers, or when its DLQ or retry stream exists, or when its
// group exists on the channel (EggAI-made handlers). Its description joins
// what Redis holds (groups, lag, pending entries, due retries, the DLQ, the
// pause flag) with what this daemon serves (`LocalHandler`: its consumer
// name, its connected streams). Pausing records the flag every daemon
// polls; the caller tells its own engine. Retiring a handler is
// handler_deletion.h.
//
// Thread-safe: functions over a caller's connection.
#ifndef REDRIVE_DAEMON_HANDLER_CATALOGUE_H_
#define REDRIVE_DAEMON_HANDLER_CATALOGUE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/metrics.h"
#include "daemon/redis/commander.h"
#include "redrive/v1/admin.pb.h"
#include "redrive/v1/broker.pb.h"  // v1::Registered

namespace redrive {

// A handler this daemon serves (DeliveryEngine::Snapshot).
struct LocalHandler {
  std::string channel;
  std::string handler_id;
  std::string consumer;   // this daemon's consumer in the handler's groups
  uint32_t sessions = 0;  // connected Subscribe streams
  uint32_t in_flight = 0;  // deliveries its streams hold
};

struct CatalogueOptions {
  KeyStyle key_style = KeyStyle::kEggAI;
  std::string instance_id;  // names this daemon's consumer when not local
  // This daemon's counters (HandlerInfo.counters); null = none reported.
  const Metrics* metrics = nullptr;
};

// OK when the handler is known (see above), NOT_FOUND naming it otherwise.
absl::Status CheckKnown(RedisCommander& redis, const v1::HandlerRef& handler, KeyStyle style);

// The handler's description. `registered` (its registration, when there is
// one) gives the names and policies; without it the names are derived from
// the key style.
absl::StatusOr<v1::HandlerInfo> DescribeHandler(RedisCommander& redis,
                                                const v1::HandlerRef& handler,
                                                const v1::Registered* registered,
                                                const std::vector<LocalHandler>& local,
                                                const CatalogueOptions& options);

// The same, with the registration read from {redrive}:handlers.
absl::StatusOr<v1::HandlerInfo> DescribeHandler(RedisCommander& redis,
                                                const v1::HandlerRef& handler,
                                                const std::vector<LocalHandler>& local,
                                                const CatalogueOptions& options);

// Every registered handler (of `channel` only, unless empty), ordered by
// channel and handler id, described.
absl::StatusOr<std::vector<v1::HandlerInfo>> ListHandlers(RedisCommander& redis,
                                                          const std::string& channel,
                                                          const std::vector<LocalHandler>& local,
                                                          const CatalogueOptions& options);

// Records (or clears) the handler's pause flag at `now`. NOT_FOUND for an
// unknown handler.
absl::Status RecordPaused(RedisCommander& redis, const v1::HandlerRef& handler, bool paused,
                          absl::Time now, KeyStyle style);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_HANDLER_CATALOGUE_H_
