#include "daemon/config.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "daemon/errno_message.h"
#include "daemon/listen_address.h"

namespace redrive {
namespace {

// Values that need resolving after all options are read.
struct Raw {
  std::string redis_url;
  bool redis_url_from_flag = false;
  std::string password_file;
};

using Setter = std::function<absl::Status(absl::string_view, Config&, Raw&)>;

struct OptionSpec {
  const char* name;  // flag name without "--"
  const char* default_text;
  const char* help;
  Setter set;
};

absl::Status BadValue(absl::string_view name, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", why));
}

// An unsigned integer option within [lo, hi]; `field(config)` is the target.
template <typename F>
Setter UintIn(const char* name, F field, uint64_t lo, uint64_t hi) {
  return [=](absl::string_view v, Config& c, Raw&) -> absl::Status {
    uint64_t n = 0;
    if (v.empty() || v.find_first_not_of("0123456789") != absl::string_view::npos ||
        !absl::SimpleAtoi(v, &n)) {
      return BadValue(name, absl::StrCat("'", v, "' is not a whole number"));
    }
    if (n < lo || n > hi) {
      return BadValue(name, absl::StrCat(n, " is outside ", lo, "..", hi));
    }
    auto& target = field(c);
    target = static_cast<std::remove_reference_t<decltype(target)>>(n);
    return absl::OkStatus();
  };
}

#define REDRIVE_FIELD(expr) ([](Config & c) -> auto& { return c.expr; })

const std::vector<OptionSpec>& Options() {
  static const auto* options = new std::vector<OptionSpec>{
      {"redis-url", "embedded",
       "Redis to use: redis://[user:password@]host:port/db, unix:///path?db=N, "
       "redis-sentinel://[user:password@]host:port[,host:port...]/master[/db]"
       "[?sentinel_password=P] (the primary Sentinel names, followed across "
       "failovers), or 'embedded' to start a private redis-server on a Unix socket in a "
       "temporary directory (stopped with the daemon). Prefer "
       "REDRIVE_REDIS_PASSWORD(_FILE) to a password in the URL.",
       [](absl::string_view v, Config&, Raw& r) {
         r.redis_url = std::string(v);
         return absl::OkStatus();
       }},
      {"redis-password-file", "",
       "File holding the Redis password (trailing newline ignored). The "
       "variable REDRIVE_REDIS_PASSWORD may hold it directly.",
       [](absl::string_view v, Config&, Raw& r) {
         r.password_file = std::string(v);
         return absl::OkStatus();
       }},
      {"redis-connect-timeout-ms", "2000", "Redis connect timeout (100..60000).",
       UintIn("redis-connect-timeout-ms", REDRIVE_FIELD(redis_connect_timeout_ms), 100, 60000)},
      {"redis-command-timeout-ms", "5000", "Redis command timeout (100..600000).",
       UintIn("redis-command-timeout-ms", REDRIVE_FIELD(redis_command_timeout_ms), 100, 600000)},
      {"redis-pool-size", "4", "Redis connections (and worker threads) serving unary RPCs (1..64).",
       UintIn("redis-pool-size", REDRIVE_FIELD(redis_pool_size), 1, 64)},
      {"embedded-redis-binary", "redis-server",
       "redis-server executable used for --redis-url=embedded.",
       [](absl::string_view v, Config& c, Raw&) {
         if (v.empty()) return BadValue("embedded-redis-binary", "empty");
         c.embedded_redis_binary = std::string(v);
         return absl::OkStatus();
       }},
      {"grpc-listen", "127.0.0.1:50051",
       "Comma-separated gRPC listen addresses: host:port, [v6]:port or "
       "unix:/path. Port 0 picks a free port (see --ready-file). A port in use "
       "is a start-up error. A non-loopback address exposes the Broker to the "
       "network: protect it with --broker-auth=token.",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         c.grpc_listen.clear();
         for (absl::string_view a : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
           a = absl::StripAsciiWhitespace(a);
           if (absl::StatusOr<ListenAddress> parsed = ParseListenAddress(a); !parsed.ok()) {
             return BadValue("grpc-listen", parsed.status().message());
           }
           c.grpc_listen.emplace_back(a);
         }
         if (c.grpc_listen.empty()) return BadValue("grpc-listen", "no address");
         return absl::OkStatus();
       }},
      {"grpc-socket-mode", "0660",
       "Permission bits (octal) of the Unix sockets in --grpc-listen, so an app "
       "running as another user of the same group can connect (0600..0777).",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         uint32_t mode = 0;
         if (v.empty() || v.size() > 4 ||
             v.find_first_not_of("01234567") != absl::string_view::npos) {
           return BadValue("grpc-socket-mode", absl::StrCat("'", v, "' is not an octal mode"));
         }
         for (char ch : v) mode = mode * 8 + static_cast<uint32_t>(ch - '0');
         if ((mode & 0600) != 0600 || mode > 0777) {
           return BadValue("grpc-socket-mode",
                           "must keep owner read/write (0600) and have no special bits");
         }
         c.grpc_socket_mode = mode;
         return absl::OkStatus();
       }},
      {"grpc-memory-quota-mb", "128",
       "Memory gRPC may hold for connections and requests being received; beyond "
       "it large requests are refused (RESOURCE_EXHAUSTED) instead of buffered "
       "(16..65536).",
       UintIn("grpc-memory-quota-mb", REDRIVE_FIELD(grpc_memory_quota_mb), 16, 65536)},
      {"tls-cert", "",
       "PEM certificate chain served on the TCP addresses of --grpc-listen (TLS); needs "
       "--tls-key. Unix sockets and --health-listen stay plaintext. Re-read every "
       "--tls-reload-interval-ms.",
       [](absl::string_view v, Config& c, Raw&) {
         c.tls.cert_file = std::string(v);
         return absl::OkStatus();
       }},
      {"tls-key", "", "PEM private key of --tls-cert.",
       [](absl::string_view v, Config& c, Raw&) {
         c.tls.key_file = std::string(v);
         return absl::OkStatus();
       }},
      {"tls-client-ca", "",
       "PEM CA bundle for mutual TLS: clients must present a certificate that chains to it, "
       "or the connection is refused. Needs --tls-cert.",
       [](absl::string_view v, Config& c, Raw&) {
         c.tls.client_ca_file = std::string(v);
         return absl::OkStatus();
       }},
      {"tls-reload-interval-ms", "60000",
       "How often the TLS files are checked for new contents; new connections get a "
       "rotated certificate within this time (1000..86400000, whole seconds).",
       [](absl::string_view v, Config& config, Raw& r) -> absl::Status {
         if (absl::Status s =
                 UintIn("tls-reload-interval-ms", REDRIVE_FIELD(tls.reload_interval_ms), 1000,
                        86400000)(v, config, r);
             !s.ok()) {
           return s;
         }
         if (config.tls.reload_interval_ms % 1000 != 0) {
           return BadValue("tls-reload-interval-ms",
                           absl::StrCat(config.tls.reload_interval_ms,
                                        " is not a whole number of seconds (gRPC's certificate "
                                        "watcher counts seconds)"));
         }
         return absl::OkStatus();
       }},
      {"health-listen", "",
       "Optional host:port of a listener that serves only grpc.health.v1, "
       "for Kubernetes gRPC probes (e.g. 0.0.0.0:8081). Empty = none.",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         if (!v.empty()) {
           absl::StatusOr<ListenAddress> parsed = ParseListenAddress(v);
           if (!parsed.ok()) return BadValue("health-listen", parsed.status().message());
           if (parsed->is_unix) return BadValue("health-listen", "must be host:port");
         }
         c.health_listen = std::string(v);
         return absl::OkStatus();
       }},
      {"liveness-stall-ms", "30000",
       "The 'liveness' health service turns NOT_SERVING when a listener has not "
       "been able to accept connections for this long (1000..600000).",
       UintIn("liveness-stall-ms", REDRIVE_FIELD(liveness_stall_ms), 1000, 600000)},
      {"health-interval-ms", "1000",
       "How often Redis is pinged for the health service (50..60000).",
       UintIn("health-interval-ms", REDRIVE_FIELD(health_interval_ms), 50, 60000)},
      {"metrics-listen", "",
       "Optional host:port of an HTTP listener serving Prometheus metrics at /metrics "
       "(e.g. 0.0.0.0:9464). Empty = no metrics endpoint.",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         if (!v.empty()) {
           absl::StatusOr<ListenAddress> parsed = ParseListenAddress(v);
           if (!parsed.ok()) return BadValue("metrics-listen", parsed.status().message());
           if (parsed->is_unix) return BadValue("metrics-listen", "must be host:port");
         }
         c.metrics_listen = std::string(v);
         return absl::OkStatus();
       }},
      {"metrics-refresh-ms", "5000",
       "How often the gauges read from Redis (pending, lag, retry and DLQ depth, oldest "
       "dead letter) are refreshed for /metrics (100..600000).",
       UintIn("metrics-refresh-ms", REDRIVE_FIELD(metrics_refresh_ms), 100, 600000)},
      {"metrics-max-handlers", "1000",
       "Most handlers with their own metric series; further handlers are counted under "
       "handler=\"_overflow\" (1..100000).",
       UintIn("metrics-max-handlers", REDRIVE_FIELD(metrics_max_handlers), 1, 100000)},
      {"shutdown-grace-ms", "10000",
       "On SIGTERM/SIGINT, how long in-flight calls may finish (0..600000).",
       UintIn("shutdown-grace-ms", REDRIVE_FIELD(shutdown_grace_ms), 0, 600000)},
      {"reclaim-tick-ms", "100",
       "How often due retries are moved and lease expiries checked: a retry is delivered "
       "at most one tick after its due time (10..1000).",
       UintIn("reclaim-tick-ms", REDRIVE_FIELD(reclaim_tick_ms), 10, 1000)},
      {"sweep-interval-ms", "5000",
       "Shortest time between two sweeps of a handler for entries abandoned by dead "
       "daemons; the period is max(lease, this) (100..3600000).",
       UintIn("sweep-interval-ms", REDRIVE_FIELD(sweep_interval_ms), 100, 3600000)},
      {"consumer-expiry-ms", "600000",
       "A consumer with nothing pending and idle this long (and at least 10 leases) is "
       "removed from its group (1000..604800000).",
       UintIn("consumer-expiry-ms", REDRIVE_FIELD(consumer_expiry_ms), 1000, 604800000)},
      {"retry-retention-ms", "60000",
       "Retry-stream entries that every group has acknowledged are trimmed once older than "
       "this; unread or pending entries are never trimmed (0..86400000).",
       UintIn("retry-retention-ms", REDRIVE_FIELD(retry_retention_ms), 0, 86400000)},
      {"ready-file", "", "Write a JSON file with the bound gRPC addresses once serving.",
       [](absl::string_view v, Config& c, Raw&) {
         c.ready_file = std::string(v);
         return absl::OkStatus();
       }},
      {"log-level", "info", "trace, debug, info, warn, error or off.",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
         for (const char* l : kLevels) {
           if (v == l) {
             c.log_level = std::string(v);
             return absl::OkStatus();
           }
         }
         return BadValue("log-level", absl::StrCat("unknown level '", v, "'"));
       }},
      {"log-format", "text", "text or json (one JSON object per line).",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         if (v != "text" && v != "json") {
           return BadValue("log-format", "must be text or json");
         }
         c.log_format = std::string(v);
         return absl::OkStatus();
       }},
      {"max-payload-bytes", "1048576", "Largest payload accepted by Publish (1..67108864).",
       UintIn("max-payload-bytes", REDRIVE_FIELD(publish.max_payload_bytes), 1, 64u << 20)},
      {"max-headers", "64", "Most headers per published message (0..1024).",
       UintIn("max-headers", REDRIVE_FIELD(publish.max_headers), 0, 1024)},
      {"max-header-bytes", "16384",
       "Most bytes of header keys and values per message (0..1048576).",
       UintIn("max-header-bytes", REDRIVE_FIELD(publish.max_header_bytes), 0, 1u << 20)},
      {"max-batch-messages", "1000", "Most messages in one PublishBatch (1..100000).",
       UintIn("max-batch-messages", REDRIVE_FIELD(publish.max_batch_messages), 1, 100000)},
      {"key-template", "eggai",
       "Redis key names: 'eggai' (EggAI 0.3.x names) or 'cluster' (hash-tagged "
       "{channel} so a handler's keys share a Redis Cluster slot). On a Redis Cluster "
       "the default is 'cluster' and 'eggai' is refused.",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         c.key_template_set = true;
         if (v == "eggai") {
           c.key_style = KeyStyle::kEggAI;
         } else if (v == "cluster") {
           c.key_style = KeyStyle::kCluster;
         } else {
           return BadValue("key-template", "must be eggai or cluster");
         }
         return absl::OkStatus();
       }},
      {"admin-auth", "token",
       "Admin service protection: 'token' (every Admin RPC needs "
       "'authorization: Bearer <token>', the token from --admin-token-file or "
       "REDRIVE_ADMIN_TOKEN; without one configured every Admin RPC is "
       "UNAUTHENTICATED) or 'disabled' (no check: local development only).",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         if (v == "token") {
           c.admin_auth_disabled = false;
         } else if (v == "disabled") {
           c.admin_auth_disabled = true;
         } else {
           return BadValue("admin-auth", "must be token or disabled");
         }
         return absl::OkStatus();
       }},
      {"admin-token-file", "",
       "File holding the Admin bearer token (trailing newline ignored; 16..4096 "
       "printable characters). The variable REDRIVE_ADMIN_TOKEN may hold it "
       "directly.",
       [](absl::string_view v, Config& c, Raw&) {
         c.admin_token_file = std::string(v);
         return absl::OkStatus();
       }},
      {"broker-auth", "none",
       "Broker protection: 'none' (Publish, Subscribe and Tail are open to whoever "
       "reaches the listener: a Unix socket or loopback in the pod) or 'token' "
       "(they need 'authorization: Bearer <token>', the token from "
       "--broker-token-file or REDRIVE_BROKER_TOKEN).",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         if (v == "none") {
           c.broker_auth = false;
         } else if (v == "token") {
           c.broker_auth = true;
         } else {
           return BadValue("broker-auth", "must be none or token");
         }
         return absl::OkStatus();
       }},
      {"broker-token-file", "",
       "File holding the Broker bearer token for --broker-auth=token (same rules "
       "as the admin token). The variable REDRIVE_BROKER_TOKEN may hold it directly.",
       [](absl::string_view v, Config& c, Raw&) {
         c.broker_token_file = std::string(v);
         return absl::OkStatus();
       }},
      {"max-redrives", "5",
       "A dead letter redriven this many times is quarantined: redrive skips it "
       "unless asked to include quarantined entries (1..1000).",
       UintIn("max-redrives", REDRIVE_FIELD(max_redrives), 1, 1000)},
      {"instance-id", "{hostname}-{pid}",
       "This daemon's id in consumer names ([A-Za-z0-9._-]{1,100}).",
       [](absl::string_view v, Config& c, Raw&) -> absl::Status {
         if (v.empty() || v.size() > 100) {
           return BadValue("instance-id", "must be 1..100 characters");
         }
         for (char ch : v) {
           if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' &&
               ch != '-') {
             return BadValue("instance-id", "allowed characters are [A-Za-z0-9._-]");
           }
         }
         c.instance_id = std::string(v);
         return absl::OkStatus();
       }},
  };
  return *options;
}

std::string EnvName(absl::string_view flag) {
  std::string name = absl::StrCat("REDRIVE_", flag);
  for (char& ch : name) ch = ch == '-' ? '_' : absl::ascii_toupper(static_cast<unsigned char>(ch));
  return name;
}

const OptionSpec* FindOption(absl::string_view name) {
  for (const OptionSpec& o : Options()) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

std::string DefaultInstanceId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::string h;
  for (const char* p = host; *p != '\0'; ++p) {
    const char ch = *p;
    h.push_back(absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                        ch == '-'
                    ? ch
                    : '_');
  }
  if (h.empty()) h = "host";
  if (h.size() > 80) h.resize(80);
  return absl::StrCat(h, "-", getpid());
}

// Reads the `realm` ("admin" or "broker") bearer token from `file` when
// given, else from REDRIVE_<REALM>_TOKEN, and checks its form.
absl::Status ReadToken(absl::string_view realm, const std::string& file, const EnvLookup& env,
                       std::string& token) {
  const std::string variable = EnvName(absl::StrCat(realm, "-token"));
  std::string source = variable;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      return BadValue(absl::StrCat(realm, "-token-file"), absl::StrCat("cannot read '", file, "'"));
    }
    std::stringstream buf;
    buf << in.rdbuf();
    token = buf.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    source = absl::StrCat("--", realm, "-token-file");
  } else if (std::optional<std::string> t = env(variable); t && !t->empty()) {
    token = *t;
  }
  if (token.empty()) return absl::OkStatus();
  if (token.size() < 16 || token.size() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": the ", realm, " token must be 16..4096 characters"));
  }
  for (char ch : token) {
    if (ch < '!' || ch > '~') {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the ", realm, " token must be printable ASCII without spaces"));
    }
  }
  return absl::OkStatus();
}

// `path` can be opened for reading; the error names the option.
absl::Status Readable(absl::string_view option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return BadValue(option, absl::StrCat("cannot read '", path, "': ", ErrnoMessage(errno)));
  }
  return absl::OkStatus();
}

// The TLS options go together and their files can be read. What the files
// hold (PEM, a key matching the certificate) is CheckTlsFiles' part.
absl::Status CheckTlsOptions(const Config& c) {
  const TlsConfig& t = c.tls;
  if (!t.cert_file.empty() && t.key_file.empty()) {
    return BadValue("tls-cert", "needs --tls-key (the certificate's private key)");
  }
  if (t.cert_file.empty() && !t.key_file.empty()) {
    return BadValue("tls-key", "needs --tls-cert (the certificate it belongs to)");
  }
  if (t.cert_file.empty() && !t.client_ca_file.empty()) {
    return BadValue("tls-client-ca",
                    "needs --tls-cert and --tls-key (mutual TLS is TLS with client certificates)");
  }
  if (!t.enabled()) return absl::OkStatus();
  const bool any_tcp = std::any_of(c.grpc_listen.begin(), c.grpc_listen.end(), [](const auto& a) {
    absl::StatusOr<ListenAddress> parsed = ParseListenAddress(a);
    return parsed.ok() && !parsed->is_unix;
  });
  if (!any_tcp) {
    return BadValue("tls-cert",
                    "--grpc-listen has no TCP address (Unix sockets stay plaintext), so TLS "
                    "would apply to nothing");
  }
  if (absl::Status s = Readable("tls-cert", t.cert_file); !s.ok()) return s;
  if (absl::Status s = Readable("tls-key", t.key_file); !s.ok()) return s;
  if (t.mutual()) {
    if (absl::Status s = Readable("tls-client-ca", t.client_ca_file); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RequireClusterKeys(Config& c) {
  if (c.key_style == KeyStyle::kCluster) return absl::OkStatus();
  if (c.key_template_set) {
    return absl::FailedPreconditionError(
        "--key-template=eggai cannot be used on a Redis Cluster: EggAI's key names carry no "
        "{hash tag}, so a handler's streams would land in different slots. Use "
        "--key-template=cluster (the default on a cluster) and rename existing keys first "
        "(README \"Redis Cluster\")");
  }
  c.key_style = KeyStyle::kCluster;
  return absl::OkStatus();
}

namespace {

absl::Status Resolve(const Raw& raw, const EnvLookup& env, Config& c) {
  if (raw.redis_url.empty() || raw.redis_url == "embedded") {
    c.embedded_redis = true;
    c.redis_url_redacted = "embedded";
  } else {
    absl::StatusOr<RedisAddress> addr = ParseRedisUrl(raw.redis_url);
    if (!addr.ok()) return BadValue("redis-url", addr.status().message());
    c.embedded_redis = false;
    c.redis = *std::move(addr);
    c.password_on_command_line = raw.redis_url_from_flag &&
                                 (!c.redis.password.empty() || !c.redis.sentinel.password.empty());
    if (c.redis.is_cluster()) {
      if (absl::Status s = RequireClusterKeys(c); !s.ok()) {
        return BadValue("key-template", s.message());
      }
    }
  }
  if (!raw.password_file.empty()) {
    std::ifstream in(raw.password_file, std::ios::binary);
    if (!in) {
      return BadValue("redis-password-file", absl::StrCat("cannot read '", raw.password_file, "'"));
    }
    std::stringstream buf;
    buf << in.rdbuf();
    std::string password = buf.str();
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
    c.redis.password = std::move(password);
    c.password_on_command_line = false;
  } else if (std::optional<std::string> p = env("REDRIVE_REDIS_PASSWORD"); p && !p->empty()) {
    c.redis.password = *p;
    c.password_on_command_line = false;
  }
  if (absl::Status st = ReadToken("admin", c.admin_token_file, env, c.admin_token); !st.ok()) {
    return st;
  }
  if (absl::Status st = ReadToken("broker", c.broker_token_file, env, c.broker_token); !st.ok()) {
    return st;
  }
  if (c.broker_auth && c.broker_token.empty()) {
    return BadValue("broker-auth", "token needs --broker-token-file or REDRIVE_BROKER_TOKEN");
  }
  if (absl::Status st = CheckTlsOptions(c); !st.ok()) return st;
  if (c.instance_id.empty()) c.instance_id = DefaultInstanceId();
  return absl::OkStatus();
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

absl::StatusOr<ParsedConfig> ParseConfig(const std::vector<std::string>& args,
                                         const EnvLookup& env) {
  ParsedConfig parsed;
  Raw raw;
  // Environment first, so flags override it.
  for (const OptionSpec& o : Options()) {
    if (std::optional<std::string> v = env(EnvName(o.name)); v.has_value()) {
      if (absl::Status s = o.set(*v, parsed.config, raw); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(s.message(), " (from ", EnvName(o.name), ")"));
      }
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.outcome = ParseOutcome::kHelp;
      return parsed;
    }
    if (arg == "--version") {
      parsed.outcome = ParseOutcome::kVersion;
      return parsed;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (see --help)"));
    }
    absl::string_view name = arg;
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = std::string(arg.substr(eq + 1));
    }
    const OptionSpec* spec = FindOption(name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name, " (see --help)"));
    }
    if (eq == absl::string_view::npos) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    if (name == "redis-url") raw.redis_url_from_flag = true;
    if (absl::Status s = spec->set(value, parsed.config, raw); !s.ok()) return s;
  }
  if (absl::Status s = Resolve(raw, env, parsed.config); !s.ok()) return s;
  return parsed;
}

std::string ConfigHelp() {
  std::string out =
      "redrived: durable per-handler retries and dead-letter queues on Redis "
      "Streams, over gRPC.\n\nUsage: redrived [--option=value ...]\n\n"
      "Every option may also be set by its environment variable; a flag wins.\n"
      "REDRIVE_REDIS_PASSWORD (environment only) holds the Redis password;\n"
      "REDRIVE_ADMIN_TOKEN (environment only) holds the Admin bearer token;\n"
      "REDRIVE_BROKER_TOKEN (environment only) holds the Broker bearer token.\n\n";
  for (const OptionSpec& o : Options()) {
    absl::StrAppend(&out, "  --", o.name, "  (", EnvName(o.name), ")\n      ", o.help,
                    "\n      default: ", o.default_text[0] == '\0' ? "(none)" : o.default_text,
                    "\n");
  }
  absl::StrAppend(&out, "  --help, --version\n");
  return out;
}

}  // namespace redrive
