#include "daemon/metrics_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/listen_address.h"

namespace redrive {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// host:port of a bound socket.
std::string SocketName(evutil_socket_t fd, const std::string& host) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return host;
  int port = 0;
  if (addr.ss_family == AF_INET) {
    port = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    port = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  }
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port)
                                             : absl::StrCat(host, ":", port);
}

void Serve(evhttp_request* req, void* arg) {
  const auto* metrics = static_cast<const Metrics*>(arg);
  const char* uri = evhttp_request_get_uri(req);
  evhttp_uri* parsed = uri != nullptr ? evhttp_uri_parse(uri) : nullptr;
  const char* path = parsed != nullptr ? evhttp_uri_get_path(parsed) : nullptr;
  const bool is_metrics = path != nullptr && std::strcmp(path, "/metrics") == 0;
  if (parsed != nullptr) evhttp_uri_free(parsed);
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  if (!is_metrics) {
    evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
    evbuffer* body = evbuffer_new();
    evbuffer_add_printf(body, "not found: metrics are at /metrics\n");
    evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", body);
    evbuffer_free(body);
    return;
  }
  const evhttp_cmd_type method = evhttp_request_get_command(req);
  if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
    evhttp_add_header(headers, "Allow", "GET, HEAD");
    evhttp_send_reply(req, 405, "Method Not Allowed", nullptr);
    return;
  }
  const std::string text = metrics->Render();
  evhttp_add_header(headers, "Content-Type", kContentType);
  evbuffer* body = evbuffer_new();
  evbuffer_add(body, text.data(), text.size());
  evhttp_send_reply(req, HTTP_OK, "OK", body);
  evbuffer_free(body);
}

void StopLoop(evutil_socket_t /*fd*/, short /*what*/, void* arg) {
  event_base_loopbreak(static_cast<event_base*>(arg));
}

}  // namespace

MetricsServer::MetricsServer(Options options, const Metrics& metrics)
    : options_(std::move(options)), metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(Options options,
                                                                    const Metrics& metrics) {
  absl::StatusOr<ListenAddress> address = ParseListenAddress(options.listen);
  if (!address.ok()) return address.status();
  if (address->is_unix) {
    return absl::InvalidArgumentError("--metrics-listen must be host:port");
  }
  static const bool threads = [] { return evthread_use_pthreads() == 0; }();
  if (!threads) return absl::InternalError("libevent has no pthreads support");
  std::unique_ptr<MetricsServer> s(new MetricsServer(std::move(options), metrics));
  s->base_ = event_base_new();
  s->http_ = s->base_ != nullptr ? evhttp_new(s->base_) : nullptr;
  if (s->http_ == nullptr) return absl::InternalError("cannot create the metrics HTTP server");
  evhttp_set_allowed_methods(s->http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
  evhttp_set_timeout(s->http_, 30);
  evhttp_set_gencb(s->http_, &Serve, const_cast<Metrics*>(&s->metrics_));
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(s->http_, address->host.c_str(),
                                                              static_cast<uint16_t>(address->port));
  if (bound == nullptr) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen ", s->options_.listen,
                                               ": cannot bind (", std::strerror(errno), ")"));
  }
  s->bound_ = SocketName(evhttp_bound_socket_get_fd(bound), address->host);
  s->stop_event_ = event_new(s->base_, -1, 0, &StopLoop, s->base_);
  if (s->options_.collect) s->options_.collect();  // the first scrape has gauges
  MetricsServer* raw = s.get();
  s->http_thread_ = std::thread([raw] { event_base_dispatch(raw->base_); });
  if (s->options_.collect) s->collect_thread_ = std::thread([raw] { raw->Collect(); });
  spdlog::info("metrics at http://{}/metrics", s->bound_);
  return s;
}

void MetricsServer::Collect() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.refresh)) return;
    }
    options_.collect();
  }
}

MetricsServer::~MetricsServer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (collect_thread_.joinable()) collect_thread_.join();
  if (http_thread_.joinable()) {
    event_active(stop_event_, EV_READ, 0);
    http_thread_.join();
  }
  if (stop_event_ != nullptr) event_free(stop_event_);
  if (http_ != nullptr) evhttp_free(http_);
  if (base_ != nullptr) event_base_free(base_);
}

}  // namespace redrive
