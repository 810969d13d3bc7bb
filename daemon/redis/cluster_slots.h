// Redis Cluster key slots and the slot map: which master serves a key.
//
//   KeySlot(key)       CRC16-XMODEM(key or its {hash tag}) mod 16384, the
//                      function every cluster node uses
//   ClusterSlotMap     slot -> master (and its replicas), built from a
//                      CLUSTER SLOTS reply and patched by MOVED redirects
//   ParseRedirect      the slot and target of a MOVED / ASK error reply
//   ClassifyClusterReply  what a cluster client does with a node's reply
//
// Thread-compatible: pure functions and a value type.
#ifndef REDRIVE_DAEMON_REDIS_CLUSTER_SLOTS_H_
#define REDRIVE_DAEMON_REDIS_CLUSTER_SLOTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/redis/reply.h"

namespace redrive {

inline constexpr int kClusterSlots = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection),
// as in the Redis Cluster specification. Crc16Xmodem("123456789") == 0x31C3.
uint16_t Crc16Xmodem(absl::string_view data);

// The part of `key` that is hashed: the text between the first '{' and the
// first '}' after it when that text is non-empty, else the whole key.
absl::string_view HashTagOf(absl::string_view key);

// The cluster slot (0..16383) of `key`.
int KeySlot(absl::string_view key);

// One cluster node's client address (the "ip" and port CLUSTER SLOTS
// announces; the node id when known).
struct ClusterNode {
  std::string host;
  int port = 0;
  std::string id;  // 40 hex characters; empty when learnt from a redirect

  // "host:port" (IPv6 hosts in brackets): the key nodes are known by.
  std::string HostPort() const;
  bool SameAddress(const ClusterNode& other) const {
    return host == other.host && port == other.port;
  }
};

// "host:port" or "[v6]:port" → node; INVALID_ARGUMENT with the reason.
absl::StatusOr<ClusterNode> ParseHostPort(absl::string_view text);

// The slot owners of a cluster. Slots nobody serves have no master.
class ClusterSlotMap {
 public:
  // An empty map: every slot unassigned.
  ClusterSlotMap();

  // From a CLUSTER SLOTS reply: [[start, end, [ip, port, id, ...],
  // [replica...]...], ...]. An empty ip means "the node that replied"
  // (`replied_host`). INTERNAL with the reason for a malformed reply (not an
  // array, a range outside 0..16383 or start > end, a node without ip and
  // port, a port outside 1..65535, a slot listed twice).
  static absl::StatusOr<ClusterSlotMap> FromClusterSlots(const RedisReply& reply,
                                                         absl::string_view replied_host);

  // The master serving `slot` (0..16383), or nullptr.
  const ClusterNode* MasterOf(int slot) const;
  // The replicas CLUSTER SLOTS listed for `slot` (empty when unknown).
  const std::vector<ClusterNode>& ReplicasOf(int slot) const;
  // Makes `master` the owner of `slot` (a MOVED redirect). Replicas of the
  // slot are forgotten until the next full refresh.
  void SetMaster(int slot, const ClusterNode& master);

  // The distinct masters serving at least one slot, sorted by HostPort().
  std::vector<ClusterNode> Masters() const;
  // Every node the map knows (masters and replicas), sorted by HostPort().
  std::vector<ClusterNode> Nodes() const;
  // Slots without a master.
  int UnassignedSlots() const;

 private:
  struct Shard {
    ClusterNode master;
    std::vector<ClusterNode> replicas;
  };
  // The shard of a master at `node`'s address, added if new.
  int16_t ShardFor(const ClusterNode& node);
  // Per shard: whether it serves a slot (MOVED can empty a shard).
  std::vector<bool> ServingShards() const;

  std::vector<Shard> shards_;
  std::vector<int16_t> owner_;  // slot -> index into shards_, -1 = none
};

// A MOVED or ASK error reply: "MOVED 3999 127.0.0.1:6381".
struct ClusterRedirect {
  enum class Kind { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  int slot = 0;
  ClusterNode target;
};

// The redirect an error reply's text carries; nullopt when the text is not a
// MOVED/ASK reply. A MOVED/ASK reply that does not parse (bad slot, bad
// address) is INTERNAL with the text.
absl::StatusOr<std::optional<ClusterRedirect>> ParseRedirect(absl::string_view error_text);

// What a cluster client does with a node's reply to a command. A node that
// answers MOVED, ASK, TRYAGAIN or CLUSTERDOWN did not run the command, so
// every kind but kFinal may be re-sent, whatever the command.
struct ClusterReplyAction {
  enum class Kind {
    kFinal,        // the answer (a value, or any other error reply)
    kMoved,        // MOVED: `redirect`'s target owns the slot now
    kAsk,          // ASK: send ASKING + the command to `redirect`'s target
    kTryAgain,     // TRYAGAIN: a multi-key command during a migration
    kClusterDown,  // CLUSTERDOWN: no quorum or a slot without a master
  };
  Kind kind = Kind::kFinal;
  ClusterRedirect redirect;  // kMoved and kAsk only
};

// The action for `reply`; INTERNAL (ParseRedirect's) for a MOVED/ASK reply
// that does not parse.
absl::StatusOr<ClusterReplyAction> ClassifyClusterReply(const RedisReply& reply);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_CLUSTER_SLOTS_H_
