// Process logging on spdlog: text or JSON lines on stderr, levels (R-G3).
//
// Call InitLogging once in main before other threads start; afterwards the
// spdlog free functions (spdlog::info, ...) are thread-safe. In JSON mode
// every line is one object {"ts","level","msg"} with the message escaped.
// Never log secrets or payloads at info level.
#ifndef REDRIVE_DAEMON_LOGGING_H_
#define REDRIVE_DAEMON_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace redrive {

struct LogOptions {
  std::string level = "info";  // trace|debug|info|warn|error|off
  bool json = false;
};

absl::Status InitLogging(const LogOptions& options);

// Escapes `in` for use inside a JSON string literal.
std::string JsonEscape(absl::string_view in);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_LOGGING_H_
