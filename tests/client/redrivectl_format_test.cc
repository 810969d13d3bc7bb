// redrivectl: argument parsing, request building and output formatting
// (client/redrivectl/commands.h, format.h). No network.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "client/redrivectl/commands.h"
#include "client/redrivectl/format.h"
#include "tests/testing/status_matchers.h"

namespace redrive::ctl {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args, Environment env = {}) {
  return ParseArgs(args, env);
}

ParsedArgs ParseOk(std::vector<std::string> args, Environment env = {}) {
  absl::StatusOr<ParsedArgs> p = Parse(std::move(args), std::move(env));
  EXPECT_THAT(p, IsOk());
  return p.ok() ? *p : ParsedArgs{};
}

// The usage error message of `args` ("" when they parse and build).
template <typename Builder>
std::string BuildError(std::vector<std::string> args, Builder builder) {
  absl::StatusOr<ParsedArgs> p = Parse(std::move(args));
  if (!p.ok()) return std::string(p.status().message());
  auto r = builder(*p);
  return r.ok() ? "" : std::string(r.status().message());
}

// ------------------------------------------------------------ parsing

TEST(ParseArgsTest, GlobalFlagsAnywhereAndDefaultsFromEnvironment) {
  Environment env;
  env.addr = "unix:/run/redrive/redrive.sock";
  env.user = "alice";
  ParsedArgs p = ParseOk({"dlq", "list", "orders", "A", "--json", "--limit=5"}, env);
  ASSERT_NE(p.command, nullptr);
  EXPECT_EQ(p.command->name, "dlq list");
  EXPECT_THAT(p.positional, ElementsAre("orders", "A"));
  EXPECT_EQ(p.global.addr, "unix:/run/redrive/redrive.sock");
  EXPECT_EQ(p.global.operator_name, "alice");
  EXPECT_TRUE(p.global.json);
  EXPECT_EQ(p.Get("limit"), "5");

  ParsedArgs q = ParseOk({"--addr", "127.0.0.1:9", "--timeout", "2.5", "--operator", "bob",
                          "handlers", "--token-file", "/t"},
                         env);
  EXPECT_EQ(q.global.addr, "127.0.0.1:9");
  EXPECT_EQ(q.global.timeout, absl::Milliseconds(2500));
  EXPECT_EQ(q.global.operator_name, "bob");
  EXPECT_EQ(q.global.token_file, "/t");
  EXPECT_FALSE(q.global.json);
}

TEST(ParseArgsTest, DefaultAddressWithoutEnvironment) {
  EXPECT_EQ(ParseOk({"handlers"}).global.addr, "127.0.0.1:50051");
  EXPECT_EQ(ParseOk({"handlers"}).global.timeout, absl::Seconds(10));
}

TEST(ParseArgsTest, SeparateAndInlineValuesAndDoubleDash) {
  ParsedArgs p = ParseOk({"dlq", "delete", "orders", "A", "--", "1-0", "--not-a-flag"});
  EXPECT_THAT(p.positional, ElementsAre("orders", "A", "1-0", "--not-a-flag"));
  ParsedArgs q = ParseOk({"publish", "orders", "--data", "--x", "--header=a=b=c"});
  EXPECT_EQ(q.Get("data"), "--x");
  EXPECT_EQ(q.Get("header"), "a=b=c");
}

TEST(ParseArgsTest, UsageErrors) {
  EXPECT_THAT(Parse({}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no command")));
  EXPECT_THAT(Parse({"frobnicate"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("unknown command 'frobnicate'")));
  EXPECT_THAT(Parse({"dlq", "frob"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("unknown command 'dlq frob'")));
  EXPECT_THAT(Parse({"dlq"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("needs a subcommand: list, show, count, "
                                                 "redrive, delete, purge")));
  EXPECT_THAT(Parse({"handlers", "--bogus"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown flag --bogus for 'handlers'")));
  EXPECT_THAT(Parse({"handlers", "-x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '-x'")));
  // A command flag before its command.
  EXPECT_THAT(Parse({"--limit", "5", "dlq", "list", "a", "b"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --limit")));
  EXPECT_THAT(Parse({"dlq", "list", "a", "b", "--limit"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--limit needs a value")));
  EXPECT_THAT(Parse({"dlq", "list", "a", "b", "--newest=yes"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--newest takes no value")));
  EXPECT_THAT(Parse({"dlq", "list", "a", "b", "--limit=1", "--limit=2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--limit given twice")));
  EXPECT_THAT(Parse({"--addr=a:1", "--addr=b:1", "handlers"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--addr given twice")));
  EXPECT_THAT(Parse({"dlq", "list", "a"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("usage: redrivectl dlq list CHANNEL HANDLER [flags]")));
  EXPECT_THAT(Parse({"dlq", "list", "a", "b", "c"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("usage:")));
  EXPECT_THAT(Parse({"dlq", "delete", "a", "b"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("usage:")));
  for (const char* t : {"0", "-1", "abc", "86401"}) {
    EXPECT_THAT(Parse({"--timeout", t, "handlers"}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--timeout")))
        << t;
  }
}

TEST(ParseArgsTest, TlsFlagsTurnTlsOnAndGoTogether) {
  EXPECT_FALSE(ParseOk({"handlers"}).global.tls());
  ParsedArgs p = ParseOk({"--tls-ca", "/ca.crt", "handlers", "--tls-server-name=redrive.local"});
  EXPECT_TRUE(p.global.tls());
  EXPECT_EQ(p.global.tls_ca, "/ca.crt");
  EXPECT_EQ(p.global.tls_server_name, "redrive.local");
  ParsedArgs q = ParseOk({"publish", "o", "--tls-cert=/c.crt", "--tls-key", "/c.key"});
  EXPECT_TRUE(q.global.tls());
  EXPECT_EQ(q.global.tls_cert, "/c.crt");
  EXPECT_EQ(q.global.tls_key, "/c.key");
  EXPECT_EQ(q.global.tls_ca, "");

  using C = absl::StatusCode;
  EXPECT_THAT(Parse({"--tls-cert=/c.crt", "handlers"}),
              StatusIs(C::kInvalidArgument, "--tls-cert needs --tls-key (its private key)"));
  EXPECT_THAT(Parse({"--tls-key=/c.key", "handlers"}),
              StatusIs(C::kInvalidArgument, "--tls-key needs --tls-cert (the client certificate)"));
  EXPECT_THAT(Parse({"--tls-ca=", "handlers"}),
              StatusIs(C::kInvalidArgument, "--tls-ca: empty value"));
  EXPECT_THAT(Parse({"--addr=unix:/run/r.sock", "--tls-ca=/ca.crt", "handlers"}),
              StatusIs(C::kInvalidArgument,
                       "--tls-*: unix:/run/r.sock is a Unix socket, which redrived serves in "
                       "plaintext; use its TCP address for TLS"));
  EXPECT_THAT(Parse({"--tls-ca=/a", "--tls-ca=/b", "handlers"}),
              StatusIs(C::kInvalidArgument, HasSubstr("--tls-ca given twice")));
}

TEST(ParseArgsTest, HelpSkipsPositionalChecks) {
  ParsedArgs p = ParseOk({"dlq", "redrive", "--help"});
  EXPECT_TRUE(p.help);
  ASSERT_NE(p.command, nullptr);
  EXPECT_EQ(p.command->name, "dlq redrive");
  ParsedArgs q = ParseOk({"-h"});
  EXPECT_TRUE(q.help);
  EXPECT_EQ(q.command, nullptr);
}

TEST(HelpTest, ListsEveryCommandAndItsFlags) {
  const std::string top = TopLevelHelp();
  for (const CommandSpec& c : Commands()) {
    EXPECT_THAT(top, HasSubstr("  " + c.name + " ")) << c.name;
    const std::string help = CommandHelp(c);
    EXPECT_THAT(help, HasSubstr("Usage: redrivectl " + c.name));
    for (const FlagSpec& f : c.flags) EXPECT_THAT(help, HasSubstr("--" + f.name)) << c.name;
    EXPECT_THAT(help, HasSubstr("--token-file FILE"));
  }
  EXPECT_THAT(top, HasSubstr("64 usage error"));
}

// ------------------------------------------------------------ values

TEST(ParseValueTest, Unsigned) {
  EXPECT_EQ(*ParseUnsigned("limit", "1000", 1, 1000), 1000u);
  EXPECT_THAT(ParseUnsigned("limit", "1001", 1, 1000),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--limit: '1001' is not an integer in 1..1000")));
  for (const char* bad : {"", "0", "+5", "-5", " 5", "5x", "1e3", "99999999999999999999999"}) {
    EXPECT_FALSE(ParseUnsigned("limit", bad, 1, 1000).ok()) << bad;
  }
}

TEST(ParseValueTest, TimeAsUnixMillisOrRfc3339) {
  EXPECT_EQ(*ParseTimeMs("since", "1714564800000"), 1714564800000);
  EXPECT_EQ(*ParseTimeMs("since", "2024-05-01T12:00:00Z"), 1714564800000);
  EXPECT_EQ(*ParseTimeMs("since", "2024-05-01T12:00:00.250Z"), 1714564800250);
  EXPECT_EQ(*ParseTimeMs("since", "2024-05-01T14:00:00+02:00"), 1714564800000);
  for (const char* bad : {"", "yesterday", "2024-05-01", "-5", "1969-12-31T00:00:00Z"}) {
    EXPECT_THAT(ParseTimeMs("since", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--since")))
        << bad;
  }
}

// ------------------------------------------------------------ requests

TEST(BuildTest, ListDeadLettersWithEveryFlag) {
  absl::StatusOr<ListPlan> plan = BuildListDeadLetters(
      ParseOk({"dlq", "list", "orders", "A", "--limit", "50", "--cursor", "c1", "--newest",
               "--reason", "poison", "--reason=terminated", "--since", "1000", "--until",
               "2024-05-01T12:00:00Z", "--preview", "16", "--all-pages"}));
  ASSERT_THAT(plan, IsOk());
  const v1::ListDeadLettersRequest& r = plan->request;
  EXPECT_EQ(r.handler().channel(), "orders");
  EXPECT_EQ(r.handler().handler_id(), "A");
  EXPECT_EQ(r.page_size(), 50u);
  EXPECT_EQ(r.cursor(), "c1");
  EXPECT_EQ(r.order(), v1::ORDER_NEWEST_FIRST);
  EXPECT_THAT(r.filter().reasons(), ElementsAre("poison", "terminated"));
  EXPECT_EQ(r.filter().from_unix_ms(), 1000);
  EXPECT_EQ(r.filter().to_unix_ms(), 1714564800000);
  EXPECT_EQ(r.preview_bytes(), 16u);
  EXPECT_TRUE(plan->all_pages);

  absl::StatusOr<ListPlan> plain = BuildListDeadLetters(ParseOk({"dlq", "list", "o", "A"}));
  ASSERT_THAT(plain, IsOk());
  EXPECT_EQ(plain->request.page_size(), 0u);
  EXPECT_EQ(plain->request.order(), v1::ORDER_OLDEST_FIRST);
  EXPECT_FALSE(plain->request.has_filter());
  EXPECT_FALSE(plain->all_pages);
}

TEST(BuildTest, ListDeadLettersRejectsBadValues) {
  EXPECT_THAT(BuildError({"dlq", "list", "o", "A", "--limit", "0"}, BuildListDeadLetters),
              HasSubstr("--limit: '0' is not an integer in 1..1000"));
  EXPECT_THAT(BuildError({"dlq", "list", "o", "A", "--preview", "65537"}, BuildListDeadLetters),
              HasSubstr("--preview"));
  EXPECT_THAT(BuildError({"dlq", "list", "o", "A", "--since", "2000", "--until", "1000"},
                         BuildListDeadLetters),
              HasSubstr("--since must be before --until"));
  EXPECT_THAT(BuildError({"dlq", "list", "o", "A", "--reason="}, BuildListDeadLetters),
              HasSubstr("--reason: empty reason"));
  EXPECT_THAT(BuildError({"dlq", "list", "", "A"}, BuildListDeadLetters),
              HasSubstr("CHANNEL is empty"));
}

TEST(BuildTest, ShowAndCount) {
  absl::StatusOr<ShowPlan> show =
      BuildGetDeadLetter(ParseOk({"dlq", "show", "orders", "A", "5-1", "--raw"}));
  ASSERT_THAT(show, IsOk());
  EXPECT_EQ(show->request.handler().channel(), "orders");
  EXPECT_EQ(show->request.entry_id(), "5-1");
  EXPECT_TRUE(show->raw);
  EXPECT_THAT(BuildError({"dlq", "show", "o", "A", "1-0", "--raw", "--json"}, BuildGetDeadLetter),
              HasSubstr("--raw and --json exclude each other"));

  absl::StatusOr<v1::CountDeadLettersRequest> count =
      BuildCountDeadLetters(ParseOk({"dlq", "count", "orders", "A", "--reason", "poison"}));
  ASSERT_THAT(count, IsOk());
  EXPECT_THAT(count->filter().reasons(), ElementsAre("poison"));
  EXPECT_FALSE(BuildCountDeadLetters(ParseOk({"dlq", "count", "o", "A"}))->has_filter());
}

TEST(BuildTest, RedriveSelectionsAndTargets) {
  absl::StatusOr<RedrivePlan> ids = BuildRedrive(
      ParseOk({"dlq", "redrive", "orders", "A", "--ids", "1-0, 2-0", "--ids=3-0", "--wait"}));
  ASSERT_THAT(ids, IsOk());
  EXPECT_THAT(ids->request.ids().entry_ids(), ElementsAre("1-0", "2-0", "3-0"));
  EXPECT_EQ(ids->request.target().kind(), v1::RedriveTarget::TARGET_HANDLER_RETRY);
  EXPECT_FALSE(ids->request.dry_run());
  EXPECT_TRUE(ids->wait);

  absl::StatusOr<RedrivePlan> all = BuildRedrive(
      ParseOk({"dlq", "redrive", "orders", "A", "--all", "--to-channel", "replay",
               "--reset-attempts", "--dry-run", "--rate", "100", "--include-quarantined"}));
  ASSERT_THAT(all, IsOk());
  const v1::RedriveDeadLettersRequest& r = all->request;
  EXPECT_EQ(r.selection_case(), v1::RedriveDeadLettersRequest::kAll);
  EXPECT_TRUE(r.all());
  EXPECT_EQ(r.target().kind(), v1::RedriveTarget::TARGET_CHANNEL);
  EXPECT_EQ(r.target().channel(), "replay");
  EXPECT_TRUE(r.reset_attempts());
  EXPECT_TRUE(r.dry_run());
  EXPECT_EQ(r.rate_per_second(), 100u);
  EXPECT_TRUE(r.include_quarantined());

  absl::StatusOr<RedrivePlan> filter = BuildRedrive(
      ParseOk({"dlq", "redrive", "orders", "A", "--reason", "max_retries", "--to-source-channel"}));
  ASSERT_THAT(filter, IsOk());
  EXPECT_EQ(filter->request.selection_case(), v1::RedriveDeadLettersRequest::kFilter);
  EXPECT_THAT(filter->request.filter().reasons(), ElementsAre("max_retries"));
  EXPECT_EQ(filter->request.target().kind(), v1::RedriveTarget::TARGET_SOURCE_CHANNEL);
}

TEST(BuildTest, RedriveUsageErrors) {
  EXPECT_THAT(BuildError({"dlq", "redrive", "o", "A"}, BuildRedrive),
              HasSubstr("choose what to redrive"));
  EXPECT_THAT(BuildError({"dlq", "redrive", "o", "A", "--all", "--ids", "1-0"}, BuildRedrive),
              HasSubstr("exclude each other"));
  EXPECT_THAT(BuildError({"dlq", "redrive", "o", "A", "--all", "--reason", "x"}, BuildRedrive),
              HasSubstr("exclude each other"));
  EXPECT_THAT(BuildError({"dlq", "redrive", "o", "A", "--ids", "1-0,,2-0"}, BuildRedrive),
              HasSubstr("--ids: empty id"));
  EXPECT_THAT(
      BuildError({"dlq", "redrive", "o", "A", "--all", "--to-channel", "x", "--to-source-channel"},
                 BuildRedrive),
      HasSubstr("--to-channel and --to-source-channel exclude each other"));
  EXPECT_THAT(BuildError({"dlq", "redrive", "o", "A", "--all", "--rate", "100001"}, BuildRedrive),
              HasSubstr("--rate"));
  EXPECT_THAT(
      BuildError({"dlq", "redrive", "o", "A", "--all", "--dry-run", "--wait"}, BuildRedrive),
      HasSubstr("--wait and --dry-run exclude each other"));
}

TEST(BuildTest, DeletePurgeJobPauseMigrate) {
  absl::StatusOr<v1::DeleteDeadLettersRequest> del =
      BuildDelete(ParseOk({"dlq", "delete", "orders", "A", "1-0", "2-0"}));
  ASSERT_THAT(del, IsOk());
  EXPECT_THAT(del->entry_ids(), ElementsAre("1-0", "2-0"));

  EXPECT_THAT(BuildError({"dlq", "purge", "o", "A"}, BuildPurge), HasSubstr("needs --expected"));
  EXPECT_THAT(BuildError({"dlq", "purge", "o", "A", "--expected", "-1"}, BuildPurge),
              HasSubstr("--expected"));
  absl::StatusOr<v1::PurgeDeadLettersRequest> purge =
      BuildPurge(ParseOk({"dlq", "purge", "orders", "A", "--expected", "0"}));
  ASSERT_THAT(purge, IsOk());
  EXPECT_EQ(purge->expected_count(), 0u);
  EXPECT_EQ(purge->handler().handler_id(), "A");

  EXPECT_EQ(*BuildJobId(ParseOk({"job", "cancel", "j-1"})), "j-1");
  EXPECT_EQ(BuildHandlerRef(ParseOk({"pause", "orders", "A"}))->handler_id(), "A");
  absl::StatusOr<v1::MigrateLegacyKeysRequest> m =
      BuildMigrate(ParseOk({"migrate-legacy", "orders", "--dry-run"}));
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->channel(), "orders");
  EXPECT_TRUE(m->dry_run());
}

TEST(BuildTest, PublishSourcesAndHeaders) {
  absl::StatusOr<PublishPlan> data = BuildPublish(
      ParseOk({"publish", "orders", "--data", "{\"id\":1}", "--content-type", "application/json",
               "--header", "tenant=acme", "--header", "k=a=b", "--header", "tenant=again"}));
  ASSERT_THAT(data, IsOk());
  EXPECT_EQ(data->source, PublishPlan::Source::kData);
  const v1::OutgoingMessage& m = data->request.message();
  EXPECT_EQ(m.payload(), "{\"id\":1}");
  EXPECT_EQ(m.content_type(), "application/json");
  ASSERT_EQ(m.headers_size(), 3);
  EXPECT_EQ(m.headers(0).key(), "tenant");
  EXPECT_EQ(m.headers(0).value(), "acme");
  EXPECT_EQ(m.headers(1).key(), "k");
  EXPECT_EQ(m.headers(1).value(), "a=b");
  EXPECT_EQ(m.headers(2).value(), "again");

  absl::StatusOr<PublishPlan> file = BuildPublish(ParseOk({"publish", "o", "--file", "/p"}));
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ(file->source, PublishPlan::Source::kFile);
  EXPECT_EQ(file->file, "/p");
  EXPECT_EQ(BuildPublish(ParseOk({"publish", "o", "--file", "-"}))->source,
            PublishPlan::Source::kStdin);
  EXPECT_EQ(BuildPublish(ParseOk({"publish", "o"}))->source, PublishPlan::Source::kStdin);

  EXPECT_THAT(BuildError({"publish", "o", "--data", "x", "--file", "f"}, BuildPublish),
              HasSubstr("--data and --file exclude each other"));
  EXPECT_THAT(BuildError({"publish", "o", "--header", "novalue"}, BuildPublish),
              HasSubstr("--header: 'novalue' is not KEY=VALUE"));
  EXPECT_THAT(BuildError({"publish", "o", "--header", "=v"}, BuildPublish),
              HasSubstr("is not KEY=VALUE"));
}

TEST(BuildTest, TailPlainByDefaultAndAsAGroupWithHandler) {
  absl::StatusOr<TailPlan> plain = BuildTail(ParseOk({"tail", "orders"}));
  ASSERT_THAT(plain, IsOk());
  EXPECT_FALSE(plain->group);
  EXPECT_EQ(plain->request.channel(), "orders");
  EXPECT_FALSE(plain->request.from_start());
  EXPECT_EQ(plain->request.max_entries(), 0u);
  EXPECT_EQ(plain->count, 0u);
  EXPECT_FALSE(plain->ack);

  absl::StatusOr<TailPlan> counted =
      BuildTail(ParseOk({"tail", "orders", "--from-start", "--count", "2"}));
  ASSERT_THAT(counted, IsOk());
  EXPECT_FALSE(counted->group);
  EXPECT_TRUE(counted->request.from_start());
  EXPECT_EQ(counted->request.max_entries(), 2u);
  EXPECT_EQ(counted->count, 2u);

  absl::StatusOr<TailPlan> group = BuildTail(ParseOk({"tail", "orders", "--handler", "dbg"}));
  ASSERT_THAT(group, IsOk());
  EXPECT_TRUE(group->group);
  EXPECT_EQ(group->reg.channel(), "orders");
  EXPECT_EQ(group->reg.handler_id(), "dbg");
  EXPECT_TRUE(group->reg.auto_ack());
  EXPECT_FALSE(group->reg.has_retry_policy());
  EXPECT_EQ(group->reg.start().kind(), v1::StartPosition::START_NEW);

  absl::StatusOr<TailPlan> acking = BuildTail(
      ParseOk({"tail", "orders", "--handler", "dbg", "--from-start", "--count", "3", "--ack"}));
  ASSERT_THAT(acking, IsOk());
  EXPECT_TRUE(acking->group);
  EXPECT_EQ(acking->reg.handler_id(), "dbg");
  EXPECT_FALSE(acking->reg.auto_ack());
  EXPECT_EQ(acking->reg.max_in_flight(), 1u);
  EXPECT_EQ(acking->reg.start().kind(), v1::StartPosition::START_BACKLOG);
  EXPECT_EQ(acking->count, 3u);
  EXPECT_TRUE(acking->ack);

  EXPECT_THAT(BuildError({"tail", "o", "--count", "0"}, BuildTail), HasSubstr("--count"));
  EXPECT_THAT(BuildError({"tail", "o", "--handler="}, BuildTail), HasSubstr("--handler"));
  EXPECT_EQ(BuildError({"tail", "o", "--ack"}, BuildTail),
            "--ack acknowledges in a consumer group: name one with --handler (a plain tail "
            "reads without a group)");
}

TEST(BuildTest, HealthChecksTheOverallServiceUnlessOneIsNamed) {
  absl::StatusOr<grpc::health::v1::HealthCheckRequest> overall =
      BuildHealthCheck(ParseOk({"health"}));
  ASSERT_THAT(overall, IsOk());
  EXPECT_EQ(overall->service(), "");
  absl::StatusOr<grpc::health::v1::HealthCheckRequest> live =
      BuildHealthCheck(ParseOk({"--addr", "127.0.0.1:8081", "health", "--service", "liveness"}));
  ASSERT_THAT(live, IsOk());
  EXPECT_EQ(live->service(), "liveness");
  EXPECT_EQ(BuildError({"health", "extra"}, BuildHealthCheck),
            "usage: redrivectl health [flags] (see redrivectl health --help)");
  EXPECT_EQ(kExitNotServing, 67);
}

// ------------------------------------------------------------ formatting

TEST(FormatTest, TableAlignsByCodePoints) {
  Table t({"A", "LONG_HEADER", "Z"});
  t.AddRow({"caf\xc3\xa9", "x", "last column is not padded"});
  t.AddRow({"a", "", "z"});
  EXPECT_EQ(t.Render(),
            "A     LONG_HEADER  Z\n"
            "caf\xc3\xa9  x            last column is not padded\n"
            "a                  z\n");
}

TEST(FormatTest, EscapeForLine) {
  EXPECT_EQ(EscapeForLine("plain {\"a\":1}"), "plain {\"a\":1}");
  EXPECT_EQ(EscapeForLine("a\nb\tc\rd\\e"), "a\\nb\\tc\\rd\\\\e");
  EXPECT_EQ(EscapeForLine(std::string("\x00\x1b[31m\x7f", 7)), "\\x00\\x1B[31m\\x7F");
  EXPECT_EQ(EscapeForLine("gr\xc3\xbcn \xe2\x82\xac \xf0\x9f\x98\x80"),
            "gr\xc3\xbcn \xe2\x82\xac \xf0\x9f\x98\x80");
  // Invalid UTF-8: a lone continuation byte, a truncated sequence, an
  // overlong encoding, a surrogate, and a C1 control (CSI).
  EXPECT_EQ(EscapeForLine("\x80"), "\\x80");
  EXPECT_EQ(EscapeForLine("\xe2\x82"), "\\xE2\\x82");
  EXPECT_EQ(EscapeForLine("\xc0\xaf"), "\\xC0\\xAF");
  EXPECT_EQ(EscapeForLine("\xed\xa0\x80"), "\\xED\\xA0\\x80");
  EXPECT_EQ(EscapeForLine("\xc2\x9b"), "\\xC2\\x9B");
}

TEST(FormatTest, TimesAndDurations) {
  EXPECT_EQ(FormatUnixMs(0), "-");
  EXPECT_EQ(FormatUnixMs(1714564800250), "2024-05-01T12:00:00.250Z");
  EXPECT_EQ(FormatDurationMs(0), "-");
  EXPECT_EQ(FormatDurationMs(450), "450ms");
  EXPECT_EQ(FormatDurationMs(59999), "59s");
  EXPECT_EQ(FormatDurationMs(3600000), "1h0m0s");
  EXPECT_EQ(FormatDurationMs(90061000), "1d1h1m1s");
}

TEST(FormatTest, StatusCodeNamesAndErrors) {
  EXPECT_EQ(StatusCodeName(5), "NOT_FOUND");
  EXPECT_EQ(StatusCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(99), "CODE_99");
  EXPECT_EQ(FormatError(absl::FailedPreconditionError("count is 3\nnot 2")),
            "redrivectl: FAILED_PRECONDITION: count is 3\\nnot 2\n");
}

TEST(FormatTest, JsonUsesProtoFieldNamesAndPrintsDefaults) {
  v1::CountDeadLettersResponse zero;
  EXPECT_EQ(ToJson(zero), R"({"count":"0"})");
  v1::DeadLetter d;
  d.set_entry_id("1-0");
  d.set_payload("hi");
  const std::string json = ToJson(d);
  EXPECT_THAT(json, HasSubstr(R"("entry_id":"1-0")"));
  EXPECT_THAT(json, HasSubstr(R"("payload":"aGk=")"));
  EXPECT_THAT(json, HasSubstr(R"("quarantined":false)"));
  EXPECT_EQ(json.find('\n'), std::string::npos);
}

TEST(FormatTest, Handlers) {
  v1::ListHandlersResponse r;
  v1::HandlerInfo* h = r.add_handlers();
  h->mutable_handler()->set_channel("orders");
  h->mutable_handler()->set_handler_id("A");
  h->set_connected_streams(2);
  h->set_pending(3);
  h->set_lag(-1);
  h->set_retry_depth(4);
  h->set_dlq_depth(1);
  h->set_oldest_dead_letter_age_ms(61000);
  h->set_paused(true);
  EXPECT_EQ(FormatHandlers(r),
            "CHANNEL  HANDLER  STREAMS  PENDING  LAG  RETRY  DLQ  OLDEST_DLQ  PAUSED\n"
            "orders   A        2        3        ?    4      1    1m1s        yes\n");
  EXPECT_EQ(FormatHandlers({}),
            "CHANNEL  HANDLER  STREAMS  PENDING  LAG  RETRY  DLQ  OLDEST_DLQ  PAUSED\n");
}

TEST(FormatTest, DeadLetterListCutsPreviewsAndAnnouncesTheNextPage) {
  v1::ListDeadLettersResponse r;
  v1::DeadLetter* a = r.add_dead_letters();
  a->set_entry_id("1-0");
  a->set_reason("terminated");
  a->set_attempts(1);
  a->set_dead_lettered_unix_ms(1714564800000);
  a->set_last_error("bad\norder");
  a->set_last_error_code("E_BAD");
  a->set_payload("{\"id\":1}");
  v1::DeadLetter* b = r.add_dead_letters();
  b->set_entry_id("2-0");
  b->set_reason("poison");
  b->set_payload(std::string(70, 'x'));
  b->set_quarantined(true);
  v1::DeadLetter* c = r.add_dead_letters();
  c->set_entry_id("3-0");
  c->set_payload("abc");
  c->set_payload_truncated(true);
  r.set_next_cursor("cur-2");
  EXPECT_EQ(
      FormatDeadLetters(r),
      "ENTRY_ID           REASON      ATTEMPTS  DEAD_LETTERED             ERROR              "
      "PAYLOAD\n"
      "1-0                terminated  1         2024-05-01T12:00:00.000Z  E_BAD: bad\\norder  "
      "{\"id\":1}\n"
      "2-0 (quarantined)  poison      0         -                         -                  " +
          std::string(60, 'x') +
          "...\n"
          "3-0                -           0         -                         -                  "
          "abc...\n"
          "next cursor: cur-2\n");
}

TEST(FormatTest, DeadLetterDetail) {
  v1::DeadLetter d;
  d.set_entry_id("9-0");
  d.set_reason("max_retries");
  d.set_source_channel("orders");
  d.set_handler_id("A");
  d.set_attempts(2);
  d.set_last_error("db down");
  d.set_last_error_code("E_DB");
  d.set_first_failure_unix_ms(1714564800000);
  d.set_dead_lettered_unix_ms(1714564801000);
  d.set_original_entry_id("5-0");
  d.set_payload("a\x01");
  d.set_payload_size(2);
  d.set_content_type("text/plain");
  v1::Header* h = d.add_headers();
  h->set_key("tenant");
  h->set_value("acme");
  v1::AttemptRecord* a = d.add_history();
  a->set_attempt(1);
  a->set_unix_ms(1714564800000);
  a->set_outcome("nack");
  a->set_error("db down");
  a->set_error_code("E_DB");
  a->set_consumer("A-r1");
  EXPECT_EQ(FormatDeadLetter(d),
            "entry_id:          9-0\n"
            "reason:            max_retries\n"
            "source_channel:    orders\n"
            "handler_id:        A\n"
            "attempts:          2\n"
            "last_error:        db down\n"
            "last_error_code:   E_DB\n"
            "first_failure:     2024-05-01T12:00:00.000Z\n"
            "dead_lettered:     2024-05-01T12:00:01.000Z\n"
            "original_entry_id: 5-0\n"
            "redrive_count:     0\n"
            "quarantined:       no\n"
            "eggai_format:      no\n"
            "content_type:      text/plain\n"
            "headers:           tenant=acme\n"
            "payload_size:      2\n"
            "history:\n"
            "  ATTEMPT  TIME                      OUTCOME  ERROR_CODE  ERROR    CONSUMER\n"
            "  1        2024-05-01T12:00:00.000Z  nack     E_DB        db down  A-r1\n"
            "payload:\n"
            "a\\x01\n");
}

TEST(FormatTest, JobsRedriveAndTheRest) {
  v1::RedriveJob job;
  job.set_job_id("j1");
  job.set_state(v1::RedriveJob::FAILED);
  job.mutable_handler()->set_channel("orders");
  job.mutable_handler()->set_handler_id("A");
  job.mutable_target()->set_kind(v1::RedriveTarget::TARGET_CHANNEL);
  job.mutable_target()->set_channel("replay");
  job.set_total(3);
  job.set_moved(1);
  job.set_failed(2);
  job.set_error("redis down");
  EXPECT_EQ(FormatJob(job),
            "JOB_ID  STATE   HANDLER   TARGET          TOTAL  MOVED  SKIPPED  FAILED  RATE\n"
            "j1      FAILED  orders/A  channel:replay  3      1      0        2       -\n"
            "error: redis down\n");
  EXPECT_EQ(FormatJobProgress(job), "job j1 FAILED: moved 1/3, skipped 0, failed 2\n");

  v1::RedriveDeadLettersResponse dry;
  dry.add_would_move("1-0");
  dry.add_would_move("2-0");
  dry.add_would_skip("3-0");
  EXPECT_EQ(FormatRedrive(dry),
            "dry run: 2 would move, 1 would skip\nmove  1-0\nmove  2-0\nskip  3-0\n");
  v1::RedriveDeadLettersResponse started;
  *started.mutable_job() = job;
  EXPECT_EQ(FormatRedrive(started), FormatJob(job));

  v1::DeleteDeadLettersResponse del;
  del.set_deleted(1);
  del.add_not_found("7-0");
  EXPECT_EQ(FormatDelete(del), "deleted 1\nnot found: 7-0\n");
  v1::PurgeDeadLettersResponse purge;
  purge.set_purged(4);
  EXPECT_EQ(FormatPurge(purge), "purged 4\n");
  v1::CountDeadLettersResponse count;
  count.set_count(12);
  EXPECT_EQ(FormatCount(count), "12\n");

  v1::MigrateLegacyKeysResponse m;
  v1::LegacyMigration* lm = m.add_migrations();
  lm->set_handler_id("A");
  lm->set_retry_entries(2);
  lm->set_target_stream("orders.A.retry");
  m.set_legacy_retry_stream("orders.retry");
  m.set_unattributed_dead_letters(1);
  m.set_dry_run(true);
  EXPECT_EQ(FormatMigrate(m),
            "dry run: nothing was moved\n"
            "HANDLER  RETRY_ENTRIES  TARGET_STREAM\n"
            "A        2              orders.A.retry\n"
            "legacy retry stream: orders.retry\n"
            "legacy dlq stream: -\n"
            "unattributed dead letters: 1\n");
}

TEST(FormatTest, DeliveryLine) {
  v1::Delivery d;
  d.set_entry_id("1700-0");
  d.set_attempt(2);
  v1::Header* h = d.add_headers();
  h->set_key("tenant");
  h->set_value("acme");
  h = d.add_headers();
  h->set_key("k");
  h->set_value("two words");
  d.set_payload("{\"id\":1}\n");
  EXPECT_EQ(FormatDelivery(d),
            "1700-0 attempt=2 headers={tenant=acme, k=two words} {\"id\":1}\\n\n");
  v1::Delivery bare;
  bare.set_entry_id("1-0");
  bare.set_attempt(1);
  EXPECT_EQ(FormatDelivery(bare), "1-0 attempt=1 headers={} \n");
}

// ------------------------------------------------------------ handlers delete

TEST(BuildTest, HandlersDeleteNeedsExactCountsWithForce) {
  ParsedArgs p = ParseOk({"handlers", "delete", "orders", "A"});
  ASSERT_NE(p.command, nullptr);
  EXPECT_EQ(p.command->name, "handlers delete");
  absl::StatusOr<v1::DeleteHandlerRequest> r = BuildDeleteHandler(p);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->handler().channel(), "orders");
  EXPECT_EQ(r->handler().handler_id(), "A");
  EXPECT_FALSE(r->force());

  r = BuildDeleteHandler(ParseOk({"--json", "handlers", "delete", "orders", "A", "--force",
                                  "--expect-retry", "3", "--expect-dlq=0"}));
  ASSERT_THAT(r, IsOk());
  EXPECT_TRUE(r->force());
  EXPECT_EQ(r->expected_retry_entries(), 3u);
  EXPECT_EQ(r->expected_dead_letters(), 0u);

  // `handlers` alone and with its flag is still the list command.
  EXPECT_EQ(ParseOk({"handlers"}).command->name, "handlers");
  EXPECT_EQ(ParseOk({"handlers", "--channel", "delete"}).command->name, "handlers");

  const std::string force_needs =
      "--force needs --expect-retry N and --expect-dlq N, the counts you expect to discard "
      "(see 'handlers')";
  EXPECT_EQ(BuildError({"handlers", "delete", "orders", "A", "--force"}, BuildDeleteHandler),
            force_needs);
  EXPECT_EQ(BuildError({"handlers", "delete", "orders", "A", "--force", "--expect-dlq", "1"},
                       BuildDeleteHandler),
            force_needs);
  EXPECT_EQ(
      BuildError({"handlers", "delete", "orders", "A", "--expect-dlq", "1"}, BuildDeleteHandler),
      "--expect-retry and --expect-dlq go with --force");
  EXPECT_EQ(BuildError({"handlers", "delete", "orders", "A", "--force", "--expect-retry", "-1",
                        "--expect-dlq", "1"},
                       BuildDeleteHandler),
            "--expect-retry: '-1' is not an integer in 0..18446744073709551615");
  EXPECT_THAT(BuildError({"handlers", "delete", "orders"}, BuildDeleteHandler),
              HasSubstr("usage: redrivectl handlers delete CHANNEL HANDLER"));
  EXPECT_THAT(BuildError({"handlers", "orders"}, BuildListHandlers),
              HasSubstr("usage: redrivectl handlers"));
}

TEST(FormatTest, DeleteHandler) {
  v1::DeleteHandlerResponse r;
  r.mutable_handler()->set_channel("orders");
  r.mutable_handler()->set_handler_id("A");
  r.add_destroyed_groups("orders A");
  r.add_destroyed_groups("orders.A.retry A-retry");
  r.add_deleted_keys("orders.A.retry");
  r.add_deleted_keys("orders.A.dlq");
  r.set_retry_entries(1);
  r.set_dead_letters(2);
  r.set_unregistered(true);
  EXPECT_EQ(FormatDeleteHandler(r),
            "deleted handler A on orders\n"
            "destroyed group: orders A\n"
            "destroyed group: orders.A.retry A-retry\n"
            "deleted key: orders.A.retry\n"
            "deleted key: orders.A.dlq\n"
            "discarded: 1 retry entries, 2 dead letters\n"
            "unregistered: yes, pause flag removed: no\n");
}

// ------------------------------------------------------------ admin token

TEST(TokenSourceTest, FlagThenTokenVariableThenFileVariable) {
  Environment env;
  env.admin_token = "from-env-token";
  env.admin_token_file = "/run/secrets/token";
  GlobalOptions flag;
  flag.token_file = "/etc/redrive/token";
  TokenSource s = ChooseTokenSource(flag, env);
  EXPECT_EQ(s.kind, TokenSource::Kind::kFlagFile);
  EXPECT_EQ(s.file, "/etc/redrive/token");
  EXPECT_EQ(s.Describe(), "token file '/etc/redrive/token'");

  s = ChooseTokenSource(GlobalOptions{}, env);
  EXPECT_EQ(s.kind, TokenSource::Kind::kEnvToken);
  EXPECT_EQ(s.token, "from-env-token");
  EXPECT_EQ(s.Describe(), "REDRIVE_ADMIN_TOKEN");

  // An empty REDRIVE_ADMIN_TOKEN counts as unset.
  env.admin_token = "";
  s = ChooseTokenSource(GlobalOptions{}, env);
  EXPECT_EQ(s.kind, TokenSource::Kind::kEnvFile);
  EXPECT_EQ(s.file, "/run/secrets/token");
  EXPECT_EQ(s.Describe(), "token file '/run/secrets/token' (from REDRIVE_ADMIN_TOKEN_FILE)");

  env.admin_token.reset();
  EXPECT_EQ(ChooseTokenSource(GlobalOptions{}, env).kind, TokenSource::Kind::kEnvFile);
  env.admin_token_file = "";
  EXPECT_EQ(ChooseTokenSource(GlobalOptions{}, env).kind, TokenSource::Kind::kNone);
  EXPECT_EQ(ChooseTokenSource(GlobalOptions{}, Environment{}).kind, TokenSource::Kind::kNone);
  // The flag reaches GlobalOptions through the parser, wherever it stands.
  EXPECT_EQ(ChooseTokenSource(ParseOk({"handlers", "--token-file", "/t"}).global, env).file, "/t");
}

TEST(TokenSourceTest, UnauthenticatedHintNamesEveryWayToPassAToken) {
  EXPECT_EQ(UnauthenticatedHint(TokenSource{}),
            "redrivectl: hint: no admin token was sent. Pass the daemon's token with "
            "--token-file FILE, or set REDRIVE_ADMIN_TOKEN (the token) or "
            "REDRIVE_ADMIN_TOKEN_FILE (a file holding it).\n"
            "redrivectl: hint: scripts/run.sh writes a token to "
            "${XDG_RUNTIME_DIR:-/tmp}/redrive-admin-token when none is configured.\n");
  TokenSource env;
  env.kind = TokenSource::Kind::kEnvToken;
  env.token = "x";
  EXPECT_EQ(UnauthenticatedHint(env),
            "redrivectl: hint: the daemon refused the token from REDRIVE_ADMIN_TOKEN. Use the "
            "daemon's token: --token-file FILE, REDRIVE_ADMIN_TOKEN or REDRIVE_ADMIN_TOKEN_FILE "
            "(first one set wins).\n"
            "redrivectl: hint: scripts/run.sh writes a token to "
            "${XDG_RUNTIME_DIR:-/tmp}/redrive-admin-token when none is configured.\n");
}

}  // namespace
}  // namespace redrive::ctl
