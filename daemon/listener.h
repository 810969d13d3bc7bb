// Listener: the daemon's own listening sockets and accept loop, feeding a
// grpc::Server with connected sockets: in plaintext
// (grpc::AddInsecureChannelFromFd), or, for TCP sockets when a TLS acceptor
// is given, through the server's TLS handshake (an ExternalConnectionAcceptor
// built with the TLS credentials; gRPC 1.51 refuses secure credentials on
// AddInsecureChannelFromFd's path). Unix sockets always stay plaintext.
//
// Why not gRPC's own listeners: gRPC 1.51 gives a listening socket up for
// good after one accept error such as EMFILE ("Failed accept4: Too many open
// files"), and binds TCP ports with SO_REUSEPORT, so a second daemon on a busy
// port silently shares it. Here:
//  - Bind refuses a port in use (EADDRINUSE: UNAVAILABLE naming the address);
//    Unix sockets get the configured mode (chmod) and a stale socket file from
//    a previous run is replaced, a live one (something accepts on it) is not.
//  - The accept loop survives descriptor exhaustion (EMFILE, ENFILE, ENOBUFS,
//    ENOMEM): it backs off (10 ms doubling to 100 ms) and accepts again, so new
//    connections are served within 100 ms of descriptors becoming free; the
//    pending ones wait in the kernel backlog meanwhile.
//  - Healthy() is the liveness signal: false while accepting has failed for
//    longer than `stall_limit`, or when the accept thread has not gone round
//    its loop for that long.
//
// Thread-safe. Start once, after the grpc::Server is started; Stop (or the
// destructor) before the server is destroyed.
#ifndef REDRIVE_DAEMON_LISTENER_H_
#define REDRIVE_DAEMON_LISTENER_H_

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/listen_address.h"

namespace redrive {

class Listener {
 public:
  struct Options {
    std::vector<std::string> addresses;  // ParseListenAddress grammar
    uint32_t unix_socket_mode = 0660;
    // Accept failing (or the loop stalled) this long makes Healthy() false.
    absl::Duration stall_limit = absl::Seconds(30);
    // A name for log lines ("grpc", "health").
    std::string name = "grpc";
  };

  // Binds and listens on every address. INVALID_ARGUMENT for a malformed
  // address; UNAVAILABLE when an address is in use or cannot be bound.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(Options options);
  ~Listener();  // Stop()

  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The addresses actually bound, in order (port 0 resolved; "unix:/path").
  const std::vector<std::string>& bound() const { return bound_; }

  // Starts accepting on a thread of its own; every accepted connection is
  // handed to `server`, which must stay alive until Stop returns. With
  // `tls`, connections on TCP sockets go to it instead (it must belong to
  // `server` and stay alive as long).
  void Start(grpc::Server* server, grpc::experimental::ExternalConnectionAcceptor* tls = nullptr);

  // Stops accepting and closes the listening sockets (removing Unix socket
  // files). Connections already handed over stay with the server.
  void Stop();

  bool Healthy(absl::Time now = absl::Now()) const;
  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }

 private:
  struct Socket {
    int fd = -1;
    bool is_unix = false;
    std::string path;  // unix only
    std::string text;  // bound address
  };

  explicit Listener(Options options) : options_(std::move(options)) {}
  absl::Status BindOne(const ListenAddress& address);
  void Run(grpc::Server* server, grpc::experimental::ExternalConnectionAcceptor* tls);
  // Accepts what is queued on `socket`; false when accepting failed with a
  // resource error (the caller backs off).
  bool AcceptReady(const Socket& socket, grpc::Server* server,
                   grpc::experimental::ExternalConnectionAcceptor* tls);
  void WaitForWake(absl::Duration timeout);

  const Options options_;
  std::vector<Socket> sockets_;
  std::vector<std::string> bound_;
  int wake_fd_ = -1;  // eventfd: Stop wakes the loop
  std::thread thread_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<bool> stop_{false};

  mutable absl::Mutex mu_;
  absl::Time last_loop_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time failing_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time last_error_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t failures_since_log_ ABSL_GUARDED_BY(mu_) = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit and logs both (before and
// after). Returns the soft limit in force afterwards.
uint64_t RaiseDescriptorLimit();

}  // namespace redrive

#endif  // REDRIVE_DAEMON_LISTENER_H_
