// ErrnoMessage: the text strerror gives for an errno value, without
// strerror's static buffer (glibc documents strerror as MT-Unsafe; the
// daemon calls this from gRPC, listener and worker threads).
#ifndef REDRIVE_DAEMON_ERRNO_MESSAGE_H_
#define REDRIVE_DAEMON_ERRNO_MESSAGE_H_

#include <cstring>
#include <string>

namespace redrive {
namespace errno_internal {

// GNU strerror_r (what glibc declares for C++) returns the message, in
// `buf` or a static string; the XSI one returns 0 and fills `buf`. One
// overload per signature, so this compiles against either.
inline const char* StrerrorResult(const char* message, const char* /*buf*/) { return message; }
inline const char* StrerrorResult(int rc, const char* buf) {
  return rc == 0 ? buf : "Unknown error";
}

}  // namespace errno_internal

// strerror(err)'s text. Thread-safe.
inline std::string ErrnoMessage(int err) {
  char buf[256];
  return errno_internal::StrerrorResult(strerror_r(err, buf, sizeof(buf)), buf);
}

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ERRNO_MESSAGE_H_
