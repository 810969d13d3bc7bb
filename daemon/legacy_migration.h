// Migration of EggAI's pre-#226 shared retry keys (R-E6).
//
// Before EggAI PR #226 every handler of a channel shared one retry stream
// `{channel}.retry` (each handler reading it through its own group
// `{handler_id}-retry`) and one DLQ `{channel}.dlq`. Migration moves what
// each handler still owes on the shared stream into its own retry stream
// `{channel}.{handler_id}.retry` (group `{handler_id}-retry`, created at the
// stream's end when missing):
//   - entries pending in a handler's legacy group are that handler's
//     (XADD to its retry stream + XACK in the legacy group, one script);
//   - entries after the group's last-delivered id were not read by it yet
//     and go to that handler too (XADD + XGROUP SETID past the entry, one
//     script per entry and handler), as the shared stream would have
//     delivered them to every handler's group.
// Each step checks the legacy group still is where the scan found it, so a
// crashed or repeated migration neither loses nor duplicates. Entries keep
// their fields (EggAI's `_retry_count` travels inside `__data__`).
// The legacy DLQ cannot be attributed to a handler: its entries are counted
// and left in place. The legacy keys are never deleted.
//
// Thread-compatible: runs on the caller's connection.
#ifndef REDRIVE_DAEMON_LEGACY_MIGRATION_H_
#define REDRIVE_DAEMON_LEGACY_MIGRATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "daemon/keys.h"
#include "daemon/redis/connection.h"
#include "redrive/v1/admin.pb.h"

namespace redrive {

// `channel` must be valid. A dry run counts what would move and changes
// nothing.
absl::StatusOr<v1::MigrateLegacyKeysResponse> MigrateLegacyKeys(RedisCommander& redis,
                                                                const std::string& channel,
                                                                KeyStyle style, bool dry_run);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_LEGACY_MIGRATION_H_
