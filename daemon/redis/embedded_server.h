// EmbeddedRedis: a private redis-server child for running without a
// configured Redis (R-A3). It listens only on a Unix socket (no TCP port) in
// a fresh temporary directory, keeps no snapshot, dies with the daemon
// (PR_SET_PDEATHSIG) and is stopped and its directory removed on destruction.
//
// The directory holds a lock file the daemon keeps an exclusive flock on for
// its lifetime. A daemon killed with SIGKILL cannot remove its directory, so
// Start first removes every `redrive-redis-*` directory in the temp directory
// that this user owns and whose lock nobody holds (older directories without
// a lock file: when nothing answers on their socket).
//
// Create it before starting other threads (it forks).
// Thread-compatible.
#ifndef REDRIVE_DAEMON_REDIS_EMBEDDED_SERVER_H_
#define REDRIVE_DAEMON_REDIS_EMBEDDED_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/redis/url.h"

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
  EmbeddedRedis(pid_t pid, std::string dir, RedisAddress address, int lock_fd)
      : pid_(pid), dir_(std::move(dir)), address_(std::move(address)), lock_fd_(lock_fd) {}

  pid_t pid_;
  std::string dir_;
  RedisAddress address_;
  int lock_fd_;  // flock held while this daemon lives
};

// Removes the directories left by embedded servers of dead daemons under
// `temp_dir` (see EmbeddedRedis); returns how many were removed.
int RemoveStaleEmbeddedDirectories(const std::string& temp_dir);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_EMBEDDED_SERVER_H_
