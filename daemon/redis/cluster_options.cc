#include "daemon/redis/cluster_options.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/redis/errors.h"

namespace redrive {

absl::Status ValidateClusterOptions(const ClusterOptions& options) {
  if (options.seeds.empty()) {
    return absl::InvalidArgumentError("redis cluster: at least one seed address is needed");
  }
  for (const RedisAddress& seed : options.seeds) {
    if (seed.is_unix()) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis cluster: seed ", seed.Redacted(),
                       " is a unix socket; cluster nodes are host:port"));
    }
    if (seed.is_sentinel()) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis cluster: seed ", seed.Redacted(),
                       " is a Sentinel address; a cluster has no Sentinel-managed primary"));
    }
    if (seed.db != 0) {
      return absl::InvalidArgumentError(absl::StrCat("redis cluster: seed ", seed.Redacted(),
                                                     " selects db ", seed.db,
                                                     "; a cluster has only db 0"));
    }
  }
  if (options.max_redirects < 1) {
    return absl::InvalidArgumentError("redis cluster: max_redirects must be at least 1");
  }
  if (options.max_retries < 0 || options.retry_delay < absl::ZeroDuration() ||
      options.min_refresh_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "redis cluster: max_retries, retry_delay and min_refresh_interval must not be negative");
  }
  return absl::OkStatus();
}

RedisAddress ClusterNodeAddress(const ClusterOptions& options, const ClusterNode& node) {
  RedisAddress address;
  address.host = node.host;
  address.port = node.port;
  address.user = options.seeds.front().user;
  address.password = options.seeds.front().password;
  return address;
}

RedisConnectionOptions ClusterNodeConnection(const ClusterOptions& options,
                                             const ClusterNode& node) {
  RedisConnectionOptions connection = options.connection;
  connection.address = ClusterNodeAddress(options, node);
  connection.sentinel = nullptr;
  return connection;
}

ClusterNode ClusterNodeOf(const RedisAddress& address) {
  ClusterNode node;
  node.host = address.host;
  node.port = address.port;
  return node;
}

std::vector<ClusterNode> RefreshCandidates(const ClusterSlotMap& map,
                                           const ClusterOptions& options) {
  std::vector<ClusterNode> candidates = map.Masters();
  for (const RedisAddress& seed : options.seeds) {
    const ClusterNode node = ClusterNodeOf(seed);
    bool known = false;
    for (const ClusterNode& c : candidates) known = known || c.SameAddress(node);
    if (!known) candidates.push_back(node);
  }
  return candidates;
}

absl::Status NoNodeAnswered(const std::vector<ClusterNode>& tried) {
  std::vector<std::string> names;
  names.reserve(tried.size());
  for (const ClusterNode& c : tried) names.push_back(c.HostPort());
  return absl::UnavailableError(absl::StrCat(
      "redis cluster: no node answered CLUSTER SLOTS (tried ", absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<ClusterSlotMap> SlotMapFromReply(const absl::StatusOr<RedisReply>& reply,
                                                const ClusterNode& node) {
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) return RedisErrorStatus(*reply);
  absl::StatusOr<ClusterSlotMap> map = ClusterSlotMap::FromClusterSlots(*reply, node.host);
  if (map.ok() && map->UnassignedSlots() == kClusterSlots) {
    return absl::UnavailableError("the node serves no slot (not part of a cluster yet)");
  }
  return map;
}

absl::StatusOr<RedisReply> CombineAllMasters(std::vector<absl::StatusOr<RedisReply>> replies) {
  for (absl::StatusOr<RedisReply>& r : replies) {
    if (!r.ok() || r->is_error()) return std::move(r);
  }
  return std::move(replies.front());
}

}  // namespace redrive
