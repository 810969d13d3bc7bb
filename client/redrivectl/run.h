// redrivectl execution: runs one parsed command line against a daemon and
// writes its output. main() only wires the process (signals, environment,
// std streams) to Run.
#ifndef REDRIVE_CLIENT_REDRIVECTL_RUN_H_
#define REDRIVE_CLIENT_REDRIVECTL_RUN_H_

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/redrivectl/commands.h"

namespace redrive::ctl {

// Lets a signal-handling thread stop a long-running command (tail, redrive
// --wait) cleanly.
//
// Thread-safe.
class Interrupter {
 public:
  // Installs the hook the next Interrupt() calls (replacing any previous one).
  void Set(std::function<void()> hook) ABSL_LOCKS_EXCLUDED(mu_);
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs the installed hook and returns true; false when none is installed
  // (the caller then exits with kExitInterrupted).
  bool Interrupt() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::function<void()> hook_ ABSL_GUARDED_BY(mu_);
};

struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

// Parses `args` (argv without argv[0]), runs the command and returns the
// process exit code (see kExit* and TopLevelHelp()).
int Run(const std::vector<std::string>& args, const Environment& env, Io io,
        Interrupter& interrupter);

}  // namespace redrive::ctl

#endif  // REDRIVE_CLIENT_REDRIVECTL_RUN_H_
