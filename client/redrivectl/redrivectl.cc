// redrivectl: the operator CLI for redrived (R-I2). See README.md ("Operating
// with `redrivectl`") and `redrivectl --help`.
//
// SIGINT and SIGTERM are blocked in every thread and taken by one sigwait
// thread: a running tail or `dlq redrive --wait` stops cleanly through the
// Interrupter; any other command exits at once with status 130.
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/redrivectl/run.h"

namespace {

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // Before any thread exists (gRPC's included), so every thread inherits it.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Leaked on purpose: the detached signal thread may use it until exit.
  auto* interrupter = new redrive::ctl::Interrupter();
  std::thread([signals, interrupter] {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (!interrupter->Interrupt()) _exit(redrive::ctl::kExitInterrupted);
    }
  }).detach();

  redrive::ctl::Environment env;
  env.addr = Env("REDRIVE_ADDR");
  env.admin_token = Env("REDRIVE_ADMIN_TOKEN");
  env.admin_token_file = Env("REDRIVE_ADMIN_TOKEN_FILE");
  env.user = Env("USER");
  std::vector<std::string> args(argv + 1, argv + argc);
  const int rc = redrive::ctl::Run(args, env, {std::cin, std::cout, std::cerr}, *interrupter);
  std::cout.flush();
  return rc;
}
