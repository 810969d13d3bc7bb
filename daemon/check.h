// Invariant checks: crash, loudly, on a broken invariant (engineering habit 3).
//
//   REDRIVE_CHECK(lease != nullptr) << "ack of unknown delivery " << id;
//   REDRIVE_DCHECK(queue_.size() <= budget_);
//
// REDRIVE_CHECK is active in every build type: use it where going on would
// lose or duplicate messages. On failure it logs one critical line through
// spdlog's default logger (the daemon's, once InitLogging ran), of the form
//   CHECK failed: <file>:<line>: <condition text> <streamed message>
// flushes it, and calls std::abort(). When the logger's level would drop
// that line (--log-level=off) it goes to stderr instead. The streamed message
// is evaluated only on failure.
//
// REDRIVE_DCHECK is the same check in debug builds (NDEBUG not defined); in
// others the condition and message are compiled (so they stay valid code)
// but never evaluated. Use it for costly checks of what the code already
// guarantees, never for anything with a side effect.
//
// Likely failures (Redis down, a client gone, bad input) are not invariants:
// they return absl::Status, are counted and handled.
#ifndef REDRIVE_DAEMON_CHECK_H_
#define REDRIVE_DAEMON_CHECK_H_

#include <sstream>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"

namespace redrive::check_internal {

// Collects the message of one failed check; its destructor logs and aborts.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition)
      : file_(file), line_(line), condition_(condition) {}
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  ABSL_ATTRIBUTE_NORETURN ~CheckFailure();

  std::ostream& stream() { return message_; }

 private:
  const char* const file_;
  const int line_;
  const char* const condition_;
  std::ostringstream message_;
};

// Turns `stream << ...` into void so both arms of the macro's ?: match;
// `&` binds more loosely than `<<`, so the whole message is streamed first.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace redrive::check_internal

#define REDRIVE_CHECK(condition)           \
  ABSL_PREDICT_TRUE(condition)             \
  ? (void)0                                \
  : ::redrive::check_internal::Voidify() & \
          ::redrive::check_internal::CheckFailure(__FILE__, __LINE__, #condition).stream()

#ifndef NDEBUG
#define REDRIVE_DCHECK(condition) REDRIVE_CHECK(condition)
#else
#define REDRIVE_DCHECK(condition) \
  while (false) REDRIVE_CHECK(condition)
#endif

#endif  // REDRIVE_DAEMON_CHECK_H_
