#include "client/redrivectl/commands.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace redrive::ctl {
namespace {

constexpr uint32_t kMaxIds = 10000;

absl::Status Usage(absl::string_view message) { return absl::InvalidArgumentError(message); }

std::vector<FlagSpec> FilterFlags() {
  return {
      {"reason", "R", true,
       "Only dead letters with this reason (max_retries, terminated, poison, disconnected, "
       "...); repeat for several."},
      {"since", "TIME", false,
       "Dead-lettered at or after TIME: Unix milliseconds or RFC 3339 "
       "(2024-05-01T12:00:00Z)."},
      {"until", "TIME", false, "Dead-lettered before TIME (same forms as --since)."},
  };
}

std::vector<FlagSpec> With(std::vector<FlagSpec> a, const std::vector<FlagSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<CommandSpec> MakeCommands() {
  std::vector<CommandSpec> c;
  c.push_back({"handlers",
               {},
               false,
               {{"channel", "C", false, "Only handlers of channel C."}},
               "List handlers: streams, pending, lag, retry and DLQ depth (Admin.ListHandlers).",
               ""});
  c.push_back(
      {"handlers delete",
       {"CHANNEL", "HANDLER"},
       false,
       {{"force", "", false,
         "Delete although retry entries or dead letters remain; needs --expect-retry and "
         "--expect-dlq."},
        {"expect-retry", "N", false,
         "With --force: the handler's retry entries now (pending plus unread retry-stream "
         "entries); the daemon refuses (exit 9) when it differs."},
        {"expect-dlq", "N", false,
         "With --force: the DLQ length now; the daemon refuses (exit 9) when it differs."}},
       "Retire a handler: its group, retry and dead-letter streams, due set, pause flag and "
       "registration (Admin.DeleteHandler).",
       "The channel stream and other handlers' groups stay. Refused (exit 9) while a Subscribe\n"
       "stream of the handler is connected to any daemon, and while entries remain unless\n"
       "--force with the exact counts (the refusal names them)."});
  c.push_back(
      {"top",
       {},
       false,
       {{"interval", "MS", false, "Refresh every MS milliseconds, 100..60000 (default 1000)."},
        {"channel", "C", false, "Only handlers of channel C."},
        {"sort", "KEY", false,
         "Row order: name (default), dlq, lag or rate (deliveries/s); the s key cycles it."},
        {"iterations", "N", false,
         "Exit after N refreshes, 0..1000000 (default 0: until q, Ctrl-C or SIGTERM)."}},
       "Live view of handlers: rates, in flight, lag, retry and DLQ depth (Admin.ListHandlers "
       "every interval).",
       "On a terminal: full screen, redrawn in place; q quits, s cycles the sort. Otherwise one\n"
       "plain frame per refresh. A failed refresh is shown and retried; after --iterations the\n"
       "exit code is the last refresh's (0, or its gRPC code). Rates are this daemon's counters'\n"
       "increase per second between two refreshes ('-' until the second)."});
  c.push_back(
      {"dlq list",
       {"CHANNEL", "HANDLER"},
       false,
       With({{"limit", "N", false, "Page size, 1..1000 (server default 100)."},
             {"cursor", "C", false, "Continue from a previous page's next cursor."},
             {"newest", "", false, "Newest first (default: oldest first)."},
             {"preview", "N", false, "Payload bytes returned per entry, 1..65536 (default 256)."},
             {"all-pages", "", false, "Follow next cursors and print every page as one list."}},
            FilterFlags()),
       "List a handler's dead letters (Admin.ListDeadLetters).",
       "Without --all-pages, a further page is announced as 'next cursor: C'."});
  c.push_back({"dlq show",
               {"CHANNEL", "HANDLER", "ENTRY_ID"},
               false,
               {{"raw", "", false, "Write only the payload bytes, unchanged, to stdout."}},
               "Show one dead letter with its history and payload (Admin.GetDeadLetter).",
               "Non-printable payload bytes are shown as \\xNN escapes unless --raw."});
  c.push_back({"dlq count",
               {"CHANNEL", "HANDLER"},
               false,
               FilterFlags(),
               "Count a handler's dead letters (Admin.CountDeadLetters).",
               ""});
  c.push_back(
      {"dlq redrive",
       {"CHANNEL", "HANDLER"},
       false,
       With({{"ids", "ID,ID", true, "These DLQ entry ids (comma-separated; repeatable)."},
             {"all", "", false, "Every dead letter present when the job starts."}},
            With(FilterFlags(),
                 {{"to-channel", "C", false, "Publish to channel C instead."},
                  {"to-source-channel", "", false,
                   "Publish to the source channel (every handler on it sees it again)."},
                  {"reset-attempts", "", false, "Restart the attempt count at 1."},
                  {"dry-run", "", false, "Only report what would move or be skipped."},
                  {"rate", "N", false, "At most N messages per second, 0..100000 (0 = no limit)."},
                  {"include-quarantined", "", false, "Redrive quarantined entries too."},
                  {"wait", "", false,
                   "Poll the job until it ends, progress on stderr; exit 65 unless it "
                   "SUCCEEDED."}})),
       "Start a redrive job (Admin.RedriveDeadLetters).",
       "Choose exactly one selection: --ids, --all, or filter flags (--reason/--since/--until).\n"
       "The default target is the handler's own retry stream (only this handler sees the\n"
       "messages again)."});
  c.push_back({"dlq delete",
               {"CHANNEL", "HANDLER", "ID"},
               true,
               {},
               "Delete dead letters by id (Admin.DeleteDeadLetters).",
               "Ids that do not exist are listed as 'not found'; the exit code is still 0."});
  c.push_back({"dlq purge",
               {"CHANNEL", "HANDLER"},
               false,
               {{"expected", "N", false,
                 "Required: the current DLQ length; the daemon refuses (FAILED_PRECONDITION, "
                 "exit 9) when it differs."}},
               "Delete a handler's whole DLQ (Admin.PurgeDeadLetters).",
               ""});
  c.push_back(
      {"job status", {"JOB_ID"}, false, {}, "Show a redrive job (Admin.GetRedriveJob).", ""});
  c.push_back(
      {"job cancel", {"JOB_ID"}, false, {}, "Cancel a redrive job (Admin.CancelRedriveJob).", ""});
  c.push_back({"publish",
               {"CHANNEL"},
               false,
               {{"data", "STRING", false, "The payload."},
                {"file", "F", false, "Read the payload from file F ('-' = stdin)."},
                {"content-type", "T", false, "Content type, e.g. application/json."},
                {"header", "K=V", true, "An application header; repeatable, order kept."}},
               "Publish one message (Broker.Publish); prints the entry id.",
               "Without --data or --file the payload is read from stdin up to end of file."});
  c.push_back(
      {"tail",
       {"CHANNEL"},
       false,
       {{"handler", "ID", false,
         "Read as consumer group ID (Broker.Subscribe) instead of plainly; the group stays on "
         "the channel ('handlers delete' removes it). Never a live handler's id: tail would "
         "compete with it for messages."},
        {"from-start", "", false,
         "Start at the first entry (default: only new entries). With --handler: a new group "
         "starts there; an existing group keeps its position."},
        {"count", "N", false, "Exit after N deliveries."},
        {"ack", "", false,
         "With --handler: register without auto-ack, one delivery in flight, and ACK each "
         "delivery once printed (default: auto-ack)."}},
       "Print a channel's entries as they arrive (Broker.Tail; no consumer group).",
       "One line per entry: ENTRY_ID attempt=N headers={k=v, ...} PAYLOAD (escaped).\n"
       "With --json, one Delivery JSON object per line. Exits 0 after --count deliveries\n"
       "or on SIGINT. Without --handler nothing is read as a group: no handler misses an\n"
       "entry and nothing is left in Redis."});
  c.push_back({"pause",
               {"CHANNEL", "HANDLER"},
               false,
               {},
               "Pause deliveries to a handler (Admin.PauseHandler).",
               ""});
  c.push_back({"resume",
               {"CHANNEL", "HANDLER"},
               false,
               {},
               "Resume a paused handler (Admin.ResumeHandler).",
               ""});
  c.push_back(
      {"health",
       {},
       false,
       {{"service", "NAME", false,
         "Health service to check: '' (default: the daemon and Redis), 'readiness' (the same) "
         "or 'liveness' (the process alone, whatever Redis does)."}},
       "Check the daemon's health (grpc.health.v1.Health/Check); exit 0 only when SERVING.",
       "Prints the status (SERVING, NOT_SERVING, ...). Exit 0: SERVING; 67: the daemon\n"
       "answered another status; 14 (UNAVAILABLE), 4 (DEADLINE_EXCEEDED): no answer;\n"
       "5 (NOT_FOUND): no such service. Needs no token: for container health checks."});
  c.push_back({"migrate-legacy",
               {"CHANNEL"},
               false,
               {{"dry-run", "", false, "Only report what would move."}},
               "Move EggAI's shared retry stream into per-handler streams "
               "(Admin.MigrateLegacyKeys).",
               ""});
  return c;
}

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags, absl::string_view name) {
  for (const FlagSpec& f : flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string FlagUsage(const FlagSpec& f) {
  return f.value_name.empty() ? absl::StrCat("--", f.name)
                              : absl::StrCat("--", f.name, " ", f.value_name);
}

void AppendFlagHelp(std::string& out, const std::vector<FlagSpec>& flags) {
  size_t width = 0;
  for (const FlagSpec& f : flags) width = std::max(width, FlagUsage(f).size());
  for (const FlagSpec& f : flags) {
    std::string u = FlagUsage(f);
    absl::StrAppend(&out, "  ", u, std::string(width - u.size() + 2, ' '), f.help, "\n");
  }
}

std::string CommandUsage(const CommandSpec& c) {
  std::string out = absl::StrCat("redrivectl ", c.name);
  for (size_t i = 0; i < c.positional.size(); ++i) {
    absl::StrAppend(&out, " ", c.positional[i]);
    if (c.variadic && i + 1 == c.positional.size()) absl::StrAppend(&out, "...");
  }
  if (!c.flags.empty()) absl::StrAppend(&out, " [flags]");
  return out;
}

std::string SeeHelp(const CommandSpec* c) {
  return c == nullptr ? "(see redrivectl --help)"
                      : absl::StrCat("(see redrivectl ", c->name, " --help)");
}

absl::Status ApplyGlobal(const FlagSpec& f, const std::string& value, GlobalOptions& g,
                         ParsedArgs& out) {
  if (f.name == "help") {
    out.help = true;
  } else if (f.name == "version") {
    out.version = true;
  } else if (f.name == "json") {
    g.json = true;
  } else if (f.name == "addr") {
    if (value.empty()) return Usage("--addr: empty address");
    g.addr = value;
  } else if (f.name == "timeout") {
    double seconds = 0;
    if (!absl::SimpleAtod(value, &seconds) || !(seconds > 0) || seconds > 86400) {
      return Usage(
          absl::StrCat("--timeout: '", value, "' is not a number of seconds in (0, 86400]"));
    }
    g.timeout = absl::Seconds(seconds);
  } else if (f.name == "token-file") {
    if (value.empty()) return Usage("--token-file: empty file name");
    g.token_file = value;
  } else if (f.name == "operator") {
    g.operator_name = value;
  } else if (absl::StartsWith(f.name, "tls-")) {
    if (value.empty()) return Usage(absl::StrCat("--", f.name, ": empty value"));
    if (f.name == "tls-ca") g.tls_ca = value;
    if (f.name == "tls-cert") g.tls_cert = value;
    if (f.name == "tls-key") g.tls_key = value;
    if (f.name == "tls-server-name") g.tls_server_name = value;
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::HandlerRef> HandlerFromPositional(const ParsedArgs& args) {
  if (args.positional.size() < 2) return Usage("CHANNEL and HANDLER are required");
  if (args.positional[0].empty()) return Usage("CHANNEL is empty");
  if (args.positional[1].empty()) return Usage("HANDLER is empty");
  v1::HandlerRef ref;
  ref.set_channel(args.positional[0]);
  ref.set_handler_id(args.positional[1]);
  return ref;
}

bool HasFilter(const ParsedArgs& args) {
  return args.Has("reason") || args.Has("since") || args.Has("until");
}

absl::StatusOr<v1::DeadLetterFilter> BuildFilter(const ParsedArgs& args) {
  v1::DeadLetterFilter f;
  for (const std::string& r : args.GetAll("reason")) {
    if (r.empty()) return Usage("--reason: empty reason");
    f.add_reasons(r);
  }
  if (std::optional<std::string> s = args.Get("since")) {
    absl::StatusOr<int64_t> ms = ParseTimeMs("since", *s);
    if (!ms.ok()) return ms.status();
    f.set_from_unix_ms(*ms);
  }
  if (std::optional<std::string> u = args.Get("until")) {
    absl::StatusOr<int64_t> ms = ParseTimeMs("until", *u);
    if (!ms.ok()) return ms.status();
    f.set_to_unix_ms(*ms);
  }
  if (f.from_unix_ms() != 0 && f.to_unix_ms() != 0 && f.from_unix_ms() >= f.to_unix_ms()) {
    return Usage("--since must be before --until");
  }
  return f;
}

}  // namespace

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec>* const commands =
      new std::vector<CommandSpec>(MakeCommands());
  return *commands;
}

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec>* const flags = new std::vector<FlagSpec>({
      {"addr", "ADDR", false,
       "Daemon address: host:port or unix:/path (default $REDRIVE_ADDR, else 127.0.0.1:50051)."},
      {"timeout", "SECONDS", false, "Deadline of each call (default 10)."},
      {"token-file", "FILE", false,
       "Read the admin bearer token from FILE (default: $REDRIVE_ADMIN_TOKEN, else the file "
       "named by $REDRIVE_ADMIN_TOKEN_FILE)."},
      {"operator", "NAME", false, "Sent as x-redrive-operator on Admin calls (default $USER)."},
      {"tls-ca", "FILE", false,
       "Connect with TLS, trusting the CA certificates in FILE (PEM). Any --tls-* flag turns "
       "TLS on; without --tls-ca the system's roots are trusted."},
      {"tls-cert", "FILE", false,
       "Client certificate chain (PEM) for a daemon that requires one (--tls-client-ca, mTLS); "
       "needs --tls-key."},
      {"tls-key", "FILE", false, "Private key (PEM) of --tls-cert."},
      {"tls-server-name", "NAME", false,
       "The name the daemon's certificate must carry, when it is not the host of --addr."},
      {"json", "", false,
       "Print the response message as one line of JSON (proto field names, defaults "
       "included)."},
      {"help", "", false, "Show help (for a command: redrivectl CMD --help)."},
      {"version", "", false, "Print the version."},
  });
  return *flags;
}

bool ParsedArgs::Has(absl::string_view flag) const {
  return std::any_of(flags.begin(), flags.end(), [&](const auto& f) { return f.first == flag; });
}

std::optional<std::string> ParsedArgs::Get(absl::string_view flag) const {
  std::optional<std::string> out;
  for (const auto& [name, value] : flags) {
    if (name == flag) out = value;
  }
  return out;
}

std::vector<std::string> ParsedArgs::GetAll(absl::string_view flag) const {
  std::vector<std::string> out;
  for (const auto& [name, value] : flags) {
    if (name == flag) out.push_back(value);
  }
  return out;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const Environment& env) {
  ParsedArgs out;
  GlobalOptions& g = out.global;
  g.addr = env.addr.has_value() && !env.addr->empty() ? *env.addr : std::string(kDefaultAddr);
  g.operator_name = env.user.value_or("");
  std::vector<std::string> words;
  std::vector<std::string> seen_globals;
  bool flags_done = false;

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const bool is_flag = !flags_done && arg.size() > 1 && arg[0] == '-';
    if (!is_flag) {
      if (out.command != nullptr) {
        // A longer command (`handlers delete` after `handlers`) wins while no
        // positional argument was taken.
        const CommandSpec* longer = nullptr;
        if (out.positional.empty()) {
          const std::string joined = absl::StrCat(out.command->name, " ", arg);
          for (const CommandSpec& c : Commands()) {
            if (c.name == joined) longer = &c;
          }
        }
        if (longer != nullptr) {
          words.push_back(arg);
          out.command = longer;
        } else {
          out.positional.push_back(arg);
        }
        continue;
      }
      if (flags_done) return Usage(absl::StrCat("'--' before the command ", SeeHelp(nullptr)));
      words.push_back(arg);
      const std::string joined = absl::StrJoin(words, " ");
      bool prefix = false;
      for (const CommandSpec& c : Commands()) {
        if (c.name == joined) out.command = &c;
        if (absl::StartsWith(c.name, joined + " ")) prefix = true;
      }
      if (out.command == nullptr && !prefix) {
        return Usage(absl::StrCat("unknown command '", joined, "' ", SeeHelp(nullptr)));
      }
      continue;
    }
    if (arg == "--") {
      if (out.command == nullptr) {
        return Usage(absl::StrCat("'--' before the command ", SeeHelp(nullptr)));
      }
      flags_done = true;
      continue;
    }
    if (arg == "-h") {
      out.help = true;
      continue;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) {
      return Usage(absl::StrCat("unknown flag '", arg, "' ", SeeHelp(out.command)));
    }
    std::string name;
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = std::string(body.substr(0, eq));
      value = std::string(body.substr(eq + 1));
    } else {
      name = std::string(body);
    }
    const FlagSpec* spec = FindFlag(GlobalFlags(), name);
    const bool global = spec != nullptr;
    if (spec == nullptr && out.command != nullptr) spec = FindFlag(out.command->flags, name);
    if (spec == nullptr) {
      if (out.command == nullptr && !words.empty()) {
        return Usage(absl::StrCat("unknown flag --", name,
                                  " (command flags go after the "
                                  "command) ",
                                  SeeHelp(nullptr)));
      }
      return Usage(absl::StrCat(
          "unknown flag --", name,
          out.command != nullptr ? absl::StrCat(" for '", out.command->name, "' ") : " ",
          SeeHelp(out.command)));
    }
    if (spec->value_name.empty()) {
      if (value.has_value()) return Usage(absl::StrCat("--", name, " takes no value"));
      value = "";
    } else if (!value.has_value()) {
      if (i + 1 >= args.size()) return Usage(absl::StrCat("--", name, " needs a value"));
      value = args[++i];
    }
    if (global) {
      if (name != "help" && name != "json") {
        if (std::find(seen_globals.begin(), seen_globals.end(), name) != seen_globals.end()) {
          return Usage(absl::StrCat("--", name, " given twice"));
        }
        seen_globals.push_back(name);
      }
      absl::Status s = ApplyGlobal(*spec, *value, g, out);
      if (!s.ok()) return s;
      continue;
    }
    if (!spec->repeatable && out.Has(name)) {
      return Usage(absl::StrCat("--", name, " given twice"));
    }
    out.flags.emplace_back(name, *std::move(value));
  }

  if (out.help || out.version) return out;
  if (g.tls_cert.empty() != g.tls_key.empty()) {
    return Usage(g.tls_cert.empty() ? "--tls-key needs --tls-cert (the client certificate)"
                                    : "--tls-cert needs --tls-key (its private key)");
  }
  if (g.tls() && absl::StartsWith(g.addr, "unix:")) {
    return Usage(absl::StrCat("--tls-*: ", g.addr,
                              " is a Unix socket, which redrived serves in plaintext; use its "
                              "TCP address for TLS"));
  }
  if (out.command == nullptr) {
    if (words.empty()) return Usage(absl::StrCat("no command ", SeeHelp(nullptr)));
    std::vector<std::string> subs;
    const std::string prefix = absl::StrCat(absl::StrJoin(words, " "), " ");
    for (const CommandSpec& c : Commands()) {
      if (absl::StartsWith(c.name, prefix)) subs.push_back(c.name.substr(prefix.size()));
    }
    return Usage(absl::StrCat("'", absl::StrJoin(words, " "),
                              "' needs a subcommand: ", absl::StrJoin(subs, ", ")));
  }
  const CommandSpec& c = *out.command;
  const size_t n = out.positional.size();
  const size_t want = c.positional.size();
  if (n < want || (!c.variadic && n > want)) {
    return Usage(absl::StrCat("usage: ", CommandUsage(c), " ", SeeHelp(&c)));
  }
  return out;
}

absl::StatusOr<grpc::health::v1::HealthCheckRequest> BuildHealthCheck(const ParsedArgs& args) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(args.Get("service").value_or(""));
  return request;
}

std::string TokenSource::Describe() const {
  switch (kind) {
    case Kind::kFlagFile:
      return absl::StrCat("token file '", file, "'");
    case Kind::kEnvToken:
      return "REDRIVE_ADMIN_TOKEN";
    case Kind::kEnvFile:
      return absl::StrCat("token file '", file, "' (from REDRIVE_ADMIN_TOKEN_FILE)");
    case Kind::kNone:
      break;
  }
  return "no token";
}

TokenSource ChooseTokenSource(const GlobalOptions& global, const Environment& env) {
  TokenSource s;
  if (!global.token_file.empty()) {
    s.kind = TokenSource::Kind::kFlagFile;
    s.file = global.token_file;
  } else if (env.admin_token.has_value() && !env.admin_token->empty()) {
    s.kind = TokenSource::Kind::kEnvToken;
    s.token = *env.admin_token;
  } else if (env.admin_token_file.has_value() && !env.admin_token_file->empty()) {
    s.kind = TokenSource::Kind::kEnvFile;
    s.file = *env.admin_token_file;
  }
  return s;
}

std::string UnauthenticatedHint(const TokenSource& source) {
  std::string out;
  if (source.kind == TokenSource::Kind::kNone) {
    out =
        "redrivectl: hint: no admin token was sent. Pass the daemon's token with "
        "--token-file FILE, or set REDRIVE_ADMIN_TOKEN (the token) or "
        "REDRIVE_ADMIN_TOKEN_FILE (a file holding it).\n";
  } else {
    out = absl::StrCat("redrivectl: hint: the daemon refused the token from ", source.Describe(),
                       ". Use the daemon's token: --token-file FILE, REDRIVE_ADMIN_TOKEN or "
                       "REDRIVE_ADMIN_TOKEN_FILE (first one set wins).\n");
  }
  absl::StrAppend(&out,
                  "redrivectl: hint: scripts/run.sh writes a token to "
                  "${XDG_RUNTIME_DIR:-/tmp}/redrive-admin-token when none is configured.\n");
  return out;
}

std::string TopLevelHelp() {
  std::string out =
      "redrivectl: operator CLI for redrived (handlers, dead letters, redrive jobs).\n\n"
      "Usage: redrivectl [global flags] COMMAND ARGS... [flags]\n\nCommands:\n";
  size_t width = 0;
  std::vector<std::string> usages;
  for (const CommandSpec& c : Commands()) {
    usages.push_back(CommandUsage(c).substr(std::string("redrivectl ").size()));
    width = std::max(width, usages.back().size());
  }
  for (size_t i = 0; i < Commands().size(); ++i) {
    absl::StrAppend(&out, "  ", usages[i], std::string(width - usages[i].size() + 2, ' '),
                    Commands()[i].summary, "\n");
  }
  absl::StrAppend(&out, "\nGlobal flags (before or after the command):\n");
  AppendFlagHelp(out, GlobalFlags());
  absl::StrAppend(
      &out,
      "\nAdmin calls send 'authorization: Bearer <token>' when a token is configured.\n"
      "\nExit codes: 0 OK; 1..16 the gRPC status code of a failed call (5 NOT_FOUND,\n"
      "9 FAILED_PRECONDITION, 12 UNIMPLEMENTED, 14 UNAVAILABLE, 16 UNAUTHENTICATED, ...);\n"
      "64 usage error; 65 a waited-for redrive job did not succeed; 66 unreadable file;\n"
      "130 interrupted while waiting.\n");
  return out;
}

std::string CommandHelp(const CommandSpec& command) {
  std::string out = absl::StrCat("Usage: ", CommandUsage(command), "\n\n", command.summary, "\n");
  if (!command.description.empty()) absl::StrAppend(&out, command.description, "\n");
  if (!command.flags.empty()) {
    absl::StrAppend(&out, "\nFlags:\n");
    AppendFlagHelp(out, command.flags);
  }
  absl::StrAppend(&out, "\nGlobal flags:\n");
  AppendFlagHelp(out, GlobalFlags());
  return out;
}

absl::StatusOr<uint64_t> ParseUnsigned(absl::string_view flag, absl::string_view text, uint64_t min,
                                       uint64_t max) {
  uint64_t v = 0;
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
  if (!digits || !absl::SimpleAtoi(text, &v) || v < min || v > max) {
    return Usage(absl::StrCat("--", flag, ": '", text, "' is not an integer in ", min, "..", max));
  }
  return v;
}

absl::StatusOr<int64_t> ParseTimeMs(absl::string_view flag, absl::string_view text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), absl::ascii_isdigit)) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(text, &ms)) {
      return Usage(absl::StrCat("--", flag, ": '", text, "' is out of range"));
    }
    return ms;
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return Usage(absl::StrCat("--", flag, ": '", text,
                              "' is neither Unix milliseconds nor RFC 3339 "
                              "(2024-05-01T12:00:00Z)"));
  }
  const int64_t ms = absl::ToUnixMillis(t);
  if (ms < 0) return Usage(absl::StrCat("--", flag, ": '", text, "' is before 1970"));
  return ms;
}

absl::StatusOr<v1::ListHandlersRequest> BuildListHandlers(const ParsedArgs& args) {
  v1::ListHandlersRequest r;
  if (std::optional<std::string> c = args.Get("channel")) {
    if (c->empty()) return Usage("--channel: empty channel");
    r.set_channel(*c);
  }
  return r;
}

absl::StatusOr<ListPlan> BuildListDeadLetters(const ParsedArgs& args) {
  ListPlan plan;
  v1::ListDeadLettersRequest& r = plan.request;
  absl::StatusOr<v1::HandlerRef> ref = HandlerFromPositional(args);
  if (!ref.ok()) return ref.status();
  *r.mutable_handler() = *ref;
  if (std::optional<std::string> v = args.Get("limit")) {
    absl::StatusOr<uint64_t> n = ParseUnsigned("limit", *v, 1, 1000);
    if (!n.ok()) return n.status();
    r.set_page_size(static_cast<uint32_t>(*n));
  }
  if (std::optional<std::string> v = args.Get("preview")) {
    absl::StatusOr<uint64_t> n = ParseUnsigned("preview", *v, 1, 65536);
    if (!n.ok()) return n.status();
    r.set_preview_bytes(static_cast<uint32_t>(*n));
  }
  if (std::optional<std::string> v = args.Get("cursor")) r.set_cursor(*v);
  r.set_order(args.Has("newest") ? v1::ORDER_NEWEST_FIRST : v1::ORDER_OLDEST_FIRST);
  if (HasFilter(args)) {
    absl::StatusOr<v1::DeadLetterFilter> f = BuildFilter(args);
    if (!f.ok()) return f.status();
    *r.mutable_filter() = *f;
  }
  plan.all_pages = args.Has("all-pages");
  return plan;
}

absl::StatusOr<ShowPlan> BuildGetDeadLetter(const ParsedArgs& args) {
  ShowPlan plan;
  absl::StatusOr<v1::HandlerRef> ref = HandlerFromPositional(args);
  if (!ref.ok()) return ref.status();
  *plan.request.mutable_handler() = *ref;
  if (args.positional.size() < 3 || args.positional[2].empty()) return Usage("ENTRY_ID is empty");
  plan.request.set_entry_id(args.positional[2]);
  plan.raw = args.Has("raw");
  if (plan.raw && args.global.json) return Usage("--raw and --json exclude each other");
  return plan;
}

absl::StatusOr<v1::CountDeadLettersRequest> BuildCountDeadLetters(const ParsedArgs& args) {
  v1::CountDeadLettersRequest r;
  absl::StatusOr<v1::HandlerRef> ref = HandlerFromPositional(args);
  if (!ref.ok()) return ref.status();
  *r.mutable_handler() = *ref;
  if (HasFilter(args)) {
    absl::StatusOr<v1::DeadLetterFilter> f = BuildFilter(args);
    if (!f.ok()) return f.status();
    *r.mutable_filter() = *f;
  }
  return r;
}

absl::StatusOr<RedrivePlan> BuildRedrive(const ParsedArgs& args) {
  RedrivePlan plan;
  v1::RedriveDeadLettersRequest& r = plan.request;
  absl::StatusOr<v1::HandlerRef> ref = HandlerFromPositional(args);
  if (!ref.ok()) return ref.status();
  *r.mutable_handler() = *ref;

  const int selections =
      (args.Has("ids") ? 1 : 0) + (args.Has("all") ? 1 : 0) + (HasFilter(args) ? 1 : 0);
  if (selections == 0) {
    return Usage("choose what to redrive: --ids, --all or filter flags (--reason/--since/--until)");
  }
  if (selections > 1) {
    return Usage("--ids, --all and filter flags (--reason/--since/--until) exclude each other");
  }
  if (args.Has("ids")) {
    v1::EntryIds* ids = r.mutable_ids();
    for (const std::string& v : args.GetAll("ids")) {
      for (absl::string_view id : absl::StrSplit(v, ',')) {
        id = absl::StripAsciiWhitespace(id);
        if (id.empty()) return Usage(absl::StrCat("--ids: empty id in '", v, "'"));
        ids->add_entry_ids(std::string(id));
      }
    }
    if (ids->entry_ids_size() > static_cast<int>(kMaxIds)) {
      return Usage(absl::StrCat("--ids: at most ", kMaxIds, " ids"));
    }
  } else if (args.Has("all")) {
    r.set_all(true);
  } else {
    absl::StatusOr<v1::DeadLetterFilter> f = BuildFilter(args);
    if (!f.ok()) return f.status();
    *r.mutable_filter() = *f;
  }

  if (args.Has("to-channel") && args.Has("to-source-channel")) {
    return Usage("--to-channel and --to-source-channel exclude each other");
  }
  if (std::optional<std::string> c = args.Get("to-channel")) {
    if (c->empty()) return Usage("--to-channel: empty channel");
    r.mutable_target()->set_kind(v1::RedriveTarget::TARGET_CHANNEL);
    r.mutable_target()->set_channel(*c);
  } else if (args.Has("to-source-channel")) {
    r.mutable_target()->set_kind(v1::RedriveTarget::TARGET_SOURCE_CHANNEL);
  } else {
    r.mutable_target()->set_kind(v1::RedriveTarget::TARGET_HANDLER_RETRY);
  }
  r.set_reset_attempts(args.Has("reset-attempts"));
  r.set_dry_run(args.Has("dry-run"));
  r.set_include_quarantined(args.Has("include-quarantined"));
  if (std::optional<std::string> v = args.Get("rate")) {
    absl::StatusOr<uint64_t> n = ParseUnsigned("rate", *v, 0, 100000);
    if (!n.ok()) return n.status();
    r.set_rate_per_second(static_cast<uint32_t>(*n));
  }
  plan.wait = args.Has("wait");
  if (plan.wait && r.dry_run()) return Usage("--wait and --dry-run exclude each other");
  return plan;
}

absl::StatusOr<v1::DeleteDeadLettersRequest> BuildDelete(const ParsedArgs& args) {
  v1::DeleteDeadLettersRequest r;
  absl::StatusOr<v1::HandlerRef> ref = HandlerFromPositional(args);
  if (!ref.ok()) return ref.status();
  *r.mutable_handler() = *ref;
  for (size_t i = 2; i < args.positional.size(); ++i) {
    if (args.positional[i].empty()) return Usage("empty entry id");
    r.add_entry_ids(args.positional[i]);
  }
  if (r.entry_ids_size() == 0) return Usage("at least one ID is required");
  if (r.entry_ids_size() > static_cast<int>(kMaxIds)) {
    return Usage(absl::StrCat("at most ", kMaxIds, " ids"));
  }
  return r;
}

absl::StatusOr<v1::PurgeDeadLettersRequest> BuildPurge(const ParsedArgs& args) {
  v1::PurgeDeadLettersRequest r;
  absl::StatusOr<v1::HandlerRef> ref = HandlerFromPositional(args);
  if (!ref.ok()) return ref.status();
  *r.mutable_handler() = *ref;
  std::optional<std::string> v = args.Get("expected");
  if (!v.has_value()) {
    return Usage(
        "dlq purge needs --expected N, the DLQ length you expect to delete (see 'dlq count')");
  }
  absl::StatusOr<uint64_t> n =
      ParseUnsigned("expected", *v, 0, std::numeric_limits<uint64_t>::max());
  if (!n.ok()) return n.status();
  r.set_expected_count(*n);
  return r;
}

absl::StatusOr<v1::DeleteHandlerRequest> BuildDeleteHandler(const ParsedArgs& args) {
  v1::DeleteHandlerRequest r;
  absl::StatusOr<v1::HandlerRef> ref = HandlerFromPositional(args);
  if (!ref.ok()) return ref.status();
  *r.mutable_handler() = *ref;
  const std::optional<std::string> retry = args.Get("expect-retry");
  const std::optional<std::string> dlq = args.Get("expect-dlq");
  if (!args.Has("force")) {
    if (retry.has_value() || dlq.has_value()) {
      return Usage("--expect-retry and --expect-dlq go with --force");
    }
    return r;
  }
  if (!retry.has_value() || !dlq.has_value()) {
    return Usage(
        "--force needs --expect-retry N and --expect-dlq N, the counts you expect to discard "
        "(see 'handlers')");
  }
  absl::StatusOr<uint64_t> n =
      ParseUnsigned("expect-retry", *retry, 0, std::numeric_limits<uint64_t>::max());
  if (!n.ok()) return n.status();
  absl::StatusOr<uint64_t> d =
      ParseUnsigned("expect-dlq", *dlq, 0, std::numeric_limits<uint64_t>::max());
  if (!d.ok()) return d.status();
  r.set_force(true);
  r.set_expected_retry_entries(*n);
  r.set_expected_dead_letters(*d);
  return r;
}

absl::StatusOr<std::string> BuildJobId(const ParsedArgs& args) {
  if (args.positional.empty() || args.positional[0].empty()) return Usage("JOB_ID is empty");
  return args.positional[0];
}

absl::StatusOr<v1::HandlerRef> BuildHandlerRef(const ParsedArgs& args) {
  return HandlerFromPositional(args);
}

absl::StatusOr<v1::MigrateLegacyKeysRequest> BuildMigrate(const ParsedArgs& args) {
  v1::MigrateLegacyKeysRequest r;
  if (args.positional.empty() || args.positional[0].empty()) return Usage("CHANNEL is empty");
  r.set_channel(args.positional[0]);
  r.set_dry_run(args.Has("dry-run"));
  return r;
}

absl::StatusOr<PublishPlan> BuildPublish(const ParsedArgs& args) {
  PublishPlan plan;
  if (args.positional.empty() || args.positional[0].empty()) return Usage("CHANNEL is empty");
  plan.request.set_channel(args.positional[0]);
  v1::OutgoingMessage* m = plan.request.mutable_message();
  if (args.Has("data") && args.Has("file")) return Usage("--data and --file exclude each other");
  if (std::optional<std::string> d = args.Get("data")) {
    plan.source = PublishPlan::Source::kData;
    m->set_payload(*d);
  } else if (std::optional<std::string> f = args.Get("file")) {
    if (f->empty()) return Usage("--file: empty file name");
    if (*f == "-") {
      plan.source = PublishPlan::Source::kStdin;
    } else {
      plan.source = PublishPlan::Source::kFile;
      plan.file = *f;
    }
  }
  if (std::optional<std::string> t = args.Get("content-type")) m->set_content_type(*t);
  for (const std::string& h : args.GetAll("header")) {
    const size_t eq = h.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Usage(absl::StrCat("--header: '", h, "' is not KEY=VALUE"));
    }
    v1::Header* header = m->add_headers();
    header->set_key(h.substr(0, eq));
    header->set_value(h.substr(eq + 1));
  }
  return plan;
}

absl::StatusOr<TailPlan> BuildTail(const ParsedArgs& args) {
  TailPlan plan;
  if (args.positional.empty() || args.positional[0].empty()) return Usage("CHANNEL is empty");
  if (std::optional<std::string> v = args.Get("count")) {
    absl::StatusOr<uint64_t> n =
        ParseUnsigned("count", *v, 1, std::numeric_limits<uint32_t>::max());
    if (!n.ok()) return n.status();
    plan.count = *n;
  }
  plan.ack = args.Has("ack");
  plan.group = args.Has("handler");
  if (!plan.group) {
    if (plan.ack) {
      return Usage(
          "--ack acknowledges in a consumer group: name one with --handler (a plain tail "
          "reads without a group)");
    }
    plan.request.set_channel(args.positional[0]);
    plan.request.set_from_start(args.Has("from-start"));
    plan.request.set_max_entries(plan.count);
    return plan;
  }
  v1::Register& reg = plan.reg;
  reg.set_channel(args.positional[0]);
  const std::string handler = *args.Get("handler");
  if (handler.empty()) return Usage("--handler: empty handler id");
  reg.set_handler_id(handler);
  reg.mutable_start()->set_kind(args.Has("from-start") ? v1::StartPosition::START_BACKLOG
                                                       : v1::StartPosition::START_NEW);
  reg.set_consumer_label("redrivectl");
  if (plan.ack) {
    // One in flight: when the last wanted delivery is printed, Stop goes out
    // before its ACK, so nothing else is ever delivered to this stream.
    reg.set_max_in_flight(1);
  } else {
    reg.set_auto_ack(true);
  }
  return plan;
}

}  // namespace redrive::ctl
