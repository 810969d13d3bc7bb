#include "tests/testing/daemon_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace redrive::testing {

std::unique_ptr<DaemonProcess> DaemonProcess::Start(Options options) {
  std::unique_ptr<DaemonProcess> d(new DaemonProcess());
  std::string templ =
      (std::filesystem::temp_directory_path() / "redrive-test-daemon-XXXXXX").string();
  if (mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return nullptr;
  }
  d->dir_ = templ;
  const std::string ready = d->dir_ + "/ready.json";
  std::string listen = options.grpc_listen.empty() ? "127.0.0.1:0" : options.grpc_listen;
  if (options.unix_socket) {
    d->unix_address_ = absl::StrCat("unix:", d->dir_, "/redrived.sock");
    absl::StrAppend(&listen, ",", d->unix_address_);
  }
  std::vector<std::string> args = {REDRIVE_DAEMON_BINARY,      "--grpc-listen=" + listen,
                                   "--ready-file=" + ready,    "--health-interval-ms=100",
                                   "--shutdown-grace-ms=2000", "--log-level=debug"};
  args.push_back(options.redis_url.empty() ? "--redis-url=embedded"
                                           : "--redis-url=" + options.redis_url);
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  // The test's environment without REDRIVE_* and without the variables
  // options.env sets (getenv returns the first of two equal names).
  auto overridden = [&options](absl::string_view entry) {
    const absl::string_view name = entry.substr(0, entry.find('='));
    for (const std::string& e : options.env) {
      if (absl::string_view(e).substr(0, e.find('=')) == name) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const absl::string_view entry(*e);
    if (entry.rfind("REDRIVE_", 0) != 0 && !overridden(entry)) env.emplace_back(entry);
  }
  env.insert(env.end(), options.env.begin(), options.env.end());

  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string log = d->dir_ + "/redrived.log";

  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return nullptr;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (options.nofile_hard != 0) {
      const rlimit limit{options.nofile_soft, options.nofile_hard};
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
    }
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  d->pid_ = pid;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      d->pid_ = -1;
      ADD_FAILURE() << "redrived exited during start-up (status " << status << "):\n" << d->Log();
      return nullptr;
    }
    std::ifstream in(ready);
    if (in) {
      nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (!j.is_discarded()) {
        d->address_ = j["grpc"][0].get<std::string>();
        d->redis_ = j["redis"].get<std::string>();
        d->health_ = j.value("health", "");
        return d;
      }
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ADD_FAILURE() << "redrived did not become ready:\n" << d->Log();
  return nullptr;
}

DaemonProcess::~DaemonProcess() {
  Kill9();
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- redrived log (" << dir_ << ") ----\n" << Log() << "----\n";
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

int DaemonProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return -1;
}

void DaemonProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string DaemonProcess::Log() const {
  std::ifstream in(dir_ + "/redrived.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace redrive::testing
