// redrived: the redrive sidecar daemon. See README.md and `redrived --help`.
#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "daemon/config.h"
#include "daemon/listener.h"
#include "daemon/logging.h"
#include "daemon/redis/embedded_server.h"
#include "daemon/server.h"
#include "daemon/tls_files.h"

namespace {

constexpr int kExitConfig = 2;
constexpr int kExitStartup = 1;

// gRPC's own log lines (errors only unless GRPC_VERBOSITY says otherwise) go
// through our logger, so that a JSON log stays one object per line.
void GrpcLogToSpdlog(gpr_log_func_args* args) {
  const spdlog::level::level_enum level =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
      : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                : spdlog::level::debug;
  spdlog::log(level, "grpc: {} ({}:{})", args->message, args->file, args->line);
}

int Run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<redrive::ParsedConfig> parsed = redrive::ParseConfig(args, redrive::ProcessEnv());
  if (!parsed.ok()) {
    std::cerr << "redrived: " << parsed.status().message() << "\n";
    return kExitConfig;
  }
  if (parsed->outcome == redrive::ParseOutcome::kHelp) {
    std::cout << redrive::ConfigHelp();
    return 0;
  }
  if (parsed->outcome == redrive::ParseOutcome::kVersion) {
    std::cout << "redrived " << REDRIVE_VERSION << "\n";
    return 0;
  }
  const redrive::Config& config = parsed->config;
  if (absl::Status s = redrive::InitLogging({config.log_level, config.log_format == "json"});
      !s.ok()) {
    std::cerr << "redrived: " << s.message() << "\n";
    return kExitConfig;
  }
  gpr_set_log_function(&GrpcLogToSpdlog);
  if (config.tls.enabled()) {
    // What the files hold is a configuration error too (exit 2), found
    // before anything starts.
    if (absl::StatusOr<redrive::CertificateSummary> tls = redrive::CheckTlsFiles(config.tls);
        !tls.ok()) {
      std::cerr << "redrived: " << tls.status().message() << "\n";
      return kExitConfig;
    }
  }
  if (config.password_on_command_line) {
    spdlog::warn(
        "the Redis password was given in --redis-url and is visible in the process list; "
        "use REDRIVE_REDIS_URL, REDRIVE_REDIS_PASSWORD or --redis-password-file");
  }
  signal(SIGPIPE, SIG_IGN);
  // Every connection costs a descriptor: take all the kernel allows.
  redrive::RaiseDescriptorLimit();

  // The embedded server is forked before any thread exists.
  std::unique_ptr<redrive::EmbeddedRedis> embedded;
  redrive::RedisAddress redis = config.redis;
  if (config.embedded_redis) {
    redrive::EmbeddedRedis::Options options;
    options.binary = config.embedded_redis_binary;
    absl::StatusOr<std::unique_ptr<redrive::EmbeddedRedis>> started =
        redrive::EmbeddedRedis::Start(options);
    if (!started.ok()) {
      spdlog::error("{}", std::string(started.status().message()));
      return kExitStartup;
    }
    embedded = *std::move(started);
    redis = embedded->address();
  }

  // SIGTERM/SIGINT are taken by sigwait below, on this thread only.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::unique_ptr<redrive::Server>> server = redrive::Server::Start(config, redis);
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return kExitStartup;
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("received {}: draining for up to {} ms",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT", config.shutdown_grace_ms);
  (*server)->Shutdown(absl::Milliseconds(config.shutdown_grace_ms));
  server->reset();
  embedded.reset();
  spdlog::info("redrived stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NDEBUG
  // Debian builds abseil with its debug checks on: every absl::Mutex lock
  // (gRPC's included) would go through the deadlock detector's global lock
  // graph. A release daemon turns it off; Debug builds (the tests) keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  return Run(argc, argv);
}
