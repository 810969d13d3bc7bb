// Parsing of Redis addresses given as URLs.
//
// Accepted forms:
//   redis://[[user]:password@]host[:port][/db]     (host may be [v6addr])
//   unix://[[user]:password@]/abs/path[?db=N]
//   unix:/abs/path[?db=N]
//   embedded      (start a private redis-server; see embedded_redis.h)
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_REDIS_URL_H_
#define REDRIVE_DAEMON_REDIS_URL_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace redrive {

struct RedisAddress {
  // Exactly one of (host, port) or unix_path is used.
  std::string host;
  int port = 6379;
  std::string unix_path;
  std::string user;      // ACL user; empty = default user
  std::string password;  // empty = no AUTH
  int db = 0;

  bool is_unix() const { return !unix_path.empty(); }
  // The address without credentials, safe to log: "redis://host:port/db".
  std::string Redacted() const;
};

// INVALID_ARGUMENT with the reason for anything malformed (bad scheme, port
// outside 1..65535, db outside 0..15999, relative unix path, ...).
// Percent-escapes (%XX) in user and password are decoded. rediss:// is
// refused with a message pointing at the stunnel pattern: hiredis 0.14 has no
// TLS.
absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_URL_H_
