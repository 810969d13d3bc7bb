// End to end: the redrivectl binary against the real redrived and a real
// redis-server (R-I2). Each test runs redrivectl as a child process and
// asserts its exact stdout, stderr and exit code, and checks the effect in
// Redis where there is one.
//
// Human-readable output is asserted exactly by rendering the same response
// (read back from the command's --json output) with the formatter the binary
// uses; the formatter's own layout is pinned in redrivectl_format_test.
//
// The Admin tests (fixture RedrivectlAdminTest) are written against the
// Admin contract: bearer-token auth with the daemon's token from
// REDRIVE_ADMIN_TOKEN, dead letters written by TERMINATE.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "client/redrivectl/commands.h"
#include "client/redrivectl/format.h"
#include "daemon/envelope.h"
#include "daemon/stream_entry.h"
#include "redrive/client.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/ports.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subscriber.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::DaemonProcess;
using ::redrive::testing::IsOk;
using ::redrive::testing::PendingCount;
using ::redrive::testing::PickFreePort;
using ::redrive::testing::RegisterFor;
using ::redrive::testing::TakeOk;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::TestSubscriber;
using ::redrive::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// 16..4096 printable characters, as the daemon requires.
constexpr char kToken[] = "e2e-admin-token-0123456789";

// ---------------------------------------------------------------- processes

struct CtlResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const CtlResult& r) {
  return os << "exit " << r.exit_code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

// One redrivectl child. Its environment is exactly `env` (plus PATH), so the
// test's own REDRIVE_* variables never leak in. A reader thread drains
// stdout and stderr as they come.
class CtlProcess {
 public:
  static std::unique_ptr<CtlProcess> Start(std::vector<std::string> args,
                                           std::vector<std::string> env,
                                           const std::string& stdin_data = "") {
    auto p = std::unique_ptr<CtlProcess>(new CtlProcess());
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe failed";
      return nullptr;
    }
    args.insert(args.begin(), REDRIVECTL_BINARY);
    env.push_back("PATH=/usr/bin:/bin");
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      ADD_FAILURE() << "fork failed";
      return nullptr;
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    p->pid_ = pid;
    // Small inputs only: fits in the pipe buffer, so this never blocks.
    if (!stdin_data.empty() && write(in[1], stdin_data.data(), stdin_data.size()) !=
                                   static_cast<ssize_t>(stdin_data.size())) {
      ADD_FAILURE() << "short write to stdin";
    }
    close(in[1]);
    p->reader_ = std::thread([proc = p.get(), o = out[0], e = err[0]] { proc->Drain(o, e); });
    return p;
  }

  ~CtlProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait(absl::Seconds(10));
    }
    if (reader_.joinable()) reader_.join();
  }

  void Signal(int sig) { kill(pid_, sig); }

  std::string out() const {
    absl::MutexLock lock(&mu_);
    return out_;
  }
  std::string err() const {
    absl::MutexLock lock(&mu_);
    return err_;
  }

  // Waits for the exit (SIGKILL after `timeout`) and the end of its output.
  CtlResult Wait(absl::Duration timeout = absl::Seconds(30)) {
    CtlResult r;
    const absl::Time deadline = absl::Now() + timeout;
    int status = 0;
    while (pid_ > 0) {
      const pid_t w = waitpid(pid_, &status, WNOHANG);
      if (w == pid_) break;
      if (absl::Now() > deadline) {
        ADD_FAILURE() << "redrivectl did not exit within " << timeout;
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    pid_ = -1;
    if (reader_.joinable()) reader_.join();
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = out();
    r.err = err();
    return r;
  }

 private:
  CtlProcess() = default;

  void Drain(int out_fd, int err_fd) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (pollfd& f : fds) {
        if (f.fd < 0 || (f.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = read(f.fd, buf, sizeof(buf));
        if (n <= 0) {
          close(f.fd);
          f.fd = -1;
          --open_fds;
          continue;
        }
        absl::MutexLock lock(&mu_);
        (f.fd == out_fd ? out_ : err_).append(buf, static_cast<size_t>(n));
      }
    }
  }

  pid_t pid_ = -1;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string out_ ABSL_GUARDED_BY(mu_);
  std::string err_ ABSL_GUARDED_BY(mu_);
};

// `json` (one line) parsed into a T; a failed test if it does not parse.
template <typename T>
T FromJson(const std::string& json) {
  T message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in: " << json;
  return message;
}

// ---------------------------------------------------------------- fixtures

class RedrivectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = TestRedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    conn_ = redis_->Connect();
    std::string templ =
        (std::filesystem::temp_directory_path() / "redrivectl-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }

  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void Boot(DaemonProcess::Options o = {}) {
    o.redis_url = redis_->url();
    o.unix_socket = true;
    daemon_ = DaemonProcess::Start(o);
    ASSERT_NE(daemon_, nullptr);
    client_ = Client::Connect(daemon_->address());
    ASSERT_TRUE(client_->WaitForConnected(absl::Seconds(10)));
  }

  // The environment every redrivectl child gets (plus `extra`).
  std::vector<std::string> Env(std::vector<std::string> extra = {}) const {
    extra.push_back("USER=e2e-operator");
    if (daemon_ != nullptr) extra.push_back("REDRIVE_ADDR=" + daemon_->address());
    return extra;
  }

  virtual std::vector<std::string> DefaultArgs() const { return {}; }

  // Runs redrivectl to completion.
  CtlResult Ctl(std::vector<std::string> args, std::vector<std::string> env_extra = {},
                const std::string& stdin_data = "") {
    std::unique_ptr<CtlProcess> p = StartCtl(std::move(args), std::move(env_extra), stdin_data);
    if (p == nullptr) return {};
    return p->Wait();
  }

  std::unique_ptr<CtlProcess> StartCtl(std::vector<std::string> args,
                                       std::vector<std::string> env_extra = {},
                                       const std::string& stdin_data = "") {
    std::vector<std::string> full = DefaultArgs();
    full.insert(full.end(), args.begin(), args.end());
    return CtlProcess::Start(std::move(full), Env(std::move(env_extra)), stdin_data);
  }

  std::string WriteFile(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::vector<StreamEntry> XRange(const std::string& stream) {
    return ::redrive::testing::XRangeAll(*conn_, stream);
  }

  std::vector<std::string> Ids(const std::string& stream) {
    std::vector<std::string> ids;
    for (const StreamEntry& e : XRange(stream)) ids.push_back(e.id);
    return ids;
  }

  int64_t XLen(const std::string& stream) { return ::redrive::testing::XLenOf(*conn_, stream); }

  std::string LastDelivered(const std::string& stream, const std::string& group) {
    return ::redrive::testing::LastDeliveredId(*conn_, stream, group);
  }

  // The decoded __data__ of the one entry `id` of `stream`.
  DecodedEntry Decoded(const std::string& stream, const std::string& id) {
    for (const StreamEntry& e : XRange(stream)) {
      if (e.id != id) continue;
      absl::StatusOr<DecodedEntry> d = DecodeStreamEntry(e.fields);
      EXPECT_THAT(d, IsOk());
      return d.ok() ? *d : DecodedEntry{};
    }
    ADD_FAILURE() << "no entry " << id << " in " << stream;
    return {};
  }

  std::vector<std::string> Publish(const std::string& channel,
                                   const std::vector<std::string>& payloads) {
    std::vector<std::string> ids;
    for (const std::string& p : payloads) {
      v1::PublishRequest r;
      r.set_channel(channel);
      r.mutable_message()->set_payload(p);
      v1::Header* h = r.mutable_message()->add_headers();
      h->set_key("tenant");
      h->set_value("acme");
      ids.push_back(TakeOk(client_->Publish(r)).entry_id());
    }
    return ids;
  }

  std::unique_ptr<TestRedisServer> redis_;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Client> client_;
  std::string dir_;
};

// ---------------------------------------------------------------- local

TEST_F(RedrivectlTest, HelpListsCommandsAndExitsZero) {
  CtlResult top = Ctl({"--help"});
  EXPECT_EQ(top.exit_code, 0) << top;
  EXPECT_EQ(top.out, ctl::TopLevelHelp());
  EXPECT_EQ(top.err, "");
  for (const ctl::CommandSpec& c : ctl::Commands()) {
    std::vector<std::string> args = absl::StrSplit(c.name, ' ');
    args.push_back("--help");
    CtlResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(r.out, ctl::CommandHelp(c)) << c.name;
  }
}

// Usage errors exit 64 without calling anything: the address has no server,
// so any RPC would have exited 14 instead.
TEST_F(RedrivectlTest, UsageErrorsExit64BeforeAnyCall) {
  const std::string nowhere = absl::StrCat("127.0.0.1:", PickFreePort());
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{}, "redrivectl: no command (see redrivectl --help)\n"},
      {{"frob"}, "redrivectl: unknown command 'frob' (see redrivectl --help)\n"},
      {{"dlq"},
       "redrivectl: 'dlq' needs a subcommand: list, show, count, redrive, delete, purge\n"},
      {{"dlq", "list", "orders"},
       "redrivectl: usage: redrivectl dlq list CHANNEL HANDLER [flags] (see redrivectl dlq "
       "list --help)\n"},
      {{"dlq", "list", "orders", "A", "--limit", "abc"},
       "redrivectl: --limit: 'abc' is not an integer in 1..1000\n"},
      {{"dlq", "list", "orders", "A", "--since", "yesterday"},
       "redrivectl: --since: 'yesterday' is neither Unix milliseconds nor RFC 3339 "
       "(2024-05-01T12:00:00Z)\n"},
      {{"dlq", "count", "orders", "A", "--frobnicate"},
       "redrivectl: unknown flag --frobnicate for 'dlq count' (see redrivectl dlq count "
       "--help)\n"},
      {{"dlq", "purge", "orders", "A"},
       "redrivectl: dlq purge needs --expected N, the DLQ length you expect to delete (see "
       "'dlq count')\n"},
      {{"dlq", "redrive", "orders", "A"},
       "redrivectl: choose what to redrive: --ids, --all or filter flags "
       "(--reason/--since/--until)\n"},
      {{"dlq", "redrive", "orders", "A", "--all", "--rate", "-1"},
       "redrivectl: --rate: '-1' is not an integer in 0..100000\n"},
      {{"tail", "orders", "--count", "0"},
       "redrivectl: --count: '0' is not an integer in 1..4294967295\n"},
      {{"publish", "orders", "--header", "novalue"},
       "redrivectl: --header: 'novalue' is not KEY=VALUE\n"},
      {{"--timeout", "soon", "handlers"},
       "redrivectl: --timeout: 'soon' is not a number of seconds in (0, 86400]\n"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--addr", nowhere};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CtlResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, ctl::kExitUsage) << absl::StrJoin(c.args, " ") << "\n" << r;
    EXPECT_EQ(r.err, c.err) << absl::StrJoin(c.args, " ");
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(RedrivectlTest, UnreadableTokenFileExits66) {
  CtlResult r = Ctl({"--addr", absl::StrCat("127.0.0.1:", PickFreePort()), "--token-file",
                     dir_ + "/missing", "handlers"});
  EXPECT_EQ(r.exit_code, ctl::kExitNoInput) << r;
  EXPECT_EQ(r.err, "redrivectl: cannot read token file '" + dir_ + "/missing'\n");
}

TEST_F(RedrivectlTest, NoDaemonIsUnavailable14) {
  const std::string nowhere = absl::StrCat("127.0.0.1:", PickFreePort());
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--addr", nowhere, "publish", "orders", "--data", "x"},
        std::vector<std::string>{"--addr", nowhere, "handlers"},
        std::vector<std::string>{"--addr", nowhere, "tail", "orders"},
        std::vector<std::string>{"--addr", "unix:" + dir_ + "/no.sock", "dlq", "count", "o",
                                 "A"}}) {
    CtlResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 14) << r;
    EXPECT_THAT(r.err, StartsWith("redrivectl: UNAVAILABLE: ")) << r;
    EXPECT_EQ(r.out, "");
  }
}

// ---------------------------------------------------------------- broker

TEST_F(RedrivectlTest, PublishPrintsTheEntryIdAndWritesTheExactMessage) {
  Boot();
  CtlResult r = Ctl({"publish", "orders", "--data", R"({"id":1})", "--content-type",
                     "application/json", "--header", "tenant=acme", "--header", "k=a=b"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> ids = Ids("orders");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(r.out, ids[0] + "\n");
  DecodedEntry e = Decoded("orders", ids[0]);
  EXPECT_EQ(e.body, R"({"id":1})");
  std::vector<std::pair<std::string, std::string>> app;
  std::string content_type;
  for (const auto& [k, v] : e.headers) {
    if (k == "content-type") content_type = v;
    if (k != "content-type" && k != "correlation_id") app.emplace_back(k, v);
  }
  EXPECT_EQ(content_type, "application/json");
  EXPECT_THAT(app, ElementsAre(std::make_pair("tenant", "acme"), std::make_pair("k", "a=b")));
}

TEST_F(RedrivectlTest, PublishReadsStdinAndFilesByteForByte) {
  Boot();
  const std::string binary("\x00\x01\xff\n{\"x\":2}\r\n", 12);
  CtlResult from_stdin = Ctl({"publish", "orders"}, {}, binary);
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin;
  const std::string file = WriteFile("payload.bin", binary + "tail");
  CtlResult from_file = Ctl({"--json", "publish", "orders", "--file", file});
  ASSERT_EQ(from_file.exit_code, 0) << from_file;

  const std::vector<std::string> ids = Ids("orders");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(from_stdin.out, ids[0] + "\n");
  EXPECT_EQ(Decoded("orders", ids[0]).body, binary);
  EXPECT_EQ(Decoded("orders", ids[1]).body, binary + "tail");

  // --json: the PublishResponse, proto field names.
  ASSERT_THAT(from_file.out, ::testing::EndsWith("}\n"));
  v1::PublishResponse resp = FromJson<v1::PublishResponse>(from_file.out);
  EXPECT_EQ(resp.entry_id(), ids[1]);
  EXPECT_EQ(resp.stream(), "orders");
  EXPECT_FALSE(resp.correlation_id().empty());
  EXPECT_THAT(from_file.out, HasSubstr("\"entry_id\":\"" + ids[1] + "\""));

  CtlResult missing = Ctl({"publish", "orders", "--file", dir_ + "/nope"});
  EXPECT_EQ(missing.exit_code, ctl::kExitNoInput) << missing;
  EXPECT_EQ(missing.err, "redrivectl: cannot read '" + dir_ + "/nope'\n");
  EXPECT_EQ(XLen("orders"), 2);
}

TEST_F(RedrivectlTest, PublishOverTheUnixSocketAndServerErrorsKeepTheirCode) {
  Boot();
  CtlResult r = Ctl({"--addr", daemon_->unix_address(), "publish", "orders", "--data", "u"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, Ids("orders").at(0) + "\n");
  // A reserved header is the daemon's INVALID_ARGUMENT (3).
  CtlResult bad = Ctl({"publish", "orders", "--data", "x", "--header", "correlation_id=1"});
  EXPECT_EQ(bad.exit_code, 3) << bad;
  EXPECT_THAT(bad.err, StartsWith("redrivectl: INVALID_ARGUMENT: "));
  EXPECT_EQ(bad.out, "");
  EXPECT_EQ(XLen("orders"), 1);
}

TEST_F(RedrivectlTest, TailFromStartPrintsExactlyCountDeliveries) {
  Boot();
  const std::vector<std::string> ids = Publish("orders", {"p1", "p2\x01", "p3"});
  CtlResult r = Ctl({"tail", "orders", "--from-start", "--count", "2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, ids[0] + " attempt=1 headers={tenant=acme} p1\n" + ids[1] +
                       " attempt=1 headers={tenant=acme} p2\\x01\n");
  EXPECT_EQ(r.err, "redrivectl: tailing orders after 0-0 (no consumer group)\n");
}

// A plain tail reads without a consumer group: the channel's groups are
// exactly what they were (none here, then a handler's untouched), no key
// appears, and the handler still receives every entry.
TEST_F(RedrivectlTest, TailLeavesNoConsumerGroupBehind) {
  Boot();
  auto groups = [&] {
    std::vector<std::string> names;
    absl::StatusOr<RedisReply> r = conn_->Command({"XINFO", "GROUPS", "orders"});
    if (r.ok() && r->is_array()) {
      for (const RedisReply& g : r->elements) {
        for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
          if (g.elements[i].str == "name") {
            names.push_back(absl::StrCat(g.elements[i + 1].str,
                                         " last=", LastDelivered("orders", g.elements[i + 1].str)));
          }
        }
      }
    }
    return names;
  };
  const std::vector<std::string> ids = Publish("orders", {"one", "two"});
  CtlResult first = Ctl({"tail", "orders", "--from-start", "--count", "2"});
  ASSERT_EQ(first.exit_code, 0) << first;
  EXPECT_EQ(first.out, ids[0] + " attempt=1 headers={tenant=acme} one\n" + ids[1] +
                           " attempt=1 headers={tenant=acme} two\n");
  EXPECT_THAT(groups(), ::testing::IsEmpty());
  EXPECT_THAT(::redrive::testing::SortedKeys(*conn_), ElementsAre("orders"));

  // With a handler's group on the channel: tail (ended by SIGINT) leaves it
  // exactly as it was, and the handler still gets the entry tail printed.
  auto handler = std::make_unique<TestSubscriber>(client_->broker(), RegisterFor("orders", "A"));
  ASSERT_TRUE(handler->WaitRegistered());
  const std::vector<std::string> before = groups();
  ASSERT_EQ(before, std::vector<std::string>{"A last=" + ids[1]});
  std::unique_ptr<CtlProcess> tail = StartCtl({"tail", "orders"});
  ASSERT_NE(tail, nullptr);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(tail->err(), "tailing orders after"); }))
      << tail->err();
  const std::vector<std::string> third = Publish("orders", {"three"});
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(tail->out(), "three"); })) << tail->out();
  ASSERT_TRUE(handler->WaitForDeliveries(1));
  EXPECT_EQ(handler->deliveries()[0].entry_id(), third[0]);
  handler->AckAll();
  ASSERT_TRUE(WaitFor([&] { return PendingCount(*conn_, "orders", "A") == 0; }));
  tail->Signal(SIGINT);
  CtlResult r = tail->Wait(absl::Seconds(15));
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, third[0] + " attempt=1 headers={tenant=acme} three\n");
  EXPECT_EQ(r.err, "redrivectl: tailing orders after " + ids[1] + " (no consumer group)\n");
  EXPECT_EQ(groups(), std::vector<std::string>{"A last=" + third[0]});
  EXPECT_THAT(::redrive::testing::SortedKeys(*conn_), ElementsAre("orders", "{redrive}:handlers"));
}

// A daemon shutting down ends an open tail instead of waiting for it.
TEST_F(RedrivectlTest, TailEndsWhenTheDaemonStops) {
  Boot();
  std::unique_ptr<CtlProcess> tail = StartCtl({"tail", "orders"});
  ASSERT_NE(tail, nullptr);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(tail->err(), "tailing orders after"); }))
      << tail->err();
  const int status = daemon_->Terminate(absl::Seconds(20));
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  CtlResult r = tail->Wait(absl::Seconds(15));
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "");
}

// Broker.Tail refuses what it cannot read.
TEST_F(RedrivectlTest, TailOfABadChannelOrNonStreamKeyFails) {
  Boot();
  ASSERT_TRUE(conn_->Command({"SET", "plain", "x"}).ok());
  CtlResult wrong = Ctl({"tail", "plain", "--count", "1"});
  EXPECT_EQ(wrong.exit_code, 9) << wrong;
  EXPECT_EQ(wrong.err, "redrivectl: FAILED_PRECONDITION: key 'plain' exists and is not a stream\n");
  CtlResult bad = Ctl({"tail", "orders.dlq"});
  EXPECT_EQ(bad.exit_code, 3) << bad;
  EXPECT_THAT(bad.err, StartsWith("redrivectl: INVALID_ARGUMENT: channel must not end in"));
}

TEST_F(RedrivectlTest, TailJsonLinesAreDeliveries) {
  Boot();
  const std::vector<std::string> ids = Publish("orders", {"{\"a\":1}"});
  CtlResult r =
      Ctl({"--json", "tail", "orders", "--from-start", "--count", "1", "--handler", "debug-json"});
  ASSERT_EQ(r.exit_code, 0) << r;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << r;
  v1::Delivery d = FromJson<v1::Delivery>(lines[0]);
  EXPECT_EQ(d.entry_id(), ids[0]);
  EXPECT_EQ(d.payload(), "{\"a\":1}");
  EXPECT_EQ(d.attempt(), 1u);
  EXPECT_EQ(d.channel(), "orders");
  ASSERT_EQ(d.headers_size(), 1);
  EXPECT_EQ(d.headers(0).key(), "tenant");
  EXPECT_THAT(lines[0], HasSubstr("\"entry_id\":\"" + ids[0] + "\""));
  EXPECT_EQ(LastDelivered("orders", "debug-json"), ids[0]);
}

// Without --from-start only entries added after the tail started are shown;
// SIGINT ends the tail with exit 0.
TEST_F(RedrivectlTest, TailFollowsNewEntriesUntilSigint) {
  Boot();
  Publish("orders", {"old"});
  std::unique_ptr<CtlProcess> tail = StartCtl({"tail", "orders"});
  ASSERT_NE(tail, nullptr);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(tail->err(), "tailing orders after"); }))
      << tail->err();
  const std::vector<std::string> ids = Publish("orders", {"new-1", "new-2"});
  ASSERT_TRUE(WaitFor([&] {
    const std::string out = tail->out();
    return std::count(out.begin(), out.end(), '\n') == 2;
  })) << tail->out();
  tail->Signal(SIGINT);
  CtlResult r = tail->Wait(absl::Seconds(15));
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, ids[0] + " attempt=1 headers={tenant=acme} new-1\n" + ids[1] +
                       " attempt=1 headers={tenant=acme} new-2\n");
}

// --ack: each printed delivery is acknowledged and nothing else is taken, so
// a second tail of the same group gets the next entry as a first attempt.
TEST_F(RedrivectlTest, TailAckSettlesExactlyWhatItPrinted) {
  Boot();
  const std::vector<std::string> ids = Publish("orders", {"one", "two"});
  CtlResult first =
      Ctl({"tail", "orders", "--handler", "dbg", "--from-start", "--ack", "--count", "1"});
  ASSERT_EQ(first.exit_code, 0) << first;
  EXPECT_EQ(first.out, ids[0] + " attempt=1 headers={tenant=acme} one\n");
  EXPECT_EQ(first.err, "redrivectl: tailing orders as dbg (ack)\n");
  EXPECT_EQ(LastDelivered("orders", "dbg"), ids[0]);
  EXPECT_TRUE(WaitFor([&] { return PendingCount(*conn_, "orders", "dbg") == 0; }));

  CtlResult second = Ctl({"tail", "orders", "--handler", "dbg", "--ack", "--count", "1"});
  ASSERT_EQ(second.exit_code, 0) << second;
  EXPECT_EQ(second.out, ids[1] + " attempt=1 headers={tenant=acme} two\n");
  EXPECT_TRUE(WaitFor([&] { return PendingCount(*conn_, "orders", "dbg") == 0; }));
  EXPECT_FALSE(conn_->Command({"EXISTS", "orders.dbg.retry.due"}).value_or(RedisReply{}).integer ==
               1);
}

// ---------------------------------------------------------------- admin

class RedrivectlAdminTest : public RedrivectlTest {
 protected:
  void SetUp() override {
    RedrivectlTest::SetUp();
    if (HasFatalFailure()) return;
    token_file_ = WriteFile("token", std::string(kToken) + "\n");
    DaemonProcess::Options o;
    o.env.push_back(std::string("REDRIVE_ADMIN_TOKEN=") + kToken);
    Boot(o);
  }

  std::vector<std::string> DefaultArgs() const override { return {"--token-file", token_file_}; }

  // Publishes `payloads` to orders, has handler A take each and TERMINATE it;
  // returns the DLQ entry ids in order.
  std::vector<std::string> DeadLetter(const std::vector<std::string>& payloads) {
    auto sub = std::make_unique<TestSubscriber>(client_->broker(), RegisterFor("orders", "A"));
    EXPECT_TRUE(sub->WaitRegistered());
    Publish("orders", payloads);
    EXPECT_TRUE(sub->WaitForDeliveries(payloads.size()));
    for (size_t i = 0; i < payloads.size(); ++i) {
      v1::SubscribeRequest req;
      v1::Verb* v = req.mutable_verbs()->add_verbs();
      v->set_delivery_id(sub->deliveries()[i].delivery_id());
      v->mutable_terminate()->set_reason(absl::StrCat("bad order #", i + 1));
      v->mutable_terminate()->set_error_code("E_BAD");
      EXPECT_TRUE(sub->Send(req));
    }
    EXPECT_TRUE(
        WaitFor([&] { return XLen("orders.A.dlq") == static_cast<int64_t>(payloads.size()); }));
    subscriber_ = std::move(sub);
    return Ids("orders.A.dlq");
  }

  std::string token_file_;
  std::unique_ptr<TestSubscriber> subscriber_;
};

TEST_F(RedrivectlAdminTest, HandlersTableAndJson) {
  auto sub = std::make_unique<TestSubscriber>(client_->broker(), RegisterFor("orders", "A"));
  ASSERT_TRUE(sub->WaitRegistered());
  CtlResult json = Ctl({"--json", "handlers", "--channel", "orders"});
  ASSERT_EQ(json.exit_code, 0) << json;
  v1::ListHandlersResponse resp = FromJson<v1::ListHandlersResponse>(json.out);
  ASSERT_EQ(resp.handlers_size(), 1) << json.out;
  const v1::HandlerInfo& h = resp.handlers(0);
  EXPECT_EQ(h.handler().channel(), "orders");
  EXPECT_EQ(h.handler().handler_id(), "A");
  EXPECT_EQ(h.connected_streams(), 1u);
  EXPECT_EQ(h.dlq_depth(), 0u);
  EXPECT_FALSE(h.paused());
  EXPECT_EQ(h.names().dlq_stream(), "orders.A.dlq");

  CtlResult table = Ctl({"handlers", "--channel", "orders"});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_EQ(table.out, ctl::FormatHandlers(resp));
  EXPECT_EQ(table.err, "");
}

TEST_F(RedrivectlAdminTest, AuthenticationFailuresExit16) {
  const std::string wrong = WriteFile("wrong", "not-the-admin-token-000\n");
  CtlResult bad = CtlProcess::Start({"--token-file", wrong, "handlers"}, Env())->Wait();
  EXPECT_EQ(bad.exit_code, 16) << bad;
  EXPECT_THAT(bad.err, StartsWith("redrivectl: UNAUTHENTICATED: "));
  EXPECT_EQ(bad.out, "");

  CtlResult none = CtlProcess::Start({"handlers"}, Env())->Wait();
  EXPECT_EQ(none.exit_code, 16) << none;
  EXPECT_THAT(none.err, StartsWith("redrivectl: UNAUTHENTICATED: "));

  // The token from the environment instead of a file.
  CtlResult env =
      CtlProcess::Start({"handlers"}, Env({std::string("REDRIVE_ADMIN_TOKEN=") + kToken}))->Wait();
  EXPECT_EQ(env.exit_code, 0) << env;
  EXPECT_EQ(env.out, ctl::FormatHandlers({}));
}

TEST_F(RedrivectlAdminTest, ListCountShowDeadLetters) {
  const std::string binary("\x00\xff raw\n", 7);
  const std::vector<std::string> dlq = DeadLetter({"p1", "p2", binary});
  ASSERT_EQ(dlq.size(), 3u);

  CtlResult count = Ctl({"dlq", "count", "orders", "A"});
  EXPECT_EQ(count.exit_code, 0) << count;
  EXPECT_EQ(count.out, "3\n");
  CtlResult count_json = Ctl({"--json", "dlq", "count", "orders", "A", "--reason", "poison"});
  EXPECT_EQ(count_json.exit_code, 0) << count_json;
  EXPECT_EQ(count_json.out, "{\"count\":\"0\"}\n");

  CtlResult list = Ctl({"--json", "dlq", "list", "orders", "A"});
  ASSERT_EQ(list.exit_code, 0) << list;
  v1::ListDeadLettersResponse all = FromJson<v1::ListDeadLettersResponse>(list.out);
  ASSERT_EQ(all.dead_letters_size(), 3);
  EXPECT_EQ(all.next_cursor(), "");
  for (int i = 0; i < 3; ++i) {
    const v1::DeadLetter& d = all.dead_letters(i);
    EXPECT_EQ(d.entry_id(), dlq[i]);
    EXPECT_EQ(d.reason(), "terminated");
    EXPECT_EQ(d.source_channel(), "orders");
    EXPECT_EQ(d.handler_id(), "A");
    EXPECT_EQ(d.last_error(), absl::StrCat("bad order #", i + 1));
    EXPECT_EQ(d.last_error_code(), "E_BAD");
  }
  EXPECT_EQ(all.dead_letters(0).payload(), "p1");
  EXPECT_EQ(all.dead_letters(2).payload(), binary);

  CtlResult table = Ctl({"dlq", "list", "orders", "A"});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_EQ(table.out, ctl::FormatDeadLetters(all));

  // Pages: two, then one, joined by --all-pages; --newest reverses.
  CtlResult page1 = Ctl({"--json", "dlq", "list", "orders", "A", "--limit", "2"});
  v1::ListDeadLettersResponse p1 = FromJson<v1::ListDeadLettersResponse>(page1.out);
  ASSERT_EQ(p1.dead_letters_size(), 2) << page1;
  ASSERT_NE(p1.next_cursor(), "");
  CtlResult page2 =
      Ctl({"--json", "dlq", "list", "orders", "A", "--limit", "2", "--cursor", p1.next_cursor()});
  v1::ListDeadLettersResponse p2 = FromJson<v1::ListDeadLettersResponse>(page2.out);
  ASSERT_EQ(p2.dead_letters_size(), 1) << page2;
  EXPECT_EQ(p2.dead_letters(0).entry_id(), dlq[2]);
  EXPECT_EQ(p2.next_cursor(), "");
  CtlResult joined = Ctl({"--json", "dlq", "list", "orders", "A", "--limit", "1", "--all-pages"});
  v1::ListDeadLettersResponse j = FromJson<v1::ListDeadLettersResponse>(joined.out);
  ASSERT_EQ(j.dead_letters_size(), 3) << joined;
  EXPECT_EQ(j.dead_letters(0).entry_id(), dlq[0]);
  EXPECT_EQ(j.dead_letters(2).entry_id(), dlq[2]);
  CtlResult newest = Ctl({"--json", "dlq", "list", "orders", "A", "--newest"});
  v1::ListDeadLettersResponse n = FromJson<v1::ListDeadLettersResponse>(newest.out);
  ASSERT_EQ(n.dead_letters_size(), 3) << newest;
  EXPECT_EQ(n.dead_letters(0).entry_id(), dlq[2]);
  EXPECT_EQ(n.dead_letters(2).entry_id(), dlq[0]);

  // show: the detail block, --raw the exact bytes, an unknown id NOT_FOUND.
  CtlResult show_json = Ctl({"--json", "dlq", "show", "orders", "A", dlq[1]});
  ASSERT_EQ(show_json.exit_code, 0) << show_json;
  v1::DeadLetter d = FromJson<v1::DeadLetter>(show_json.out);
  EXPECT_EQ(d.entry_id(), dlq[1]);
  EXPECT_EQ(d.payload(), "p2");
  CtlResult show = Ctl({"dlq", "show", "orders", "A", dlq[1]});
  EXPECT_EQ(show.exit_code, 0) << show;
  EXPECT_EQ(show.out, ctl::FormatDeadLetter(d));
  CtlResult raw = Ctl({"dlq", "show", "orders", "A", dlq[2], "--raw"});
  EXPECT_EQ(raw.exit_code, 0) << raw;
  EXPECT_EQ(raw.out, binary);
  CtlResult missing = Ctl({"dlq", "show", "orders", "A", "1-1"});
  EXPECT_EQ(missing.exit_code, 5) << missing;
  EXPECT_THAT(missing.err, StartsWith("redrivectl: NOT_FOUND: "));
  EXPECT_EQ(missing.out, "");
}

TEST_F(RedrivectlAdminTest, RedriveDryRunThenWaitMovesToTheHandlersRetryStream) {
  const std::vector<std::string> dlq = DeadLetter({"p1", "p2"});
  ASSERT_EQ(dlq.size(), 2u);

  CtlResult dry = Ctl({"--json", "dlq", "redrive", "orders", "A", "--ids", dlq[0], "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry;
  v1::RedriveDeadLettersResponse plan = FromJson<v1::RedriveDeadLettersResponse>(dry.out);
  EXPECT_FALSE(plan.has_job());
  EXPECT_THAT(plan.would_move(), ElementsAre(dlq[0]));
  EXPECT_EQ(XLen("orders.A.dlq"), 2);
  CtlResult dry_table = Ctl({"dlq", "redrive", "orders", "A", "--ids", dlq[0], "--dry-run"});
  EXPECT_EQ(dry_table.out, ctl::FormatRedrive(plan));

  const size_t before = subscriber_->delivery_count();
  CtlResult run = Ctl({"--json", "dlq", "redrive", "orders", "A", "--ids", dlq[0], "--wait"});
  ASSERT_EQ(run.exit_code, 0) << run;
  v1::RedriveJob job = FromJson<v1::RedriveJob>(run.out);
  EXPECT_EQ(job.state(), v1::RedriveJob::SUCCEEDED);
  EXPECT_EQ(job.total(), 1u);
  EXPECT_EQ(job.moved(), 1u);
  EXPECT_EQ(job.handler().handler_id(), "A");
  EXPECT_EQ(job.target().kind(), v1::RedriveTarget::TARGET_HANDLER_RETRY);
  EXPECT_THAT(run.err, HasSubstr("job " + job.job_id() + " SUCCEEDED: moved 1/1"));
  // Only handler A sees p1 again.
  ASSERT_TRUE(subscriber_->WaitForDeliveries(before + 1));
  EXPECT_EQ(subscriber_->deliveries()[before].payload(), "p1");
  EXPECT_EQ(subscriber_->deliveries()[before].stream(), "orders.A.retry");
  EXPECT_THAT(Ids("orders.A.dlq"), ElementsAre(dlq[1]));

  CtlResult status = Ctl({"job", "status", job.job_id()});
  EXPECT_EQ(status.exit_code, 0) << status;
  CtlResult status_json = Ctl({"--json", "job", "status", job.job_id()});
  EXPECT_EQ(status.out, ctl::FormatJob(FromJson<v1::RedriveJob>(status_json.out)));
  CtlResult unknown = Ctl({"job", "status", "00000000deadbeef"});
  EXPECT_EQ(unknown.exit_code, 5) << unknown;
  EXPECT_THAT(unknown.err, StartsWith("redrivectl: NOT_FOUND: "));
  // The daemon's INVALID_ARGUMENT is exit 3, its message passed through.
  CtlResult malformed = Ctl({"job", "cancel", "no-such-job"});
  EXPECT_EQ(malformed.exit_code, 3) << malformed;
  EXPECT_THAT(malformed.err, StartsWith("redrivectl: INVALID_ARGUMENT: "));
  EXPECT_EQ(malformed.out, "");
}

TEST_F(RedrivectlAdminTest, MigrateLegacyDryRun) {
  CtlResult json = Ctl({"--json", "migrate-legacy", "orders", "--dry-run"});
  ASSERT_EQ(json.exit_code, 0) << json;
  v1::MigrateLegacyKeysResponse resp = FromJson<v1::MigrateLegacyKeysResponse>(json.out);
  EXPECT_TRUE(resp.dry_run());
  EXPECT_EQ(resp.migrations_size(), 0);
  CtlResult table = Ctl({"migrate-legacy", "orders", "--dry-run"});
  ASSERT_EQ(table.exit_code, 0) << table;
  EXPECT_EQ(table.out, ctl::FormatMigrate(resp));
  EXPECT_THAT(table.out, StartsWith("dry run: nothing was moved\nHANDLER  RETRY_ENTRIES  "));
}

TEST_F(RedrivectlAdminTest, DeleteAndPurgeWithExpectedCount) {
  const std::vector<std::string> dlq = DeadLetter({"p1", "p2", "p3"});
  ASSERT_EQ(dlq.size(), 3u);
  CtlResult del = Ctl({"--operator", "ops bob", "dlq", "delete", "orders", "A", dlq[0], "1-1"});
  EXPECT_EQ(del.exit_code, 0) << del;
  EXPECT_EQ(del.out, "deleted 1\nnot found: 1-1\n");
  EXPECT_THAT(Ids("orders.A.dlq"), ElementsAre(dlq[1], dlq[2]));

  CtlResult wrong = Ctl({"dlq", "purge", "orders", "A", "--expected", "5"});
  EXPECT_EQ(wrong.exit_code, 9) << wrong;
  EXPECT_THAT(wrong.err, StartsWith("redrivectl: FAILED_PRECONDITION: "));
  EXPECT_EQ(XLen("orders.A.dlq"), 2);

  CtlResult purge = Ctl({"dlq", "purge", "orders", "A", "--expected", "2"});
  EXPECT_EQ(purge.exit_code, 0) << purge;
  EXPECT_EQ(purge.out, "purged 2\n");
  EXPECT_EQ(XLen("orders.A.dlq"), 0);

  // x-redrive-operator reaches the daemon's audit line for destructive calls
  // ($USER by default, --operator sanitized to the daemon's grammar). The log
  // is the only place the daemon records it.
  const std::string log = daemon_->Log();
  EXPECT_THAT(log, HasSubstr("admin PurgeDeadLetters by e2e-operator: "));
  EXPECT_THAT(log, HasSubstr("admin DeleteDeadLetters by ops_bob: "));
}

TEST_F(RedrivectlAdminTest, PauseAndResume) {
  auto sub = std::make_unique<TestSubscriber>(client_->broker(), RegisterFor("orders", "A"));
  ASSERT_TRUE(sub->WaitRegistered());
  CtlResult pause = Ctl({"--json", "pause", "orders", "A"});
  ASSERT_EQ(pause.exit_code, 0) << pause;
  v1::HandlerInfo paused = FromJson<v1::HandlerInfo>(pause.out);
  EXPECT_TRUE(paused.paused());
  EXPECT_EQ(paused.handler().handler_id(), "A");
  // Window: nothing is delivered while paused.
  Publish("orders", {"held"});
  EXPECT_FALSE(sub->WaitForDeliveries(1, absl::Milliseconds(500)));

  CtlResult resume = Ctl({"resume", "orders", "A"});
  ASSERT_EQ(resume.exit_code, 0) << resume;
  EXPECT_THAT(resume.out, HasSubstr("\norders   A  "));
  ASSERT_TRUE(sub->WaitForDeliveries(1));
  EXPECT_EQ(sub->deliveries()[0].payload(), "held");
}

// handlers delete: refused while connected and while entries remain, exact
// counts needed with --force; then only the handler's keys are gone.
TEST_F(RedrivectlAdminTest, HandlersDeleteRefusesUntilConfirmedThenRemovesTheHandler) {
  const std::vector<std::string> dlq = DeadLetter({"p1", "p2"});
  ASSERT_EQ(dlq.size(), 2u);
  const std::vector<std::string> before = {"orders", "orders.A.dlq", "{redrive}:handlers"};
  ASSERT_THAT(::redrive::testing::SortedKeys(*conn_), ::testing::ElementsAreArray(before));

  CtlResult connected = Ctl({"handlers", "delete", "orders", "A"});
  EXPECT_EQ(connected.exit_code, 9) << connected;
  EXPECT_THAT(connected.err,
              StartsWith("redrivectl: FAILED_PRECONDITION: handler 'A' on channel 'orders' has "
                         "Subscribe streams connected to this daemon"));
  EXPECT_EQ(connected.out, "");

  subscriber_.reset();
  CtlResult entries;
  ASSERT_TRUE(WaitFor([&] {
    entries = Ctl({"handlers", "delete", "orders", "A"});
    return !absl::StrContains(entries.err, "connected");
  })) << entries;
  EXPECT_EQ(entries.exit_code, 9) << entries;
  EXPECT_EQ(entries.err,
            "redrivectl: FAILED_PRECONDITION: handler 'A' on channel 'orders' holds 0 retry "
            "entries and 2 dead letters; nothing was deleted (to discard them: force with "
            "expected_retry_entries=0 expected_dead_letters=2)\n");

  CtlResult usage = Ctl({"handlers", "delete", "orders", "A", "--force"});
  EXPECT_EQ(usage.exit_code, ctl::kExitUsage) << usage;
  EXPECT_EQ(usage.err,
            "redrivectl: --force needs --expect-retry N and --expect-dlq N, the counts you "
            "expect to discard (see 'handlers')\n");

  CtlResult wrong = Ctl(
      {"handlers", "delete", "orders", "A", "--force", "--expect-retry", "0", "--expect-dlq", "3"});
  EXPECT_EQ(wrong.exit_code, 9) << wrong;
  EXPECT_THAT(wrong.err, HasSubstr("holds 0 retry entries and 2 dead letters, not 0 and 3"));
  EXPECT_THAT(::redrive::testing::SortedKeys(*conn_), ::testing::ElementsAreArray(before));

  CtlResult done = Ctl({"--operator", "ops", "handlers", "delete", "orders", "A", "--force",
                        "--expect-retry", "0", "--expect-dlq", "2"});
  ASSERT_EQ(done.exit_code, 0) << done;
  EXPECT_EQ(done.out,
            "deleted handler A on orders\n"
            "destroyed group: orders A\n"
            "deleted key: orders.A.dlq\n"
            "discarded: 0 retry entries, 2 dead letters\n"
            "unregistered: yes, pause flag removed: no\n");
  EXPECT_EQ(done.err, "");
  EXPECT_THAT(::redrive::testing::SortedKeys(*conn_), ElementsAre("orders"));
  EXPECT_THAT(daemon_->Log(), HasSubstr("admin DeleteHandler by ops: "));

  CtlResult gone = Ctl({"handlers", "delete", "orders", "A"});
  EXPECT_EQ(gone.exit_code, 5) << gone;
  EXPECT_EQ(gone.err, "redrivectl: NOT_FOUND: no handler 'A' on channel 'orders'\n");
}

// REDRIVE_ADMIN_TOKEN_FILE (what scripts/run.sh and the sidecar manifest
// set) is read; REDRIVE_ADMIN_TOKEN wins over it; UNAUTHENTICATED ends with a
// hint naming every way to pass a token.
TEST_F(RedrivectlAdminTest, TokenFileVariableAndHintOnUnauthenticated) {
  CtlResult file =
      CtlProcess::Start({"handlers"}, Env({"REDRIVE_ADMIN_TOKEN_FILE=" + token_file_}))->Wait();
  EXPECT_EQ(file.exit_code, 0) << file;
  EXPECT_EQ(file.out, ctl::FormatHandlers({}));
  EXPECT_EQ(file.err, "");

  const std::string run_sh_hint =
      "redrivectl: hint: scripts/run.sh writes a token to "
      "${XDG_RUNTIME_DIR:-/tmp}/redrive-admin-token when none is configured.\n";
  CtlResult none = CtlProcess::Start({"handlers"}, Env())->Wait();
  EXPECT_EQ(none.exit_code, 16) << none;
  EXPECT_THAT(none.err, StartsWith("redrivectl: UNAUTHENTICATED: "));
  EXPECT_THAT(none.err,
              ::testing::EndsWith("\nredrivectl: hint: no admin token was sent. Pass the daemon's "
                                  "token with --token-file FILE, or set REDRIVE_ADMIN_TOKEN (the "
                                  "token) or REDRIVE_ADMIN_TOKEN_FILE (a file holding it).\n" +
                                  run_sh_hint));
  EXPECT_EQ(none.out, "");

  // The variable holding the token wins over the one naming a file.
  CtlResult both = CtlProcess::Start({"dlq", "count", "orders", "A"},
                                     Env({"REDRIVE_ADMIN_TOKEN=not-the-admin-token-000",
                                          "REDRIVE_ADMIN_TOKEN_FILE=" + token_file_}))
                       ->Wait();
  EXPECT_EQ(both.exit_code, 16) << both;
  EXPECT_THAT(both.err,
              ::testing::EndsWith("\nredrivectl: hint: the daemon refused the token from "
                                  "REDRIVE_ADMIN_TOKEN. Use the daemon's token: --token-file FILE, "
                                  "REDRIVE_ADMIN_TOKEN or REDRIVE_ADMIN_TOKEN_FILE (first one set "
                                  "wins).\n" +
                                  run_sh_hint));
  // --token-file wins over both.
  CtlResult flag = CtlProcess::Start({"--token-file", token_file_, "handlers"},
                                     Env({"REDRIVE_ADMIN_TOKEN=not-the-admin-token-000",
                                          "REDRIVE_ADMIN_TOKEN_FILE=" + dir_ + "/missing"}))
                       ->Wait();
  EXPECT_EQ(flag.exit_code, 0) << flag;

  CtlResult missing =
      CtlProcess::Start({"handlers"}, Env({"REDRIVE_ADMIN_TOKEN_FILE=" + dir_ + "/missing"}))
          ->Wait();
  EXPECT_EQ(missing.exit_code, ctl::kExitNoInput) << missing;
  EXPECT_EQ(missing.err, "redrivectl: cannot read token file '" + dir_ +
                             "/missing' (from REDRIVE_ADMIN_TOKEN_FILE)\n");
  // Publish and tail need no token and print no hint.
  CtlResult publish = CtlProcess::Start({"publish", "orders", "--data", "x"}, Env())->Wait();
  EXPECT_EQ(publish.exit_code, 0) << publish;
  EXPECT_EQ(publish.err, "");
}

// --admin-auth=disabled: no token needed, and none is sent.
TEST_F(RedrivectlTest, AdminWithAuthDisabledNeedsNoToken) {
  DaemonProcess::Options o;
  o.extra_args.push_back("--admin-auth=disabled");
  Boot(o);
  CtlResult r = Ctl({"handlers"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, ctl::FormatHandlers({}));
  EXPECT_EQ(r.err, "");
}

// ---------------------------------------------------------------- health

// `redrivectl health` (the image's HEALTHCHECK): SERVING and exit 0 while
// Redis answers, NOT_SERVING and exit 67 while it does not (the liveness
// service stays SERVING), the gRPC code when nothing answers. It needs no
// admin token: an unreadable token file does not matter.
TEST_F(RedrivectlTest, HealthExitsZeroOnlyWhileServing) {
  DaemonProcess::Options o;
  o.extra_args = {"--health-listen=127.0.0.1:0", "--health-interval-ms=50"};
  Boot(o);
  ASSERT_FALSE(daemon_->health_address().empty());
  const std::vector<std::string> no_token = {"REDRIVE_ADMIN_TOKEN_FILE=" + dir_ + "/missing"};

  CtlResult overall = Ctl({"health"}, no_token);
  EXPECT_EQ(overall.exit_code, 0) << overall;
  EXPECT_EQ(overall.out, "SERVING\n");
  EXPECT_EQ(overall.err, "");
  for (const char* service : {"readiness", "liveness"}) {
    CtlResult r = Ctl({"--addr", daemon_->health_address(), "health", "--service", service});
    EXPECT_EQ(r.exit_code, 0) << service << "\n" << r;
    EXPECT_EQ(r.out, "SERVING\n") << service;
  }
  CtlResult json = Ctl({"--json", "--addr", daemon_->unix_address(), "health"});
  EXPECT_EQ(json.exit_code, 0) << json;
  EXPECT_EQ(json.out, "{\"status\":\"SERVING\"}\n");

  CtlResult unknown = Ctl({"health", "--service", "no.such.Service"});
  EXPECT_EQ(unknown.exit_code, 5) << unknown;
  EXPECT_EQ(unknown.out, "");
  EXPECT_THAT(unknown.err, StartsWith("redrivectl: NOT_FOUND: ")) << unknown;

  redis_->Kill();
  CtlResult down;
  ASSERT_TRUE(WaitFor([&] {
    down = Ctl({"--addr", daemon_->health_address(), "health"});
    return down.exit_code != 0;
  })) << down;
  EXPECT_EQ(down.exit_code, ctl::kExitNotServing) << down;
  EXPECT_EQ(down.out, "NOT_SERVING\n");
  EXPECT_EQ(down.err, "");
  CtlResult live = Ctl({"--addr", daemon_->health_address(), "health", "--service", "liveness"});
  EXPECT_EQ(live.exit_code, 0) << live;
  EXPECT_EQ(live.out, "SERVING\n");

  ASSERT_TRUE(redis_->Restart());
  CtlResult back;
  ASSERT_TRUE(WaitFor([&] {
    back = Ctl({"health"});
    return back.exit_code == 0;
  })) << back;
  EXPECT_EQ(back.out, "SERVING\n");

  // Nothing listening: UNAVAILABLE (14), nothing on stdout.
  daemon_->Kill9();
  for (const std::string& addr :
       {daemon_->health_address(), absl::StrCat("unix:", dir_, "/no.sock")}) {
    CtlResult gone = Ctl({"--addr", addr, "health"});
    EXPECT_EQ(gone.exit_code, 14) << addr << "\n" << gone;
    EXPECT_EQ(gone.out, "");
    EXPECT_THAT(gone.err, StartsWith("redrivectl: UNAVAILABLE: ")) << gone;
  }
}

}  // namespace
}  // namespace redrive
