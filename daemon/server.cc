#include "daemon/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "daemon/handler_catalogue.h"
#include "daemon/listen_address.h"
#include "daemon/logging.h"
#include "daemon/redis/connect.h"
#include "daemon/redis/connection.h"
#include "daemon/redis/keyspace.h"
#include "grpc/health/v1/health.pb.h"

namespace redrive {
namespace {

// grpc.health.v1 service names. "liveness": the process works and its
// listeners accept (Kubernetes livenessProbe; independent of Redis). The
// others also need Redis to answer (readinessProbe, and "" for clients that
// ask about the whole server).
constexpr const char* kLivenessService = "liveness";
constexpr const char* kReadinessServices[] = {"", "readiness", "redrive.v1.Broker",
                                              "redrive.v1.Admin"};

absl::Status WriteReadyFile(const std::string& path, const std::vector<std::string>& bound,
                            const std::string& health, const std::string& metrics,
                            const std::string& redis) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "{\"grpc\":[";
    for (size_t i = 0; i < bound.size(); ++i) {
      out << (i ? "," : "") << "\"" << JsonEscape(bound[i]) << "\"";
    }
    out << "],\"health\":\"" << JsonEscape(health) << "\",\"metrics\":\"" << JsonEscape(metrics)
        << "\",\"pid\":" << getpid() << ",\"redis\":\"" << JsonEscape(redis) << "\"}\n";
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

// Reads every registered handler's gauges (what ListHandlers reports) into
// `metrics`, on the metrics server's refresh thread with its own connection.
std::function<void()> MakeGaugeCollector(const Config& config, const RedisConnectionOptions& redis,
                                         DeliveryEngine& engine, Metrics& metrics) {
  std::shared_ptr<RedisCommander> connection = OpenRedis(redis);
  CatalogueOptions catalogue{config.key_style, config.instance_id, nullptr};
  return [connection, catalogue, &engine, &metrics] {
    std::vector<LocalHandler> local;
    for (const Dispatcher::HandlerSnapshot& s : engine.Snapshot()) {
      local.push_back(
          LocalHandler{s.channel, s.handler_id, s.consumer, s.sessions,
                       static_cast<uint32_t>(std::min<uint64_t>(s.in_flight, UINT32_MAX))});
    }
    absl::StatusOr<std::vector<v1::HandlerInfo>> infos =
        ListHandlers(*connection, "", local, catalogue);
    if (!infos.ok()) {
      metrics.daemon().collect_errors.Add();
      spdlog::debug("metrics: reading the handlers' gauges failed: {}",
                    std::string(infos.status().message()));
      return;
    }
    std::vector<HandlerGauges> gauges;
    gauges.reserve(infos->size());
    for (const v1::HandlerInfo& info : *infos) {
      HandlerGauges g;
      g.channel = info.handler().channel();
      g.handler_id = info.handler().handler_id();
      g.in_flight = info.in_flight();
      g.connected_streams = info.connected_streams();
      g.pending = static_cast<int64_t>(info.pending());
      g.lag = info.lag();
      g.retry_depth = static_cast<int64_t>(info.retry_depth());
      g.dlq_depth = static_cast<int64_t>(info.dlq_depth());
      g.oldest_dead_letter_age_seconds =
          static_cast<double>(info.oldest_dead_letter_age_ms()) / 1000.0;
      g.paused = info.paused();
      gauges.push_back(std::move(g));
    }
    metrics.SetHandlerGauges(std::move(gauges));
  };
}

}  // namespace

RedisConnectionOptions MakeRedisConnectionOptions(const Config& config, const RedisAddress& address,
                                                  std::shared_ptr<SentinelWatcher> sentinel) {
  RedisConnectionOptions o;
  o.address = address;
  o.sentinel = std::move(sentinel);
  o.connect_timeout = absl::Milliseconds(config.redis_connect_timeout_ms);
  o.command_timeout = absl::Milliseconds(config.redis_command_timeout_ms);
  o.client_name = absl::StrCat("redrive-", config.instance_id);
  return o;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Config& given_config,
                                                      const RedisAddress& given_redis) {
  std::unique_ptr<Server> s(new Server());
  Config config = given_config;
  RedisAddress redis = given_redis;
  if (redis.is_sentinel()) {
    SentinelWatcher::Options watch;
    watch.sentinel = redis.sentinel;
    watch.timeout =
        std::min(absl::Milliseconds(500), absl::Milliseconds(config.redis_connect_timeout_ms));
    s->sentinel_ = SentinelWatcher::Start(std::move(watch));
  }
  auto connection_options = [&config, &redis, &s] {
    return MakeRedisConnectionOptions(config, redis, s->sentinel_);
  };
  if (!redis.is_cluster() && !redis.is_sentinel()) {
    // A redis:// node that is a Redis Cluster node makes redrived run in
    // cluster mode with it as the seed (when Redis does not answer now and
    // turns out to be one later, readiness stays NOT_SERVING: health.cc).
    RedisConnectionOptions probe_options = connection_options();
    probe_options.address.db = 0;  // a cluster node refuses SELECT
    RedisConnection probe(probe_options);
    if (Ping(probe).ok() && absl::IsFailedPrecondition(CheckNotClusterNode(probe))) {
      if (redis.is_unix()) {
        return absl::FailedPreconditionError(
            "--redis-url: this Redis is a Redis Cluster node, reached through a unix socket; "
            "a cluster's nodes announce host:port addresses: give them as "
            "--redis-url=redis-cluster://host:port[,host:port]");
      }
      if (redis.db != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "--redis-url: this Redis is a Redis Cluster node, which has only database 0, got /",
            redis.db));
      }
      redis.cluster_seeds = {HostPort{redis.host, redis.port}};
      if (absl::Status keys = RequireClusterKeys(config); !keys.ok()) {
        return absl::FailedPreconditionError(absl::StrCat("--key-template: ", keys.message()));
      }
      spdlog::info("{} is a Redis Cluster node: routing by slot with the cluster key template",
                   redis.Redacted());
    }
  }
  MetricsOptions metrics;
  metrics.max_handlers = config.metrics_max_handlers;
  metrics.version = REDRIVE_VERSION;
  metrics.revision = REDRIVE_REVISION;
  s->metrics_ = std::make_unique<Metrics>(std::move(metrics));
  RedisExecutor::Options exec;
  exec.connection = connection_options();
  exec.threads = config.redis_pool_size;
  s->executor_ = std::make_unique<RedisExecutor>(std::move(exec));
  RedisExecutor::Options admin_exec;
  admin_exec.connection = connection_options();
  admin_exec.threads = 2;
  admin_exec.max_queue = 1000;
  s->admin_executor_ = std::make_unique<RedisExecutor>(std::move(admin_exec));
  s->publisher_ = std::make_unique<Publisher>(config.publish, config.key_style);
  DeliveryEngine::Options engine;
  engine.redis = connection_options();
  engine.dispatcher.instance_id = config.instance_id;
  engine.dispatcher.tick = absl::Milliseconds(config.reclaim_tick_ms);
  engine.dispatcher.min_sweep = absl::Milliseconds(config.sweep_interval_ms);
  engine.dispatcher.consumer_expiry = absl::Milliseconds(config.consumer_expiry_ms);
  engine.dispatcher.retry_retention = absl::Milliseconds(config.retry_retention_ms);
  engine.dispatcher.metrics = s->metrics_.get();
  s->engine_ = std::make_unique<DeliveryEngine>(std::move(engine));
  s->broker_ = std::make_unique<BrokerService>(
      *s->publisher_, *s->executor_, *s->engine_, config.key_style, config.instance_id,
      AdminAuth(!config.broker_auth, config.broker_token, "broker"), &s->metrics_->daemon());
  RedriveJobs::Options jobs;
  jobs.redis = connection_options();
  jobs.instance_id = config.instance_id;
  jobs.max_redrives = config.max_redrives;
  jobs.metrics = s->metrics_.get();
  jobs.step_records = redis.is_cluster();
  s->jobs_ = std::make_unique<RedriveJobs>(std::move(jobs));
  AdminService::Options admin;
  admin.key_style = config.key_style;
  admin.instance_id = config.instance_id;
  admin.auth_disabled = config.admin_auth_disabled;
  admin.token = config.admin_token;
  admin.max_redrives = config.max_redrives;
  admin.metrics = s->metrics_.get();
  if (admin.auth_disabled) {
    spdlog::warn("--admin-auth=disabled: Admin RPCs need no token (local development only)");
  } else if (admin.token.empty()) {
    spdlog::warn("no admin token configured: every Admin RPC is refused (UNAUTHENTICATED)");
  }
  s->admin_ =
      std::make_unique<AdminService>(std::move(admin), *s->admin_executor_, *s->engine_, *s->jobs_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Reflection finds a service's descriptor in the generated pool; the health
  // descriptor is only linked in when something references it.
  grpc::health::v1::HealthCheckRequest::descriptor();

  for (const std::string& address : config.grpc_listen) {
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(address);
    if (!parsed.ok()) continue;  // Listener::Bind reports it
    if (std::string warning = ExposureWarning(*parsed, config.broker_auth); !warning.empty()) {
      spdlog::warn("{}", warning);
    }
  }
  Listener::Options listen;
  listen.addresses = config.grpc_listen;
  listen.unix_socket_mode = config.grpc_socket_mode;
  listen.stall_limit = absl::Milliseconds(config.liveness_stall_ms);
  absl::StatusOr<std::unique_ptr<Listener>> listener = Listener::Bind(std::move(listen));
  if (!listener.ok()) return listener.status();
  s->listener_ = *std::move(listener);

  grpc::ServerBuilder builder;
  if (config.tls.enabled()) {
    absl::StatusOr<std::unique_ptr<TlsReloader>> tls = TlsReloader::Start(config.tls);
    if (!tls.ok()) return tls.status();
    s->tls_ = *std::move(tls);
    s->tls_acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
        s->tls_->credentials());
  }
  // Bounds what gRPC buffers for requests being received: a huge or many
  // concurrent large requests are refused instead of filling memory.
  grpc::ResourceQuota quota("redrived");
  quota.Resize(static_cast<size_t>(config.grpc_memory_quota_mb) << 20);
  builder.SetResourceQuota(quota);
  const size_t max_message = std::max<size_t>(
      4u << 20, config.publish.max_payload_bytes + config.publish.max_header_bytes + (64u << 10));
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(max_message, INT32_MAX)));
  builder.RegisterService(s->broker_.get());
  builder.RegisterService(s->admin_.get());
  s->grpc_server_ = builder.BuildAndStart();
  if (s->grpc_server_ == nullptr) {
    return absl::UnavailableError("cannot start the gRPC server");
  }
  s->listener_->Start(s->grpc_server_.get(), s->tls_acceptor_.get());
  s->bound_ = s->listener_->bound();

  std::vector<grpc::HealthCheckServiceInterface*> health_services = {
      s->grpc_server_->GetHealthCheckService()};
  if (!config.health_listen.empty()) {
    Listener::Options health_listen;
    health_listen.addresses = {config.health_listen};
    health_listen.stall_limit = absl::Milliseconds(config.liveness_stall_ms);
    health_listen.name = "health";
    absl::StatusOr<std::unique_ptr<Listener>> bound = Listener::Bind(std::move(health_listen));
    if (!bound.ok()) return bound.status();
    s->health_listener_ = *std::move(bound);
    grpc::ServerBuilder health_builder;
    health_builder.SetResourceQuota(quota);
    s->health_server_ = health_builder.BuildAndStart();
    if (s->health_server_ == nullptr) {
      return absl::UnavailableError("cannot start the health gRPC server");
    }
    s->health_listener_->Start(s->health_server_.get());
    s->health_bound_ = s->health_listener_->bound().front();
    health_services.push_back(s->health_server_->GetHealthCheckService());
  }
  Server* raw = s.get();
  s->health_ = std::make_unique<HealthMonitor>(
      connection_options(), absl::Milliseconds(config.health_interval_ms),
      [raw] {
        const absl::Time now = absl::Now();
        return raw->listener_->Healthy(now) &&
               (raw->health_listener_ == nullptr || raw->health_listener_->Healthy(now));
      },
      [health_services](HealthMonitor::State state) {
        const bool ready = state.redis_ok && state.live;
        for (grpc::HealthCheckServiceInterface* h : health_services) {
          h->SetServingStatus(kLivenessService, state.live);
          for (const char* name : kReadinessServices) h->SetServingStatus(name, ready);
        }
      },
      [&daemon = s->metrics_->daemon()](bool ok, absl::Duration rtt) {
        daemon.redis_up.Set(ok ? 1 : 0);
        if (ok) daemon.redis_rtt.Observe(rtt);
      });
  if (!config.metrics_listen.empty()) {
    MetricsServer::Options metrics_options;
    metrics_options.listen = config.metrics_listen;
    metrics_options.refresh = absl::Milliseconds(config.metrics_refresh_ms);
    metrics_options.collect =
        MakeGaugeCollector(config, connection_options(), *raw->engine_, *raw->metrics_);
    absl::StatusOr<std::unique_ptr<MetricsServer>> started =
        MetricsServer::Start(std::move(metrics_options), *s->metrics_);
    if (!started.ok()) return started.status();
    s->metrics_server_ = *std::move(started);
  }
  spdlog::info("redrived listening on {}{} (redis {}, health {})", absl::StrJoin(s->bound_, ", "),
               !config.tls.enabled() ? ""
               : config.tls.mutual() ? "; TCP with mTLS, Unix sockets plaintext"
                                     : "; TCP with TLS, Unix sockets plaintext",
               config.embedded_redis ? "embedded" : redis.Redacted(),
               s->health_->redis_ok() ? "SERVING" : "NOT_SERVING");
  if (!config.ready_file.empty()) {
    if (absl::Status st = WriteReadyFile(config.ready_file, s->bound_, s->health_bound_,
                                         s->metrics_address(), redis.Redacted());
        !st.ok()) {
      return st;
    }
  }
  return s;
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  health_.reset();  // no more status flips
  for (grpc::Server* server : {grpc_server_.get(), health_server_.get()}) {
    if (server == nullptr) continue;
    if (grpc::HealthCheckServiceInterface* h = server->GetHealthCheckService()) {
      h->Shutdown();  // everything NOT_SERVING from here on
    }
  }
  engine_->Drain(grace);
  listener_->Stop();  // new connections are refused from here on
  grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  grpc_server_->Wait();
  jobs_.reset();  // running jobs stay RUNNING in Redis: the next daemon resumes them
  if (health_server_ != nullptr) {
    health_listener_->Stop();
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }
  executor_->Stop();
  admin_executor_->Stop();
  metrics_server_.reset();  // its collector reads the engine
  engine_.reset();
}

Server::~Server() {
  if (grpc_server_ != nullptr) Shutdown(absl::ZeroDuration());
}

}  // namespace redrive
