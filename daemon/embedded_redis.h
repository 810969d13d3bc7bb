// EmbeddedRedis: a private redis-server child for running without a
// configured Redis (R-A3). It listens only on a Unix socket (no TCP port) in
// a fresh temporary directory, keeps no snapshot, dies with the daemon
// (PR_SET_PDEATHSIG) and is stopped and its directory removed on destruction.
//
// Create it before starting other threads (it forks).
// Thread-compatible.
#ifndef REDRIVE_DAEMON_EMBEDDED_REDIS_H_
#define REDRIVE_DAEMON_EMBEDDED_REDIS_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/redis_url.h"

namespace redrive {

class EmbeddedRedis {
 public:
  struct Options {
    std::string binary = "redis-server";
    absl::Duration start_timeout = absl::Seconds(10);
  };

  // Starts redis-server and waits until it answers PING. UNAVAILABLE with
  // the reason (binary missing, exited early, no answer in time).
  static absl::StatusOr<std::unique_ptr<EmbeddedRedis>> Start(const Options& options);

  ~EmbeddedRedis();
  EmbeddedRedis(const EmbeddedRedis&) = delete;
  EmbeddedRedis& operator=(const EmbeddedRedis&) = delete;

  // unix socket address of the server.
  const RedisAddress& address() const { return address_; }
  pid_t pid() const { return pid_; }
  const std::string& directory() const { return dir_; }

 private:
  EmbeddedRedis(pid_t pid, std::string dir, RedisAddress address)
      : pid_(pid), dir_(std::move(dir)), address_(std::move(address)) {}

  pid_t pid_;
  std::string dir_;
  RedisAddress address_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_EMBEDDED_REDIS_H_
