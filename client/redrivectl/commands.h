// redrivectl command line: the command table, argument parsing, and the
// translation of parsed arguments into redrive.v1 requests.
//
// Everything here is pure (no I/O, no environment lookups: the caller passes
// an Environment), so the unit tests cover every flag. A usage error is an
// absl::InvalidArgumentError whose message is meant for the operator; the
// caller turns it into exit code kExitUsage.
//
// Thread-compatible.
#ifndef REDRIVE_CLIENT_REDRIVECTL_COMMANDS_H_
#define REDRIVE_CLIENT_REDRIVECTL_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.pb.h"
#include "redrive/v1/admin.pb.h"
#include "redrive/v1/broker.pb.h"

namespace redrive::ctl {

// Exit codes. A gRPC error exits with its numeric status code (1..16).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;            // EX_USAGE: bad command line
inline constexpr int kExitJobNotSucceeded = 65;  // dlq redrive --wait: FAILED/CANCELLED
inline constexpr int kExitNoInput = 66;          // EX_NOINPUT: unreadable file
inline constexpr int kExitNotServing = 67;       // health: answered, but not SERVING
inline constexpr int kExitInterrupted = 130;     // SIGINT while waiting

inline constexpr absl::string_view kDefaultAddr = "127.0.0.1:50051";

// What the process environment contributes (read by main, injected here).
struct Environment {
  std::optional<std::string> addr;              // REDRIVE_ADDR
  std::optional<std::string> admin_token;       // REDRIVE_ADMIN_TOKEN
  std::optional<std::string> admin_token_file;  // REDRIVE_ADMIN_TOKEN_FILE
  std::optional<std::string> user;              // USER
};

// Options that apply to every command.
struct GlobalOptions {
  // --addr, else REDRIVE_ADDR, else kDefaultAddr.
  std::string addr;
  // --timeout: the deadline of each unary call.
  absl::Duration timeout = absl::Seconds(10);
  // --token-file; empty = see ChooseTokenSource.
  std::string token_file;
  // --operator, else $USER; sent as x-redrive-operator on Admin calls.
  std::string operator_name;
  bool json = false;
  // TLS (any --tls-* flag turns it on): --tls-ca (empty: gRPC's default
  // roots), --tls-cert + --tls-key (a client certificate, for mTLS), and
  // --tls-server-name (the name the server certificate must carry, when it
  // is not the host of --addr).
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;

  bool tls() const {
    return !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty() || !tls_server_name.empty();
  }
};

struct FlagSpec {
  std::string name;        // without "--"
  std::string value_name;  // empty: a boolean flag that takes no value
  bool repeatable = false;
  std::string help;
};

struct CommandSpec {
  std::string name;  // "handlers", "dlq list", ...
  // Positional argument names, in order. When `variadic` is true, the last
  // one may be given one or more times.
  std::vector<std::string> positional;
  bool variadic = false;
  std::vector<FlagSpec> flags;
  std::string summary;
  std::string description;  // extra lines for `CMD --help`
};

// Every command, in the order `redrivectl --help` lists them.
const std::vector<CommandSpec>& Commands();
// The global flags (accepted before or after the command words).
const std::vector<FlagSpec>& GlobalFlags();

struct ParsedArgs {
  GlobalOptions global;
  // Null when no command was named (then `help` or `version` is set).
  const CommandSpec* command = nullptr;
  bool help = false;
  bool version = false;
  std::vector<std::string> positional;
  // Command flags in command-line order; boolean flags have an empty value.
  std::vector<std::pair<std::string, std::string>> flags;

  bool Has(absl::string_view flag) const;
  // The last value given for `flag`.
  std::optional<std::string> Get(absl::string_view flag) const;
  std::vector<std::string> GetAll(absl::string_view flag) const;
};

// Parses argv[1..]. Accepts `--flag=value` and `--flag value`; `--` ends the
// flags. Global flags may appear anywhere. Validates the command words, flag
// names, repetitions and the number of positional arguments (skipped with
// --help); values are validated by the Build* functions below, except the
// global ones (including: --tls-cert and --tls-key go together, and TLS
// needs a host:port --addr, the daemon's Unix sockets being plaintext).
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const Environment& env);

// Where the admin token comes from, first match wins: --token-file, then
// REDRIVE_ADMIN_TOKEN (the token itself, when non-empty), then
// REDRIVE_ADMIN_TOKEN_FILE (a file holding it, when non-empty, as the daemon
// and the sidecar manifest use it), else none. There is no --token flag: a
// token on the command line shows in `ps`.
struct TokenSource {
  enum class Kind { kNone, kFlagFile, kEnvToken, kEnvFile };
  Kind kind = Kind::kNone;
  std::string file;   // kFlagFile, kEnvFile
  std::string token;  // kEnvToken
  // "--token-file FILE", "REDRIVE_ADMIN_TOKEN", ... for messages.
  std::string Describe() const;
};
TokenSource ChooseTokenSource(const GlobalOptions& global, const Environment& env);

// What redrivectl prints after an Admin call failed UNAUTHENTICATED: how to
// pass a token (naming --token-file, REDRIVE_ADMIN_TOKEN and
// REDRIVE_ADMIN_TOKEN_FILE, and where scripts/run.sh writes its token), or,
// when one was sent, where it came from.
std::string UnauthenticatedHint(const TokenSource& source);

std::string TopLevelHelp();
std::string CommandHelp(const CommandSpec& command);

// Value parsers; `flag` names the flag in the error message.
absl::StatusOr<uint64_t> ParseUnsigned(absl::string_view flag, absl::string_view text, uint64_t min,
                                       uint64_t max);
// Unix epoch milliseconds (digits only) or RFC 3339 ("2024-05-01T12:00:00Z",
// fractional seconds and offsets allowed).
absl::StatusOr<int64_t> ParseTimeMs(absl::string_view flag, absl::string_view text);

// Request builders, one per command. Each expects `args.command` to be the
// matching command.
absl::StatusOr<v1::ListHandlersRequest> BuildListHandlers(const ParsedArgs& args);

struct ListPlan {
  v1::ListDeadLettersRequest request;
  bool all_pages = false;
};
absl::StatusOr<ListPlan> BuildListDeadLetters(const ParsedArgs& args);

struct ShowPlan {
  v1::GetDeadLetterRequest request;
  bool raw = false;  // write only the payload bytes
};
absl::StatusOr<ShowPlan> BuildGetDeadLetter(const ParsedArgs& args);
absl::StatusOr<v1::CountDeadLettersRequest> BuildCountDeadLetters(const ParsedArgs& args);

struct RedrivePlan {
  v1::RedriveDeadLettersRequest request;
  bool wait = false;
};
absl::StatusOr<RedrivePlan> BuildRedrive(const ParsedArgs& args);
absl::StatusOr<v1::DeleteDeadLettersRequest> BuildDelete(const ParsedArgs& args);
absl::StatusOr<v1::PurgeDeadLettersRequest> BuildPurge(const ParsedArgs& args);
absl::StatusOr<v1::DeleteHandlerRequest> BuildDeleteHandler(const ParsedArgs& args);
absl::StatusOr<std::string> BuildJobId(const ParsedArgs& args);          // job status / job cancel
absl::StatusOr<v1::HandlerRef> BuildHandlerRef(const ParsedArgs& args);  // pause / resume
absl::StatusOr<v1::MigrateLegacyKeysRequest> BuildMigrate(const ParsedArgs& args);

struct PublishPlan {
  // The payload is filled in by the caller unless `data` was given.
  v1::PublishRequest request;
  enum class Source { kData, kFile, kStdin };
  Source source = Source::kStdin;
  std::string file;  // with Source::kFile
};
absl::StatusOr<PublishPlan> BuildPublish(const ParsedArgs& args);

// Without --handler: Broker.Tail (plain reads, no consumer group, nothing
// left in Redis). With --handler ID: Broker.Subscribe as that handler (its
// group stays on the channel; `handlers delete` removes it).
struct TailPlan {
  bool group = false;       // --handler given: read as a consumer group
  v1::TailRequest request;  // !group
  v1::Register reg;         // group
  uint64_t count = 0;       // 0 = until interrupted
  bool ack = false;         // group only: ACK each printed delivery (auto_ack otherwise)
};
absl::StatusOr<TailPlan> BuildTail(const ParsedArgs& args);

// `health [--service NAME]`: grpc.health.v1.Health/Check. The service is ""
// by default (the daemon's overall status: Redis answers); "liveness" is the
// process alone, "readiness" the same as "" (README "Health, liveness and
// listeners").
absl::StatusOr<grpc::health::v1::HealthCheckRequest> BuildHealthCheck(const ParsedArgs& args);

}  // namespace redrive::ctl

#endif  // REDRIVE_CLIENT_REDRIVECTL_COMMANDS_H_
