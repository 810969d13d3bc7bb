// Server: wires configuration, Redis, the gRPC services, health and
// reflection into one running daemon.
//
// Start order: Sentinel watcher (redis-sentinel:// only) → Redis executor
// and delivery engine → services → listening
// sockets (daemon/listener.h: a port in use fails the start) → TLS
// credentials (--tls-cert) → gRPC server (health, reflection, memory quota)
// → accept loops → health monitor → metrics endpoint (--metrics-listen) →
// ready file. Shutdown
// reverses it: health NOT_SERVING, Subscribe streams drain (R-B9) for the
// grace period, gRPC finishes the remaining calls, then the executor finishes
// queued Redis work and the engine stops.
//
// Thread-safe: Shutdown may be called from any thread, once.
#ifndef REDRIVE_DAEMON_SERVER_H_
#define REDRIVE_DAEMON_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/admin_service.h"
#include "daemon/broker_service.h"
#include "daemon/config.h"
#include "daemon/delivery_engine.h"
#include "daemon/health.h"
#include "daemon/listener.h"
#include "daemon/metrics.h"
#include "daemon/metrics_server.h"
#include "daemon/publisher.h"
#include "daemon/redis/executor.h"
#include "daemon/redis/sentinel.h"
#include "daemon/tls_reloader.h"

namespace redrive {

class Server {
 public:
  // `redis` is the resolved address (the embedded server's when embedded).
  // UNAVAILABLE when a listener cannot be bound (e.g. the port is in use).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Config& config,
                                                       const RedisAddress& redis);
  ~Server();

  // Addresses actually bound (port 0 resolved), in --grpc-listen order.
  const std::vector<std::string>& bound_addresses() const { return bound_; }
  // The --health-listen address actually bound; empty when none.
  const std::string& health_address() const { return health_bound_; }
  // host:port of the metrics endpoint; empty without --metrics-listen.
  std::string metrics_address() const {
    return metrics_server_ != nullptr ? metrics_server_->bound() : std::string();
  }

  // Drains Subscribe streams (up to `grace`), then stops accepting calls.
  void Shutdown(absl::Duration grace);

 private:
  Server() = default;

  // First: every Redis connection follows it (redis-sentinel:// only).
  std::shared_ptr<SentinelWatcher> sentinel_;
  // The engine and the services count into it until they are gone.
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<RedisExecutor> executor_;
  // Admin calls (scans of large DLQs) never hold up Publish.
  std::unique_ptr<RedisExecutor> admin_executor_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<DeliveryEngine> engine_;
  std::unique_ptr<RedriveJobs> jobs_;
  std::unique_ptr<BrokerService> broker_;
  std::unique_ptr<AdminService> admin_;
  // --tls-cert: the credentials of the TCP listeners, and the acceptor that
  // runs their TLS handshake inside grpc_server_.
  std::unique_ptr<TlsReloader> tls_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> tls_acceptor_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<grpc::Server> health_server_;  // --health-listen, optional
  std::unique_ptr<Listener> listener_;           // accepts for grpc_server_
  std::unique_ptr<Listener> health_listener_;    // accepts for health_server_
  std::unique_ptr<HealthMonitor> health_;
  std::unique_ptr<MetricsServer> metrics_server_;  // --metrics-listen, optional
  std::vector<std::string> bound_;
  std::string health_bound_;
  bool shut_down_ = false;
};

// Connection settings for `address` taken from the configuration;
// `sentinel` must be set for a redis-sentinel:// address.
RedisConnectionOptions MakeRedisConnectionOptions(
    const Config& config, const RedisAddress& address,
    std::shared_ptr<SentinelWatcher> sentinel = nullptr);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_SERVER_H_
