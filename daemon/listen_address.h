// ListenAddress: the grammar of --grpc-listen / --health-listen entries.
//
//   host:port      IPv4 literal or host name ("127.0.0.1:50051", "localhost:0")
//   [v6]:port      IPv6 literal ("[::1]:50051")
//   unix:/path     Unix domain socket ("unix:///path" is accepted too)
//
// Ports are decimal 0..65535 (0 = the kernel picks a free one). Parsing is
// pure; binding lives in daemon/listener.h.
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_LISTEN_ADDRESS_H_
#define REDRIVE_DAEMON_LISTEN_ADDRESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace redrive {

struct ListenAddress {
  bool is_unix = false;
  std::string path;  // unix only
  std::string host;  // tcp only, without brackets
  int port = 0;      // tcp only
  std::string text;  // as written
};

// INVALID_ARGUMENT saying what is wrong (no port, port out of range, empty
// host or path).
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

// True for Unix sockets and for hosts that only ever mean this machine:
// 127.0.0.0/8, ::1 and "localhost".
bool IsLoopback(const ListenAddress& address);

// The warning to log for a listen address reachable from the network (empty
// for loopback and Unix sockets): the Broker is unauthenticated there unless
// `broker_auth`.
std::string ExposureWarning(const ListenAddress& address, bool broker_auth);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_LISTEN_ADDRESS_H_
