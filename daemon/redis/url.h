// Parsing of Redis addresses given as URLs.
//
// Accepted forms:
//   redis://[[user]:password@]host[:port][/db]     (host may be [v6addr])
//   unix://[[user]:password@]/abs/path[?db=N]
//   unix:/abs/path[?db=N]
//   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]
//                   [?sentinel_user=U&sentinel_password=P]
//       (the sentinels, default port 26379; `master` is the name Sentinel
//       monitors, percent-decoded; user/password/db are for the data nodes; the query gives
//       the sentinels' own AUTH, if they require one)
//   redis-cluster://[[user]:password@]host[:port][,host[:port]...][/0]
//       (Redis Cluster seed nodes, default port 6379; any node will do, the
//       rest of the topology is discovered; db must be 0, the only one a
//       cluster has)
//   redis://[[user]:password@]host[:port],host[:port]...[/0]
//       (several hosts: the same as redis-cluster://)
//   embedded      (start a private redis-server; see embedded_redis.h)
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_REDIS_URL_H_
#define REDRIVE_DAEMON_REDIS_URL_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace redrive {

struct HostPort {
  std::string host;  // an IPv6 address without brackets
  int port = 0;
  bool operator==(const HostPort& o) const { return host == o.host && port == o.port; }
  // "host:port", "[v6]:port".
  std::string ToString() const;
};

// Where the Sentinels watching one primary are (redis-sentinel:// URLs).
struct SentinelAddress {
  std::vector<HostPort> sentinels;  // asked in this order
  std::string master_name;
  std::string user;      // the sentinels' ACL user; empty = default user
  std::string password;  // the sentinels' AUTH password; empty = no AUTH
};

struct RedisAddress {
  // Exactly one of (host, port), unix_path, sentinel or cluster_seeds is
  // used. With sentinel, host/port are filled in per connection with the
  // primary that Sentinel names (see sentinel.h). With cluster_seeds,
  // host/port are the first seed (cluster_connection.h routes per slot).
  std::string host;
  int port = 6379;
  std::string unix_path;
  std::string user;      // ACL user; empty = default user
  std::string password;  // empty = no AUTH
  int db = 0;
  SentinelAddress sentinel;
  std::vector<HostPort> cluster_seeds;  // redis-cluster:// (see above)

  bool is_unix() const { return !unix_path.empty(); }
  bool is_sentinel() const { return !sentinel.sentinels.empty(); }
  bool is_cluster() const { return !cluster_seeds.empty(); }
  // The address without credentials, safe to log: "redis://host:port/db",
  // "redis-sentinel://h1:26379,h2:26379/mymaster/0",
  // "redis-cluster://h1:7000,h2:7001".
  std::string Redacted() const;
};

// INVALID_ARGUMENT with the reason for anything malformed (bad scheme, port
// outside 1..65535, db outside 0..15999, relative unix path, a sentinel URL
// without sentinels or master name, an unknown query parameter, a cluster
// URL with db != 0 or an empty seed, ...).
// Percent-escapes (%XX) in user and password are decoded. rediss:// is
// refused with a message pointing at the stunnel pattern: hiredis 0.14 has no
// TLS.
absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_URL_H_
