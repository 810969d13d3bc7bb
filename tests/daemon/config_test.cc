#include "daemon/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<Config> Parse(std::vector<std::string> args,
                             std::map<std::string, std::string> env = {}) {
  absl::StatusOr<ParsedConfig> p = ParseConfig(args, FakeEnv(std::move(env)));
  if (!p.ok()) return p.status();
  return p->config;
}

TEST(ConfigTest, DefaultsRunEmbeddedRedisOnLoopback) {
  absl::StatusOr<Config> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->embedded_redis);
  EXPECT_EQ(c->grpc_listen, std::vector<std::string>{"127.0.0.1:50051"});
  EXPECT_EQ(c->log_level, "info");
  EXPECT_EQ(c->log_format, "text");
  EXPECT_EQ(c->publish.max_payload_bytes, 1u << 20);
  EXPECT_EQ(c->key_style, KeyStyle::kEggAI);
  EXPECT_FALSE(c->instance_id.empty());
}

TEST(ConfigTest, FlagBeatsEnvironmentBeatsDefault) {
  absl::StatusOr<Config> c =
      Parse({"--grpc-listen=unix:/tmp/a.sock"},
            {{"REDRIVE_GRPC_LISTEN", "127.0.0.1:1"}, {"REDRIVE_LOG_LEVEL", "debug"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->grpc_listen, std::vector<std::string>{"unix:/tmp/a.sock"});
  EXPECT_EQ(c->log_level, "debug");
}

TEST(ConfigTest, SpaceSeparatedValuesAndSeveralListeners) {
  absl::StatusOr<Config> c =
      Parse({"--grpc-listen", "127.0.0.1:0, unix:/tmp/x.sock", "--redis-url", "redis://h:1/2"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->grpc_listen, (std::vector<std::string>{"127.0.0.1:0", "unix:/tmp/x.sock"}));
  EXPECT_FALSE(c->embedded_redis);
  EXPECT_EQ(c->redis.host, "h");
  EXPECT_EQ(c->redis.db, 2);
}

TEST(ConfigTest, PasswordSources) {
  absl::StatusOr<Config> c = Parse({"--redis-url=redis://:inflag@h:1"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->redis.password, "inflag");
  EXPECT_TRUE(c->password_on_command_line);

  c = Parse({}, {{"REDRIVE_REDIS_URL", "redis://:inenv@h:1"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->redis.password, "inenv");
  EXPECT_FALSE(c->password_on_command_line);

  c = Parse({"--redis-url=redis://h:1"}, {{"REDRIVE_REDIS_PASSWORD", "fromvar"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->redis.password, "fromvar");

  const std::string file = ::testing::TempDir() + "/redis-password";
  {
    std::ofstream out(file);
    out << "s3cret\n";
  }
  c = Parse({"--redis-url=redis://:old@h:1", "--redis-password-file=" + file});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->redis.password, "s3cret");
  EXPECT_FALSE(c->password_on_command_line);
  std::remove(file.c_str());
  EXPECT_THAT(Parse({"--redis-password-file=/nonexistent/pw"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("redis-password-file")));
}

TEST(ConfigTest, RejectsBadValuesNamingTheOption) {
  EXPECT_THAT(Parse({"--nope=1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown option --nope")));
  EXPECT_THAT(Parse({"--redis-pool-size=0"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--redis-pool-size")));
  EXPECT_THAT(Parse({"--redis-pool-size=65"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--max-payload-bytes=-5"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--max-payload-bytes=12kb"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a whole number")));
  EXPECT_THAT(Parse({"--log-level=loud"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--log-format=xml"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--grpc-listen=localhost"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no port")));
  EXPECT_THAT(Parse({"--redis-url=http://x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--redis-url")));
  EXPECT_THAT(Parse({"--key-template=other"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--instance-id=a b"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"positional"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--log-level"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  EXPECT_THAT(
      Parse({}, {{"REDRIVE_HEALTH_INTERVAL_MS", "1"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("REDRIVE_HEALTH_INTERVAL_MS")));
}

TEST(ConfigTest, RetryTimingOptionsHaveDefaultsAndRanges) {
  absl::StatusOr<Config> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->reclaim_tick_ms, 100u);
  EXPECT_EQ(c->sweep_interval_ms, 5000u);
  EXPECT_EQ(c->consumer_expiry_ms, 600000u);
  EXPECT_EQ(c->retry_retention_ms, 60000u);
  c = Parse({"--reclaim-tick-ms=1000", "--sweep-interval-ms=100", "--retry-retention-ms=0"},
            {{"REDRIVE_CONSUMER_EXPIRY_MS", "1000"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->reclaim_tick_ms, 1000u);
  EXPECT_EQ(c->sweep_interval_ms, 100u);
  EXPECT_EQ(c->consumer_expiry_ms, 1000u);
  EXPECT_EQ(c->retry_retention_ms, 0u);
  EXPECT_THAT(Parse({"--retry-retention-ms=86400001"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--retry-retention-ms")));
  // The tick is at most 1 s (R-D2) and at least 10 ms.
  EXPECT_THAT(Parse({"--reclaim-tick-ms=1001"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--reclaim-tick-ms")));
  EXPECT_THAT(Parse({"--reclaim-tick-ms=9"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--sweep-interval-ms=99"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--sweep-interval-ms")));
  EXPECT_THAT(Parse({"--consumer-expiry-ms=999"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--consumer-expiry-ms")));
}

TEST(ConfigTest, HelpListsEveryOptionWithVariableAndDefault) {
  absl::StatusOr<ParsedConfig> p = ParseConfig({"--help"}, FakeEnv({}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->outcome, ParseOutcome::kHelp);
  const std::string help = ConfigHelp();
  for (const char* name :
       {"--redis-url  (REDRIVE_REDIS_URL)", "--redis-password-file  (REDRIVE_REDIS_PASSWORD_FILE)",
        "--grpc-listen  (REDRIVE_GRPC_LISTEN)", "--log-level  (REDRIVE_LOG_LEVEL)",
        "--max-payload-bytes  (REDRIVE_MAX_PAYLOAD_BYTES)", "default: 127.0.0.1:50051",
        "REDRIVE_REDIS_PASSWORD"}) {
    EXPECT_THAT(help, HasSubstr(name));
  }
}

TEST(ConfigTest, AdminTokenFromEnvironmentOrFileAndAuthSwitch) {
  absl::StatusOr<Config> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->admin_auth_disabled);
  EXPECT_EQ(c->admin_token, "");
  EXPECT_EQ(c->max_redrives, 5u);

  c = Parse({}, {{"REDRIVE_ADMIN_TOKEN", "env-token-0123456789"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin_token, "env-token-0123456789");

  const std::string path = ::testing::TempDir() + "/admin-token";
  { std::ofstream(path) << "file-token-0123456789\n"; }
  c = Parse({"--admin-token-file=" + path}, {{"REDRIVE_ADMIN_TOKEN", "env-token-0123456789"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin_token, "file-token-0123456789");  // the file wins, newline dropped
  std::remove(path.c_str());

  c = Parse({"--admin-auth=disabled", "--max-redrives=9"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->admin_auth_disabled);
  EXPECT_EQ(c->max_redrives, 9u);
}

TEST(ConfigTest, AdminOptionsOutOfRangeAreRejected) {
  EXPECT_THAT(Parse({"--admin-auth=maybe"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--admin-auth")));
  EXPECT_THAT(Parse({"--admin-token-file=/nonexistent/token"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot read")));
  EXPECT_THAT(Parse({}, {{"REDRIVE_ADMIN_TOKEN", "short"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("16..4096")));
  EXPECT_THAT(Parse({}, {{"REDRIVE_ADMIN_TOKEN", "has a space in it 0123"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("printable")));
  EXPECT_THAT(Parse({"--max-redrives=0"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1..1000")));
  EXPECT_THAT(Parse({"--max-redrives=1001"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1..1000")));
}

TEST(ConfigTest, ListenerOptionsDefaultsAndRanges) {
  absl::StatusOr<Config> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->grpc_socket_mode, 0660u);
  EXPECT_EQ(c->grpc_memory_quota_mb, 128u);
  EXPECT_EQ(c->liveness_stall_ms, 30000u);
  c = Parse({"--grpc-socket-mode=0666", "--grpc-memory-quota-mb=64", "--liveness-stall-ms=1000",
             "--grpc-listen=[::1]:0, unix:/tmp/x.sock", "--health-listen=127.0.0.1:8081"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->grpc_socket_mode, 0666u);
  EXPECT_EQ(c->grpc_memory_quota_mb, 64u);
  EXPECT_EQ(c->grpc_listen, (std::vector<std::string>{"[::1]:0", "unix:/tmp/x.sock"}));
  c = Parse({}, {{"REDRIVE_GRPC_SOCKET_MODE", "600"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->grpc_socket_mode, 0600u);

  using C = absl::StatusCode;
  EXPECT_THAT(Parse({"--grpc-listen=127.0.0.1:99999"}),
              StatusIs(C::kInvalidArgument, HasSubstr("--grpc-listen: '127.0.0.1:99999': the "
                                                      "port must be a number in 0..65535")));
  EXPECT_THAT(Parse({"--health-listen=127.0.0.1:70000"}),
              StatusIs(C::kInvalidArgument, HasSubstr("--health-listen")));
  EXPECT_THAT(Parse({"--health-listen=unix:/tmp/h.sock"}),
              StatusIs(C::kInvalidArgument, HasSubstr("host:port")));
  EXPECT_THAT(Parse({"--grpc-socket-mode=0400"}),
              StatusIs(C::kInvalidArgument, HasSubstr("owner read/write")));
  EXPECT_THAT(Parse({"--grpc-socket-mode=4777"}), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(Parse({"--grpc-socket-mode=0689"}),
              StatusIs(C::kInvalidArgument, HasSubstr("not an octal mode")));
  EXPECT_THAT(Parse({"--grpc-memory-quota-mb=8"}),
              StatusIs(C::kInvalidArgument, HasSubstr("8 is outside 16..65536")));
  EXPECT_THAT(Parse({"--liveness-stall-ms=999"}), StatusIs(C::kInvalidArgument));
}

TEST(ConfigTest, BrokerAuthNeedsATokenFromFileOrEnvironment) {
  absl::StatusOr<Config> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->broker_auth);
  c = Parse({"--broker-auth=token"}, {{"REDRIVE_BROKER_TOKEN", "broker-token-0123456789"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->broker_auth);
  EXPECT_EQ(c->broker_token, "broker-token-0123456789");
  const std::string path = ::testing::TempDir() + "/broker-token";
  { std::ofstream(path) << "file-broker-token-0123\n"; }
  c = Parse({"--broker-auth=token", "--broker-token-file=" + path},
            {{"REDRIVE_BROKER_TOKEN", "broker-token-0123456789"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->broker_token, "file-broker-token-0123");
  std::remove(path.c_str());

  using C = absl::StatusCode;
  EXPECT_THAT(
      Parse({"--broker-auth=token"}),
      StatusIs(C::kInvalidArgument, HasSubstr("--broker-auth: token needs --broker-token-file or "
                                              "REDRIVE_BROKER_TOKEN")));
  EXPECT_THAT(Parse({"--broker-auth=yes"}),
              StatusIs(C::kInvalidArgument, HasSubstr("none or token")));
  EXPECT_THAT(Parse({"--broker-auth=token"}, {{"REDRIVE_BROKER_TOKEN", "short"}}),
              StatusIs(C::kInvalidArgument, HasSubstr("the broker token must be 16..4096")));
  EXPECT_THAT(Parse({"--broker-token-file=/nonexistent"}),
              StatusIs(C::kInvalidArgument, HasSubstr("--broker-token-file: cannot read")));
}

// Writes `text` to a file under the test's temporary directory; returns its path.
std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, TlsIsOffByDefaultAndTakesItsFilesFromFlagsOrEnvironment) {
  absl::StatusOr<Config> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tls.enabled());
  EXPECT_EQ(c->tls.reload_interval_ms, 60000u);
  const std::string cert = WriteTempFile("tls.crt", "cert");
  const std::string key = WriteTempFile("tls.key", "key");
  const std::string ca = WriteTempFile("ca.crt", "ca");
  c = Parse({"--tls-cert=" + cert, "--tls-key", key, "--tls-reload-interval-ms=1000"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tls.enabled());
  EXPECT_FALSE(c->tls.mutual());
  EXPECT_EQ(c->tls.cert_file, cert);
  EXPECT_EQ(c->tls.key_file, key);
  EXPECT_EQ(c->tls.reload_interval_ms, 1000u);
  c = Parse({"--grpc-listen=unix:/tmp/x.sock,127.0.0.1:0"},
            {{"REDRIVE_TLS_CERT", cert},
             {"REDRIVE_TLS_KEY", key},
             {"REDRIVE_TLS_CLIENT_CA", ca},
             {"REDRIVE_TLS_RELOAD_INTERVAL_MS", "5000"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tls.mutual());
  EXPECT_EQ(c->tls.client_ca_file, ca);
  EXPECT_EQ(c->tls.reload_interval_ms, 5000u);
  EXPECT_THAT(ConfigHelp(), HasSubstr("--tls-client-ca  (REDRIVE_TLS_CLIENT_CA)"));
}

TEST(ConfigTest, TlsOptionsThatDoNotGoTogetherAreRejectedPrecisely) {
  const std::string cert = WriteTempFile("tls2.crt", "cert");
  const std::string key = WriteTempFile("tls2.key", "key");
  using C = absl::StatusCode;
  EXPECT_THAT(
      Parse({"--tls-cert=" + cert}),
      StatusIs(C::kInvalidArgument, "--tls-cert: needs --tls-key (the certificate's private key)"));
  EXPECT_THAT(
      Parse({"--tls-key=" + key}),
      StatusIs(C::kInvalidArgument, "--tls-key: needs --tls-cert (the certificate it belongs to)"));
  EXPECT_THAT(Parse({"--tls-client-ca=" + cert}),
              StatusIs(C::kInvalidArgument,
                       "--tls-client-ca: needs --tls-cert and --tls-key (mutual TLS is TLS with "
                       "client certificates)"));
  EXPECT_THAT(
      Parse({"--tls-cert=/nonexistent/tls.crt", "--tls-key=" + key}),
      StatusIs(C::kInvalidArgument,
               "--tls-cert: cannot read '/nonexistent/tls.crt': No such file or directory"));
  EXPECT_THAT(Parse({"--tls-cert=" + cert, "--tls-key=/nonexistent/tls.key"}),
              StatusIs(C::kInvalidArgument,
                       "--tls-key: cannot read '/nonexistent/tls.key': No such file or directory"));
  EXPECT_THAT(
      Parse({"--tls-cert=" + cert, "--tls-key=" + key, "--tls-client-ca=/nonexistent/ca.crt"}),
      StatusIs(C::kInvalidArgument,
               "--tls-client-ca: cannot read '/nonexistent/ca.crt': No such file or directory"));
  EXPECT_THAT(Parse({"--tls-cert=" + cert, "--tls-key=" + key, "--grpc-listen=unix:/tmp/x.sock"}),
              StatusIs(C::kInvalidArgument, HasSubstr("--tls-cert: --grpc-listen has no TCP "
                                                      "address (Unix sockets stay plaintext)")));
  EXPECT_THAT(
      Parse({"--tls-reload-interval-ms=999"}),
      StatusIs(C::kInvalidArgument, "--tls-reload-interval-ms: 999 is outside 1000..86400000"));
  EXPECT_THAT(Parse({"--tls-reload-interval-ms=1500"}),
              StatusIs(C::kInvalidArgument,
                       "--tls-reload-interval-ms: 1500 is not a whole number of seconds (gRPC's "
                       "certificate watcher counts seconds)"));
  EXPECT_THAT(Parse({}, {{"REDRIVE_TLS_KEY", key}}),
              StatusIs(C::kInvalidArgument, HasSubstr("--tls-key: needs --tls-cert")));
}

TEST(ConfigTest, SentinelUrl) {
  absl::StatusOr<Config> c =
      Parse({"--redis-url=redis-sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/1"},
            {{"REDRIVE_REDIS_PASSWORD", "data"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->embedded_redis);
  ASSERT_TRUE(c->redis.is_sentinel());
  EXPECT_EQ(c->redis.sentinel.master_name, "mymaster");
  EXPECT_EQ(c->redis.db, 1);
  EXPECT_EQ(c->redis.password, "data");  // for the data nodes
  EXPECT_EQ(c->redis.sentinel.password, "");
  EXPECT_FALSE(c->password_on_command_line);

  c = Parse({"--redis-url=redis-sentinel://h/m?sentinel_password=pw"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->password_on_command_line);  // warned about, like the data password

  EXPECT_THAT(Parse({"--redis-url=redis-sentinel://h:26379"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--redis-url: redis url: redis-sentinel:// needs the master "
                                 "name Sentinel monitors")));
}

TEST(ConfigTest, ClusterUrlSelectsTheClusterKeyTemplate) {
  absl::StatusOr<Config> c = Parse({"--redis-url=redis-cluster://127.0.0.1:7000,127.0.0.1:7001"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->embedded_redis);
  ASSERT_TRUE(c->redis.is_cluster());
  EXPECT_EQ(c->redis.cluster_seeds.size(), 2u);
  EXPECT_EQ(c->key_style, KeyStyle::kCluster);  // the default on a cluster
  EXPECT_FALSE(c->key_template_set);

  c = Parse({"--redis-url=redis://127.0.0.1:7000,127.0.0.1:7001", "--key-template=cluster"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->key_style, KeyStyle::kCluster);

  // Given explicitly (flag or environment), eggai is refused with the reason.
  EXPECT_THAT(Parse({"--redis-url=redis-cluster://127.0.0.1:7000", "--key-template=eggai"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--key-template: --key-template=eggai cannot be used on a "
                                 "Redis Cluster: EggAI's key names carry no {hash tag}")));
  EXPECT_THAT(
      Parse({"--redis-url=redis-cluster://127.0.0.1:7000"}, {{"REDRIVE_KEY_TEMPLATE", "eggai"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot be used on a")));
  // A single redis:// node keeps the eggai default (redrived checks at
  // start-up whether it is a cluster node).
  c = Parse({"--redis-url=redis://127.0.0.1:7000"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->key_style, KeyStyle::kEggAI);
  EXPECT_THAT(Parse({"--redis-url=redis-cluster://127.0.0.1:7000/2"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--redis-url: redis url: redis-cluster:// is a Redis Cluster, "
                                 "which has only database 0, got /2")));
}

TEST(ConfigTest, RedissUrlIsRefusedNamingTheOption) {
  EXPECT_THAT(Parse({"--redis-url=rediss://redis.example.com:6380/0"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--redis-url: redis url: rediss:// (Redis over TLS) is not "
                                 "supported: hiredis 0.14")));
}

}  // namespace
}  // namespace redrive
