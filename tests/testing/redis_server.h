// TestRedisServer: a private redis-server for integration and e2e tests, on
// a free 127.0.0.1 port, with its data in a temporary directory, no
// persistence, and stopped (and the directory removed) on destruction.
//
// Thread-compatible.
#ifndef REDRIVE_TESTS_TESTING_REDIS_SERVER_H_
#define REDRIVE_TESTS_TESTING_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/redis/connection.h"

namespace redrive::testing {

class TestRedisServer {
 public:
  struct Options {
    std::string password;  // requirepass when set
    std::vector<std::string> extra_args;
  };

  // Starts and waits for PING. Fails the calling test (and returns null) if
  // redis-server cannot be started: tests that need Redis never skip.
  static std::unique_ptr<TestRedisServer> Start();
  static std::unique_ptr<TestRedisServer> Start(Options options);
  ~TestRedisServer();

  int port() const { return port_; }
  // redis://127.0.0.1:PORT/0 (with the password when set).
  std::string url() const;
  RedisAddress address() const;

  // SIGKILLs the server (no clean shutdown) and waits for it to exit.
  void Kill();
  // Starts it again on the same port; true once it answers PING.
  bool Restart();
  bool running() const { return pid_ > 0; }

  // A fresh connection to this server.
  std::unique_ptr<RedisConnection> Connect() const;

 private:
  explicit TestRedisServer(Options options);
  bool Launch();

  const Options options_;
  int port_ = 0;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_REDIS_SERVER_H_
