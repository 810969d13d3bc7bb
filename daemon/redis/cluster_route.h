// Where a command goes in a Redis Cluster: the keys of each command the
// daemon sends, and the one slot they must share.
//
// Rules (argv[0] and subcommands case-insensitive):
//   first argument is the key   XADD XACK XCLAIM XAUTOCLAIM XPENDING XRANGE
//                               XREVRANGE XDEL XLEN XTRIM, the Z*, H*, L*/R*
//                               list and S* set commands the daemon uses,
//                               GET SET INCR EXPIRE PEXPIRE TTL PTTL TYPE
//   every argument is a key     DEL UNLINK EXISTS TOUCH MGET
//   subcommand, then the key    XINFO STREAM|GROUPS|CONSUMERS <key>,
//                               XGROUP CREATE|DESTROY|CREATECONSUMER|
//                               DELCONSUMER|SETID <key>
//   after STREAMS, half         XREAD, XREADGROUP (COUNT n, BLOCK ms,
//                               GROUP g c, NOACK before STREAMS)
//   numkeys, then the keys      EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO
//                               (numkeys 0: any master)
//   no key: any master          PING ECHO TIME INFO DBSIZE (a node's own
//                               answer: use the cluster client's ForNode
//                               for a particular node)
//   no key: every master        SCRIPT LOAD|EXISTS|FLUSH
//   per node, refused here      SCAN, CLIENT, KEYS, MULTI, EXEC, WATCH,
//                               DISCARD, SUBSCRIBE... (connection or node
//                               state: send them on the cluster client's
//                               ForNode; ClusterConnection::Pipeline takes
//                               whole MULTI ... EXEC blocks)
//   anything else               refused: a command without a rule here is
//                               never guessed at.
//
// Keys in different slots are refused with FAILED_PRECONDITION naming two
// of them and their slots (Redis would answer CROSSSLOT); a malformed
// command (missing key, bad numkeys, odd STREAMS list) is INVALID_ARGUMENT.
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_REDIS_CLUSTER_ROUTE_H_
#define REDRIVE_DAEMON_REDIS_CLUSTER_ROUTE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/redis/commander.h"

namespace redrive {

struct ClusterRoute {
  enum class Kind {
    kSlot,        // the master serving `slot`
    kAnyMaster,   // no key: any master will do
    kAllMasters,  // no key: every master (SCRIPT LOAD)
  };
  Kind kind = Kind::kSlot;
  int slot = -1;  // kSlot only
};

// The keys of `argv` by the rules above (empty for keyless commands);
// INVALID_ARGUMENT for a malformed or unknown command, or a per-node one.
absl::StatusOr<std::vector<absl::string_view>> CommandKeys(const RedisArgv& argv);

// Where `argv` goes: CommandKeys, then one slot for all keys.
absl::StatusOr<ClusterRoute> RouteCommand(const RedisArgv& argv);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_CLUSTER_ROUTE_H_
