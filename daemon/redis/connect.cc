#include "daemon/redis/connect.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/cluster_connection.h"
#include "daemon/redis/connection.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/keyspace.h"

namespace redrive {

ClusterOptions ClusterOptionsFor(const RedisConnectionOptions& options) {
  ClusterOptions cluster;
  cluster.connection = options;
  cluster.connection.sentinel = nullptr;
  for (const HostPort& seed : options.address.cluster_seeds) {
    RedisAddress a;
    a.host = seed.host;
    a.port = seed.port;
    a.user = options.address.user;
    a.password = options.address.password;
    cluster.seeds.push_back(std::move(a));
  }
  return cluster;
}

std::unique_ptr<RedisCommander> OpenRedis(const RedisConnectionOptions& options) {
  if (IsCluster(options)) return std::make_unique<ClusterConnection>(ClusterOptionsFor(options));
  return std::make_unique<RedisConnection>(options);
}

absl::Status CheckRedis(RedisCommander& redis, const RedisConnectionOptions& options) {
  if (!IsCluster(options)) {
    if (absl::Status ping = Ping(redis); !ping.ok()) return ping;
    return CheckNotClusterNode(redis);
  }
  auto& cluster = static_cast<ClusterConnection&>(redis);
  if (absl::Status s = cluster.Refresh(); !s.ok()) return s;
  const std::vector<RedisAddress> masters = cluster.Masters();
  if (masters.empty()) return absl::UnavailableError("the Redis Cluster has no master");
  for (const RedisAddress& master : masters) {
    RedisCommander* node = cluster.ForNode(master);
    absl::Status ping = node == nullptr ? absl::UnavailableError("no connection") : Ping(*node);
    if (!ping.ok()) {
      return absl::UnavailableError(absl::StrCat("cluster master ", master.host, ":", master.port,
                                                 " does not answer PING: ", ping.message()));
    }
  }
  RedisCommander* first = cluster.ForNode(masters.front());
  absl::StatusOr<RedisReply> info = CheckReply(first->Command({"CLUSTER", "INFO"}));
  if (!info.ok()) return info.status();
  if (!info->is_string() || !absl::StrContains(info->str, "cluster_state:ok")) {
    return absl::UnavailableError(absl::StrCat(
        "the Redis Cluster is not serving every slot (CLUSTER INFO on ", masters.front().host, ":",
        masters.front().port, " does not say cluster_state:ok)"));
  }
  return absl::OkStatus();
}

}  // namespace redrive
