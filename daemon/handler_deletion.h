// Retiring a handler (Admin.DeleteHandler, issue 10 item 11): the checks
// that keep a live or busy handler from being deleted, and the deletion of
// every per-handler key.
//
// A handler is "connected" when a Subscribe stream of it is attached to (or
// registering on) this daemon — the DeliveryEngine knows — or when another
// daemon's presence heartbeat for it in {redrive}:handlers (keys.h) is
// younger than kPresenceTtl. Consumer idle times cannot tell: Redis 7.0
// refreshes a consumer only when it is handed entries, so a quiet live
// handler looks exactly like a dead one there.
//
// Its "retry entries" are its unsettled entries: pending in its main or
// retry group (deliveries never settled, failed attempts waiting for their
// due time under `{handler}:scheduled`) plus retry-stream entries the retry
// group has not read. Its "dead letters" are the DLQ's length.
//
// The deletion is one Lua script over the handler's keys (one slot with the
// cluster key template): it counts, compares with the request, and only then
// destroys the handler's group on the channel stream (the stream stays: other
// handlers read it) and deletes the retry stream (with the retry group), the
// due set and the DLQ. The {redrive}:handlers entry, the presence fields and
// the {redrive}:paused flag (another slot) are removed right after; a daemon
// dying in between leaves only the registry entry, and deleting again
// finishes the job. A registration that comes after the delete registers the
// handler anew. One window is left open: a first registration on a daemon
// writes its heartbeat right after creating the group, so a delete whose
// presence check runs between the two (or between that check and the
// script) destroys the new group; that daemon then recreates it at its
// first read (as after a FLUSHALL, R-D8) and records the registration again
// at its next one.
//
// Thread-safe: functions over a caller's connection.
#ifndef REDRIVE_DAEMON_HANDLER_DELETION_H_
#define REDRIVE_DAEMON_HANDLER_DELETION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/redis/commander.h"
#include "redrive/v1/admin.pb.h"

namespace redrive {

struct DeleteHandlerOptions {
  KeyStyle key_style = KeyStyle::kEggAI;
  // This daemon's instance id: its own presence fields are ignored (the
  // engine's answer, `connected_here`, replaces them).
  std::string instance_id;
  // True when this daemon has a stream of the handler (attached or
  // registering).
  bool connected_here = false;
  // This daemon's clock, to age other daemons' heartbeats.
  absl::Time now;
};

// Deletes the handler named by `request` (already validated, and known).
// FAILED_PRECONDITION, nothing deleted: connected here or elsewhere (the
// message names the daemons); entries remain and `force` is not set, or
// `force` is set and the expected counts are not the current ones (the
// message gives the current counts).
absl::StatusOr<v1::DeleteHandlerResponse> DeleteHandler(RedisCommander& redis,
                                                        const v1::DeleteHandlerRequest& request,
                                                        const DeleteHandlerOptions& options);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_HANDLER_DELETION_H_
