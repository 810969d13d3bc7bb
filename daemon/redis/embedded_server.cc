#include "daemon/redis/embedded_server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/errno_message.h"
#include "daemon/logging.h"
#include "daemon/redis/connection.h"

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

constexpr char kDirPrefix[] = "redrive-redis-";
constexpr char kLockFile[] = "/daemon.lock";

// True when something accepts connections on the Unix socket `path`.
bool SocketAnswers(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // cannot tell: keep the directory
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool answers = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return answers;
}

// True when `dir` belongs to no live daemon.
bool IsStale(const std::string& dir) {
  const std::string lock = dir + kLockFile;
  const int fd = open(lock.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    // No lock file: an older daemon's, or one being set up right now. Only
    // a directory older than a minute whose socket does not answer is stale.
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return false;
    if (time(nullptr) - st.st_mtime < 60) return false;
    return !SocketAnswers(dir + "/redis.sock");
  }
  const bool free = flock(fd, LOCK_EX | LOCK_NB) == 0;
  close(fd);  // releases the probe lock, if taken
  return free;
}

}  // namespace

int RemoveStaleEmbeddedDirectories(const std::string& temp_dir) {
  std::error_code ec;
  int removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(temp_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kDirPrefix, 0) != 0) continue;
    struct stat st {};
    if (lstat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
      continue;
    }
    if (!IsStale(entry.path().string())) continue;
    std::error_code remove_error;
    std::filesystem::remove_all(entry.path(), remove_error);
    if (remove_error) {
      spdlog::warn("cannot remove stale embedded redis directory {}: {}", entry.path().string(),
                   remove_error.message());
      continue;
    }
    spdlog::info("removed stale embedded redis directory {} (its daemon is gone)",
                 entry.path().string());
    ++removed;
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<EmbeddedRedis>> EmbeddedRedis::Start(const Options& options) {
  const std::string temp_dir = std::filesystem::temp_directory_path().string();
  RemoveStaleEmbeddedDirectories(temp_dir);
  std::string templ = temp_dir + "/" + kDirPrefix + "XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("embedded redis: mkdtemp: ", ErrnoMessage(errno)));
  }
  const std::string dir = templ;
  // Held for the daemon's lifetime (closed on exec: redis-server must not
  // keep it after the daemon dies).
  const int lock_fd = open((dir + kLockFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (lock_fd >= 0) close(lock_fd);
    std::filesystem::remove_all(dir);
    return absl::UnavailableError(
        absl::StrCat("embedded redis: lock file in ", dir, ": ", ErrnoMessage(err)));
  }
  const std::string socket = dir + "/redis.sock";
  std::vector<std::string> args = {options.binary,
                                   "--port",
                                   "0",
                                   "--unixsocket",
                                   socket,
                                   "--unixsocketperm",
                                   "700",
                                   "--dir",
                                   dir,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   dir + "/redis.log"};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(lock_fd);
    std::filesystem::remove_all(dir);
    return absl::UnavailableError(absl::StrCat("embedded redis: fork: ", ErrnoMessage(errno)));
  }
  if (pid == 0) {
    // Child: die with the daemon, even on kill -9.
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
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
  std::unique_ptr<EmbeddedRedis> server(new EmbeddedRedis(pid, dir, address, lock_fd));
  const absl::Time deadline = absl::Now() + options.start_timeout;
  while (true) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("embedded redis: '", options.binary, "' exited at start (status ", status,
                       "); is redis-server installed? log: ", dir, "/redis.log"));
    }
    absl::StatusOr<RedisReply> pong = probe.Command({"PING"});
    if (pong.ok() && pong->is_status() && pong->str == "PONG") break;
    if (absl::Now() >= deadline) {
      return absl::UnavailableError("embedded redis: no answer to PING in time");
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  spdlog::info("embedded redis-server started (pid {}) on unix:{}; data is not persisted", pid,
               socket);
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
  if (lock_fd_ >= 0) close(lock_fd_);
}

}  // namespace redrive
