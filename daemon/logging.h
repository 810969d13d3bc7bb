// Process logging on spdlog: text or JSON lines on stderr, levels (R-G3),
// and structured fields (channel, handler, entry id, trace id, ...) on a line.
//
// Call InitLogging once in main before other threads start; afterwards the
// spdlog free functions (spdlog::info, ...) and Log/LogDebug/... are
// thread-safe. Never log secrets or payloads.
//
// Line formats:
//   text  2026-12-04T19:00:00.123Z W entry is unreadable channel=orders
//         handler=billing entry_id=2-0 reason="poison: header 0 ..."
//   json  {"ts":"2026-12-04T19:00:00.123Z","level":"warn","msg":"entry is
//         unreadable","channel":"orders","handler":"billing","entry_id":"2-0",
//         "reason":"poison: header 0 ..."}   (one object per line)
// Fields follow the message, in the order of LogKey below (not the order they
// were set); a key set twice keeps its last value; a text field whose value
// is empty is left out. In JSON, text values are JSON strings (escaped, any
// invalid UTF-8 byte replaced by U+FFFD) and integer values JSON numbers. In
// text, a value is written bare when it is non-empty printable ASCII without
// space, '"', '=' or '\', and otherwise as a quoted, JSON-escaped string.
//
// How the fields reach the line: Log checks the level first (nothing is
// formatted when it is off), then points a thread_local at the fields for the
// duration of the one synchronous spdlog call (ScopedLogFields); the
// formatter InitLogging installs reads them from there. This is safe because
// InitLogging installs a synchronous logger (spdlog formats on the calling
// thread, inside the call); an asynchronous logger would format on another
// thread and must never be installed. The alternative, formatting the fields
// into the message, would put them inside "msg" in JSON mode.
//
// LogFields borrows its text values: build it in the Log call's own
// expression (temporaries live until the call returns), never keep one.
#ifndef REDRIVE_DAEMON_LOGGING_H_
#define REDRIVE_DAEMON_LOGGING_H_

#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace redrive {

struct LogOptions {
  std::string level = "info";  // trace|debug|info|warn|error|off
  bool json = false;
};

absl::Status InitLogging(const LogOptions& options);

// The line formatter InitLogging installs (exposed for tests, which install
// it on a logger of their own): JSON or text, UTC timestamps, fields as
// described above.
std::unique_ptr<spdlog::formatter> MakeLogFormatter(bool json);

// Escapes `in` for use inside a JSON string literal: '"', '\\' and control
// characters escaped; bytes that are not well-formed UTF-8 become U+FFFD, so
// the result is always valid JSON string content.
std::string JsonEscape(absl::string_view in);

// The field vocabulary, in output order. README "Logs" documents each key.
enum class LogKey : uint8_t {
  kChannel,     // "channel": a channel name
  kHandler,     // "handler": a handler id
  kEntryId,     // "entry_id": a stream entry id ("1700000000000-0")
  kTraceId,     // "trace_id": the 32-hex trace id of the message's traceparent
  kReason,      // "reason": why (a dead-letter reason, a decode error, ...)
  kSession,     // "session": a Subscribe stream's id on this daemon
  kDeliveryId,  // "delivery_id": a delivery's id on its Subscribe stream
  kAttempt,     // "attempt": a delivery attempt number (1 = first)
  kStream,      // "stream": a Redis stream key
  kGroup,       // "group": a consumer group
  kConsumer,    // "consumer": a consumer name
  kDlqEntryId,  // "dlq_entry_id": the id of a dead letter in its DLQ
  kJob,         // "job": a redrive job id
  kRpc,         // "rpc": an Admin RPC name
  kPeer,        // "peer": a gRPC peer address
  kError,       // "error": the error message of a failed operation
};
inline constexpr int kLogKeyCount = static_cast<int>(LogKey::kError) + 1;

// The JSON key / text name of `key` ("entry_id").
absl::string_view LogKeyName(LogKey key);

// The fields of one log line. Cheap: fixed storage on the stack, text values
// borrowed, no allocation.
class LogFields {
 public:
  LogFields() : set_(0) {}

  LogFields& Channel(absl::string_view v) { return Text(LogKey::kChannel, v); }
  LogFields& Handler(absl::string_view v) { return Text(LogKey::kHandler, v); }
  LogFields& EntryId(absl::string_view v) { return Text(LogKey::kEntryId, v); }
  LogFields& TraceId(absl::string_view v) { return Text(LogKey::kTraceId, v); }
  LogFields& Reason(absl::string_view v) { return Text(LogKey::kReason, v); }
  LogFields& Session(uint64_t v) { return Number(LogKey::kSession, v); }
  LogFields& DeliveryId(uint64_t v) { return Number(LogKey::kDeliveryId, v); }
  LogFields& Attempt(uint64_t v) { return Number(LogKey::kAttempt, v); }
  LogFields& Stream(absl::string_view v) { return Text(LogKey::kStream, v); }
  LogFields& Group(absl::string_view v) { return Text(LogKey::kGroup, v); }
  LogFields& Consumer(absl::string_view v) { return Text(LogKey::kConsumer, v); }
  LogFields& DlqEntryId(absl::string_view v) { return Text(LogKey::kDlqEntryId, v); }
  LogFields& Job(absl::string_view v) { return Text(LogKey::kJob, v); }
  LogFields& Rpc(absl::string_view v) { return Text(LogKey::kRpc, v); }
  LogFields& Peer(absl::string_view v) { return Text(LogKey::kPeer, v); }
  LogFields& Error(absl::string_view v) { return Text(LogKey::kError, v); }

  LogFields& Text(LogKey key, absl::string_view v) {
    Value& slot = values_[static_cast<int>(key)];
    slot.text = v;
    slot.is_number = false;
    set_ |= Bit(key);
    return *this;
  }
  LogFields& Number(LogKey key, uint64_t v) {
    Value& slot = values_[static_cast<int>(key)];
    slot.number = v;
    slot.is_number = true;
    set_ |= Bit(key);
    return *this;
  }

  // Calls text(key, value) or number(key, value) for every field set, in
  // LogKey order; empty text values are skipped.
  template <typename OnText, typename OnNumber>
  void ForEach(OnText&& text, OnNumber&& number) const {
    for (int i = 0; i < kLogKeyCount; ++i) {
      const auto key = static_cast<LogKey>(i);
      if ((set_ & Bit(key)) == 0) continue;
      const Value& v = values_[i];
      if (v.is_number) {
        number(key, v.number);
      } else if (!v.text.empty()) {
        text(key, v.text);
      }
    }
  }

 private:
  struct Value {
    absl::string_view text;
    uint64_t number;
    bool is_number;
  };
  static constexpr uint32_t Bit(LogKey key) { return uint32_t{1} << static_cast<int>(key); }

  uint32_t set_;  // which values_ are set (the others stay uninitialized)
  Value values_[kLogKeyCount];
};

// Makes `fields` the fields of the lines this thread logs until it is
// destroyed (restoring the previous ones). Log uses it; see the file comment.
class ScopedLogFields {
 public:
  explicit ScopedLogFields(const LogFields& fields);
  ~ScopedLogFields();
  ScopedLogFields(const ScopedLogFields&) = delete;
  ScopedLogFields& operator=(const ScopedLogFields&) = delete;

 private:
  const LogFields* const previous_;
};

// Logs one line with `fields` on the default logger; nothing is formatted
// (and `args` are not converted) when `level` is off.
template <typename... Args>
void Log(spdlog::level::level_enum level, const LogFields& fields,
         spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (logger == nullptr || !logger->should_log(level)) return;
  const ScopedLogFields scope(fields);
  logger->log(level, fmt, std::forward<Args>(args)...);
}

template <typename... Args>
void LogDebug(const LogFields& fields, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Log(spdlog::level::debug, fields, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void LogInfo(const LogFields& fields, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Log(spdlog::level::info, fields, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void LogWarn(const LogFields& fields, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Log(spdlog::level::warn, fields, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void LogError(const LogFields& fields, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Log(spdlog::level::err, fields, fmt, std::forward<Args>(args)...);
}

}  // namespace redrive

#endif  // REDRIVE_DAEMON_LOGGING_H_
