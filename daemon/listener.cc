#include "daemon/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/errno_message.h"

namespace redrive {
namespace {

constexpr absl::Duration kMinBackoff = absl::Milliseconds(10);
constexpr absl::Duration kMaxBackoff = absl::Milliseconds(100);
// Connections taken from one socket before the others get a turn.
constexpr int kAcceptBurst = 64;

bool IsResourceError(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// A Unix socket file nobody accepts on (left by a killed daemon).
bool IsStaleUnixSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return !live;
}

std::string FormatTcp(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return absl::StrCat("[", host, "]:", ntohs(in6->sin6_port));
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
  return absl::StrCat(host, ":", ntohs(in4->sin_port));
}

}  // namespace

uint64_t RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("getrlimit(RLIMIT_NOFILE): {}", ErrnoMessage(errno));
    return 0;
  }
  const rlim_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      spdlog::warn("cannot raise the open-file limit from {} to {}: {}", before, limit.rlim_max,
                   ErrnoMessage(errno));
      limit.rlim_cur = before;
    }
  }
  spdlog::info("open-file limit: soft {} (was {}), hard {}", limit.rlim_cur, before,
               limit.rlim_max);
  return limit.rlim_cur;
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(Options options) {
  std::unique_ptr<Listener> l(new Listener(std::move(options)));
  for (const std::string& text : l->options_.addresses) {
    absl::StatusOr<ListenAddress> address = ParseListenAddress(text);
    if (!address.ok()) return address.status();
    if (absl::Status s = l->BindOne(*address); !s.ok()) return s;
  }
  l->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (l->wake_fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("eventfd: ", ErrnoMessage(errno)));
  }
  return l;
}

absl::Status Listener::BindOne(const ListenAddress& address) {
  if (address.is_unix) {
    sockaddr_un addr{};
    if (address.path.size() >= sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unix socket path longer than ", sizeof(addr.sun_path) - 1, " bytes: ", address.path));
    }
    if (IsStaleUnixSocket(address.path)) unlink(address.path.c_str());
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", ErrnoMessage(errno)));
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, address.path.c_str(), sizeof(addr.sun_path) - 1);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      const int err = errno;
      close(fd);
      return absl::UnavailableError(
          absl::StrCat("cannot listen on unix:", address.path, ": ", ErrnoMessage(err),
                       err == EADDRINUSE ? " (another process is serving on it)" : ""));
    }
    if (chmod(address.path.c_str(), options_.unix_socket_mode) != 0 || listen(fd, SOMAXCONN) != 0) {
      const int err = errno;
      close(fd);
      unlink(address.path.c_str());
      return absl::UnavailableError(
          absl::StrCat("cannot listen on unix:", address.path, ": ", ErrnoMessage(err)));
    }
    sockets_.push_back({fd, true, address.path, absl::StrCat("unix:", address.path)});
    bound_.push_back(sockets_.back().text);
    return absl::OkStatus();
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address.text, ": ", gai_strerror(rc)));
  }
  int bound_port = address.port;  // every address of one name shares the port
  size_t bound_here = 0;
  std::string last_error;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    sockaddr_storage sa{};
    std::memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    if (sa.ss_family == AF_INET6) {
      reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port = htons(static_cast<uint16_t>(bound_port));
    } else {
      reinterpret_cast<sockaddr_in*>(&sa)->sin_port = htons(static_cast<uint16_t>(bound_port));
    }
    const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = ErrnoMessage(errno);
      continue;
    }
    // SO_REUSEADDR (TIME_WAIT rebinding) but never SO_REUSEPORT: a port in
    // use by another live listener must fail here.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), ai->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
      const int err = errno;
      close(fd);
      if (err == EADDRINUSE) {
        freeaddrinfo(found);
        return absl::UnavailableError(
            absl::StrCat("cannot listen on ", address.text,
                         ": address already in use (is another redrived "
                         "running? choose another port with --grpc-listen)"));
      }
      // An address family the host lacks (e.g. ::1 without IPv6) is skipped
      // as long as one address of the name binds.
      last_error = ErrnoMessage(err);
      continue;
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    bound_port = sa.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port)
                                          : ntohs(reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
    sockets_.push_back({fd, false, "", FormatTcp(reinterpret_cast<sockaddr*>(&sa))});
    ++bound_here;
  }
  freeaddrinfo(found);
  if (bound_here == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address.text, ": ",
                                               last_error.empty() ? "no address" : last_error));
  }
  // One entry per configured address, with the port resolved.
  const size_t colon = address.text.rfind(':');
  bound_.push_back(absl::StrCat(address.text.substr(0, colon + 1), bound_port));
  return absl::OkStatus();
}

Listener::~Listener() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Listener::Start(grpc::Server* server, grpc::experimental::ExternalConnectionAcceptor* tls) {
  {
    absl::MutexLock lock(&mu_);
    last_loop_ = absl::Now();
  }
  thread_ = std::thread([this, server, tls] { Run(server, tls); });
}

void Listener::Stop() {
  if (!stop_.exchange(true) && thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  for (Socket& s : sockets_) {
    if (s.fd < 0) continue;
    close(s.fd);
    s.fd = -1;
    if (s.is_unix) unlink(s.path.c_str());
  }
}

bool Listener::Healthy(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  if (now - last_loop_ > options_.stall_limit) return false;
  return failing_since_ == absl::InfiniteFuture() || now - failing_since_ <= options_.stall_limit;
}

void Listener::WaitForWake(absl::Duration timeout) {
  pollfd p{wake_fd_, POLLIN, 0};
  poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
}

bool Listener::AcceptReady(const Socket& socket, grpc::Server* server,
                           grpc::experimental::ExternalConnectionAcceptor* tls) {
  for (int i = 0; i < kAcceptBurst; ++i) {
    const int fd = accept4(socket.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      if (!socket.is_unix) {
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
      if (tls != nullptr && !socket.is_unix) {
        // gRPC owns `fd` from here on and runs the TLS handshake on it.
        grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters connection;
        connection.listener_fd = socket.fd;
        connection.fd = fd;
        tls->HandleNewConnection(&connection);
      } else {
        grpc::AddInsecureChannelFromFd(server, fd);
      }
      accepted_.fetch_add(1, std::memory_order_relaxed);
      absl::MutexLock lock(&mu_);
      if (failing_since_ != absl::InfiniteFuture()) {
        spdlog::info("{} listener {}: accepting again after {} failed accepts", options_.name,
                     socket.text, failures_since_log_);
        failing_since_ = absl::InfiniteFuture();
        failures_since_log_ = 0;
        last_error_log_ = absl::InfinitePast();
      }
      continue;
    }
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return true;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) continue;
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&mu_);
    if (failing_since_ == absl::InfiniteFuture()) failing_since_ = now;
    ++failures_since_log_;
    if (now - last_error_log_ >= absl::Seconds(10)) {
      spdlog::error("{} listener {}: accept failed: {}{}; retrying ({} failures so far)",
                    options_.name, socket.text, ErrnoMessage(err),
                    IsResourceError(err) ? " (raise the open-file limit or close connections)" : "",
                    failures_since_log_);
      last_error_log_ = now;
    }
    return false;
  }
  return true;
}

void Listener::Run(grpc::Server* server, grpc::experimental::ExternalConnectionAcceptor* tls) {
  std::vector<pollfd> fds;
  for (const Socket& s : sockets_) fds.push_back({s.fd, POLLIN, 0});
  fds.push_back({wake_fd_, POLLIN, 0});
  absl::Duration backoff = kMinBackoff;
  while (!stop_.load()) {
    {
      absl::MutexLock lock(&mu_);
      last_loop_ = absl::Now();
    }
    for (pollfd& p : fds) p.revents = 0;
    const int n = poll(fds.data(), fds.size(), 1000);
    if (n < 0 && errno != EINTR) {
      spdlog::error("{} listener: poll: {}", options_.name, ErrnoMessage(errno));
      WaitForWake(kMaxBackoff);
      continue;
    }
    if (stop_.load()) break;
    bool failed = false;
    for (size_t i = 0; i < sockets_.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLERR)) == 0) continue;
      if (!AcceptReady(sockets_[i], server, tls)) failed = true;
    }
    if (failed) {
      // The socket stays readable while descriptors are short: wait before
      // the next try instead of spinning.
      WaitForWake(backoff);
      backoff = std::min(backoff * 2, kMaxBackoff);
    } else {
      backoff = kMinBackoff;
    }
  }
}

}  // namespace redrive
