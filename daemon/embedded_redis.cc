#include "daemon/embedded_redis.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include "daemon/logging.h"
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/redis_client.h"

namespace redrive {
namespace {

// Waits up to `timeout` for `pid` to exit; true when it did.
bool WaitForExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddedRedis>> EmbeddedRedis::Start(const Options& options) {
  std::string templ = (std::filesystem::temp_directory_path() / "redrive-redis-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("embedded redis: mkdtemp: ", std::strerror(errno)));
  }
  const std::string dir = templ;
  const std::string socket = dir + "/redis.sock";
  std::vector<std::string> args = {options.binary, "--port", "0",
                                   "--unixsocket", socket,
                                   "--unixsocketperm", "700",
                                   "--dir", dir,
                                   "--save", "",
                                   "--appendonly", "no",
                                   "--daemonize", "no",
                                   "--logfile", dir + "/redis.log"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    std::filesystem::remove_all(dir);
    return absl::UnavailableError(absl::StrCat("embedded redis: fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: die with the daemon, even on kill -9.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    execvp(argv[0], argv.data());
    _exit(127);
  }

  RedisAddress address;
  address.unix_path = socket;
  RedisConnectionOptions conn_options;
  conn_options.address = address;
  conn_options.connect_timeout = absl::Milliseconds(200);
  conn_options.min_backoff = absl::ZeroDuration();
  conn_options.max_backoff = absl::ZeroDuration();
  RedisConnection probe(conn_options);
  std::unique_ptr<EmbeddedRedis> server(new EmbeddedRedis(pid, dir, address));
  const absl::Time deadline = absl::Now() + options.start_timeout;
  while (true) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = -1;
      return absl::UnavailableError(absl::StrCat(
          "embedded redis: '", options.binary, "' exited at start (status ", status,
          "); is redis-server installed? log: ", dir, "/redis.log"));
    }
    absl::StatusOr<RedisReply> pong = probe.Command({"PING"});
    if (pong.ok() && pong->is_status() && pong->str == "PONG") break;
    if (absl::Now() >= deadline) {
      return absl::UnavailableError("embedded redis: no answer to PING in time");
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  spdlog::info("embedded redis-server started (pid {}) on unix:{}; data is not persisted",
               pid, socket);
  return server;
}

EmbeddedRedis::~EmbeddedRedis() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    if (!WaitForExit(pid_, absl::Seconds(5))) {
      kill(pid_, SIGKILL);
      WaitForExit(pid_, absl::Seconds(5));
    }
    spdlog::info("embedded redis-server stopped");
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace redrive
