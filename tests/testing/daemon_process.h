// DaemonProcess: runs the real redrived binary for end-to-end tests.
//
// The daemon listens on 127.0.0.1 port 0 (and optionally a Unix socket) and
// writes a ready file; Start waits for it. stderr goes to a log file kept in
// the process's temporary directory and printed when a test fails.
//
// Thread-compatible.
#ifndef REDRIVE_TESTS_TESTING_DAEMON_PROCESS_H_
#define REDRIVE_TESTS_TESTING_DAEMON_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace redrive::testing {

class DaemonProcess {
 public:
  struct Options {
    // "" = embedded Redis.
    std::string redis_url;
    std::vector<std::string> extra_args;
    // Extra environment, NAME=VALUE; replaces an inherited variable of that name.
    std::vector<std::string> env;
    bool unix_socket = false;
    // --grpc-listen instead of 127.0.0.1:0 (e.g. a fixed port a restarted
    // daemon binds again); the first address is address().
    std::string grpc_listen;
    // RLIMIT_NOFILE (soft, hard) for the daemon; 0 = inherited.
    uint64_t nofile_soft = 0;
    uint64_t nofile_hard = 0;
  };

  // Fails the test and returns null when the daemon does not become ready.
  static std::unique_ptr<DaemonProcess> Start(Options options);
  ~DaemonProcess();  // SIGKILL if still running.

  // The bound TCP address "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  // "unix:/.../redrived.sock" when Options::unix_socket.
  const std::string& unix_address() const { return unix_address_; }
  // The --health-listen address bound, when one was asked for.
  const std::string& health_address() const { return health_; }
  // The Redis address the daemon reported (redacted URL).
  const std::string& redis() const { return redis_; }
  pid_t pid() const { return pid_; }
  const std::string& directory() const { return dir_; }

  // SIGTERM and wait; the exit status as from waitpid (-1 on timeout).
  int Terminate(absl::Duration timeout = absl::Seconds(30));
  void Kill9();
  std::string Log() const;

 private:
  DaemonProcess() = default;

  pid_t pid_ = -1;
  std::string dir_;
  std::string address_;
  std::string unix_address_;
  std::string redis_;
  std::string health_;
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_DAEMON_PROCESS_H_
