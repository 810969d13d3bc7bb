#include "tests/testing/redis_server.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/ports.h"

namespace redrive::testing {

TestRedisServer::TestRedisServer(Options options) : options_(std::move(options)) {}

std::unique_ptr<TestRedisServer> TestRedisServer::Start() { return Start(Options{}); }

std::unique_ptr<TestRedisServer> TestRedisServer::Start(Options options) {
  std::unique_ptr<TestRedisServer> server(new TestRedisServer(std::move(options)));
  std::string templ =
      (std::filesystem::temp_directory_path() / "redrive-test-redis-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return nullptr;
  }
  server->dir_ = templ;
  for (int attempt = 0; attempt < 5; ++attempt) {
    server->port_ = PickFreePort();
    if (server->Launch()) return server;
  }
  ADD_FAILURE() << "could not start " << REDRIVE_REDIS_SERVER << " (see " << server->dir_
                << "/redis.log)";
  return nullptr;
}

bool TestRedisServer::Launch() {
  std::vector<std::string> args = {REDRIVE_REDIS_SERVER,
                                   "--port",
                                   absl::StrCat(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   dir_ + "/redis.log"};
  if (!options_.password.empty()) {
    args.insert(args.end(), {"--requirepass", options_.password});
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  std::unique_ptr<RedisConnection> probe = Connect();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;  // exited: port taken or bad arguments
    }
    absl::StatusOr<RedisReply> pong = probe->Command({"PING"});
    if (pong.ok() && pong->str == "PONG") return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  Kill();
  return false;
}

TestRedisServer::~TestRedisServer() {
  Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void TestRedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

bool TestRedisServer::Restart() {
  Kill();
  return Launch();
}

std::string TestRedisServer::url() const {
  return options_.password.empty()
             ? absl::StrCat("redis://127.0.0.1:", port_, "/0")
             : absl::StrCat("redis://:", options_.password, "@127.0.0.1:", port_, "/0");
}

RedisAddress TestRedisServer::address() const {
  RedisAddress a;
  a.host = "127.0.0.1";
  a.port = port_;
  a.password = options_.password;
  return a;
}

std::unique_ptr<RedisConnection> TestRedisServer::Connect() const {
  RedisConnectionOptions o;
  o.address = address();
  o.connect_timeout = absl::Milliseconds(500);
  o.command_timeout = absl::Seconds(5);
  o.min_backoff = absl::ZeroDuration();
  o.max_backoff = absl::ZeroDuration();
  return std::make_unique<RedisConnection>(o);
}

}  // namespace redrive::testing
