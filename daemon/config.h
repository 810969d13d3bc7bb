// redrived configuration: flags with matching environment variables (R-A4).
//
// Every option `--name` has an environment variable `REDRIVE_NAME` (upper
// case, '-' → '_'). Precedence: flag > environment > default. `--help`
// prints every option with its variable and default. The Redis password is
// taken from REDRIVE_REDIS_PASSWORD, from the file named by
// --redis-password-file / REDRIVE_REDIS_PASSWORD_FILE, or from the URL; it is
// never logged.
//
// Thread-safe: pure functions over their arguments.
#ifndef REDRIVE_DAEMON_CONFIG_H_
#define REDRIVE_DAEMON_CONFIG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/keys.h"
#include "daemon/redis/url.h"

namespace redrive {

struct PublishLimits {
  size_t max_payload_bytes = 1 << 20;
  size_t max_headers = 64;
  size_t max_header_bytes = 16 << 10;  // all keys + values of one message
  size_t max_batch_messages = 1000;
};

// TLS on the TCP gRPC listeners (R-H3). The files are PEM, read by path and
// re-read every `reload_interval_ms` (cert-manager rewrites them in place or
// swaps a symlink). Unix sockets and --health-listen stay plaintext.
struct TlsConfig {
  std::string cert_file;       // --tls-cert: the server certificate chain
  std::string key_file;        // --tls-key: its private key
  std::string client_ca_file;  // --tls-client-ca: client certificates must chain to it (mTLS)
  uint32_t reload_interval_ms = 60000;

  bool enabled() const { return !cert_file.empty(); }
  bool mutual() const { return !client_ca_file.empty(); }
};

struct Config {
  // Redis. `embedded_redis` is true when no URL (or "embedded") was given.
  bool embedded_redis = true;
  RedisAddress redis;
  std::string redis_url_redacted;
  // True when the password came from a command-line flag (visible in ps).
  bool password_on_command_line = false;
  std::string embedded_redis_binary = "redis-server";
  uint32_t redis_connect_timeout_ms = 2000;
  uint32_t redis_command_timeout_ms = 5000;
  uint32_t redis_pool_size = 4;

  // gRPC listeners: "host:port", "[v6]:port" or "unix:/path".
  std::vector<std::string> grpc_listen = {"127.0.0.1:50051"};
  // Optional second listener serving only grpc.health.v1 (for kubelet gRPC
  // probes on the pod IP while the API stays on loopback / a Unix socket).
  std::string health_listen;
  // R-G2: Prometheus /metrics on this host:port; empty = off.
  std::string metrics_listen;
  uint32_t metrics_refresh_ms = 5000;
  uint32_t metrics_max_handlers = 1000;
  // Mode of the Unix sockets in grpc_listen (chmod after bind).
  uint32_t grpc_socket_mode = 0660;
  // Memory gRPC may use for connections and requests in flight (ResourceQuota):
  // oversized or concurrent large requests are refused, not buffered.
  uint32_t grpc_memory_quota_mb = 128;
  // TLS (and mTLS) on the TCP addresses of grpc_listen; off when empty.
  TlsConfig tls;
  // Liveness fails when a listener cannot accept for this long.
  uint32_t liveness_stall_ms = 30000;
  uint32_t health_interval_ms = 1000;
  uint32_t shutdown_grace_ms = 10000;
  // Retries: mover/expiry tick, orphan sweep interval, idle consumer expiry.
  uint32_t reclaim_tick_ms = 100;
  uint32_t sweep_interval_ms = 5000;
  uint32_t consumer_expiry_ms = 600000;
  // Retry-stream entries every group has acknowledged are trimmed once they
  // are older than this (kept a while for inspection).
  uint32_t retry_retention_ms = 60000;
  // Written (atomically) once the server listens: JSON with the bound
  // addresses; for tests and supervisors. Empty = none.
  std::string ready_file;

  std::string log_level = "info";
  std::string log_format = "text";  // text | json

  // Admin service protection (R-A5, R-H3): a bearer token from
  // --admin-token-file or REDRIVE_ADMIN_TOKEN; `admin_auth_disabled` only
  // with --admin-auth=disabled (local development). Never logged.
  bool admin_auth_disabled = false;
  std::string admin_token;
  std::string admin_token_file;
  // Broker protection (--broker-auth=token): Publish, Subscribe and Tail need the
  // bearer token from --broker-token-file or REDRIVE_BROKER_TOKEN.
  bool broker_auth = false;
  std::string broker_token;
  std::string broker_token_file;
  // A dead letter redriven this many times is quarantined (R-E2).
  uint32_t max_redrives = 5;

  PublishLimits publish;
  KeyStyle key_style = KeyStyle::kEggAI;
  // --key-template (or its variable) was given. Without it a Redis Cluster
  // gets the cluster template; with eggai it is refused (config.cc, server.cc).
  bool key_template_set = false;
  // Part of every consumer name; default "{hostname}-{pid}".
  std::string instance_id;
};

enum class ParseOutcome { kRun, kHelp, kVersion };

struct ParsedConfig {
  ParseOutcome outcome = ParseOutcome::kRun;
  Config config;
};

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// The process environment.
EnvLookup ProcessEnv();

// INVALID_ARGUMENT naming the option for unknown flags, bad numbers, values
// out of range, a malformed Redis URL (rediss:// included: hiredis 0.14 has
// no TLS), an unreadable password, token or TLS file, or TLS options that do
// not go together. What the TLS files hold is checked by CheckTlsFiles
// (daemon/tls_files.h).
absl::StatusOr<ParsedConfig> ParseConfig(const std::vector<std::string>& args,
                                         const EnvLookup& env);

// On a Redis Cluster (a redis-cluster:// URL, or a redis:// node found to be
// one at start-up): selects the cluster key template when --key-template
// was not given; FAILED_PRECONDITION explaining why when it was given as
// eggai.
absl::Status RequireClusterKeys(Config& c);

// The --help text: every option, its environment variable and default.
std::string ConfigHelp();

}  // namespace redrive

#endif  // REDRIVE_DAEMON_CONFIG_H_
