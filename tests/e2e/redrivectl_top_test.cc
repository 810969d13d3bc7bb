// End to end: `redrivectl top` on a real terminal. The real redrivectl runs
// in a bash inside a detached tmux session of fixed size (120x30) against
// the real redrived and redis-server; the test reads the screen with
// `tmux capture-pane` and types with `tmux send-keys`.
//
// What is checked: the exact DLQ depth, retry depth and lag of the handlers
// the test set up, the deliveries counter (DELIV) of a handler that took 5
// messages, the row order changing with `s`, `q` and Ctrl-C ending top with
// exit code 0, the alternate screen gone and the terminal modes as before
// (`stty -g` compared), and an UNAUTHENTICATED error shown on the screen
// while top keeps running.
#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "redrive/client.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/subscriber.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::DaemonProcess;
using ::redrive::testing::RegisterFor;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::TestSubscriber;
using ::redrive::testing::WaitFor;

constexpr char kToken[] = "e2e-admin-token-0123456789";
constexpr int kColumns = 120;
constexpr int kLines = 30;
constexpr char kPrompt[] = "top-test$ ";

struct Result {
  int exit_code = -1;
  std::string out;
};

// Runs `argv` with exactly `env`; its stdout (stderr too) and exit code.
Result RunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return {};
  std::vector<std::string> a = argv, e = env;
  std::vector<char*> args, envp;
  for (std::string& s : a) args.push_back(s.data());
  args.push_back(nullptr);
  for (std::string& s : e) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  Result r;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(out[0], buf, sizeof(buf));
    if (n <= 0) break;
    r.out.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  }
  return r;
}

// The cells of the screen line whose first two cells are `channel` and
// `handler` (empty when there is none).
std::vector<std::string> RowOf(const std::string& screen, const std::string& channel,
                               const std::string& handler) {
  for (absl::string_view line : absl::StrSplit(screen, '\n')) {
    std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cells.size() >= 2 && cells[0] == channel && cells[1] == handler) return cells;
  }
  return {};
}

// The line the shell printed after top ended ("rc=N tty=same|changed"),
// or "" before.
std::string ShellResult(const std::string& screen) {
  for (absl::string_view line : absl::StrSplit(screen, '\n')) {
    if (absl::StartsWith(line, "rc=") && line.size() > 3 && line[3] >= '0' && line[3] <= '9') {
      return std::string(line);
    }
  }
  return "";
}

// Column positions in a row: CHANNEL HANDLER CONN INFL PEND LAG RETRY DLQ
// OLDEST PAUSED DELIV DLV/S ACK/S NACK/S DL/S (all fit in 120 columns).
enum Cell {
  kConn = 2,
  kInFlight,
  kPending,
  kLag,
  kRetry,
  kDlq,
  kOldest,
  kPaused,
  kDeliv,
  kDlvRate
};

class TopTmuxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = TestRedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    DaemonProcess::Options o;
    o.redis_url = redis_->url();
    o.env.push_back(std::string("REDRIVE_ADMIN_TOKEN=") + kToken);
    daemon_ = DaemonProcess::Start(o);
    ASSERT_NE(daemon_, nullptr);
    client_ = Client::Connect(daemon_->address());
    ASSERT_TRUE(client_->WaitForConnected(absl::Seconds(10)));
    std::string templ = (std::filesystem::temp_directory_path() / "top-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    std::ofstream(dir_ + "/token") << kToken << "\n";
    std::ofstream(dir_ + "/wrong-token") << "not-the-admin-token-000\n";
    socket_ = dir_ + "/tmux.sock";
    // The pane's shell: no rc files, a known prompt; the variables the
    // typed command lines use.
    const std::string shell =
        absl::StrCat("env -i PATH=/usr/bin:/bin HOME=", dir_, " TERM=screen PS1='", kPrompt,
                     "' CTL=", REDRIVECTL_BINARY, " REDRIVE_ADDR=", daemon_->address(),
                     " REDRIVE_ADMIN_TOKEN_FILE=", dir_, "/token WRONG=", dir_,
                     "/wrong-token bash --norc --noprofile -i");
    Result r = Tmux({"new-session", "-d", "-s", "top", "-x", absl::StrCat(kColumns), "-y",
                     absl::StrCat(kLines), shell});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    tmux_started_ = true;
    // (capture-pane drops trailing blanks: the prompt shows as "top-test$".)
    ASSERT_TRUE(WaitScreen([](const std::string& s) { return absl::StrContains(s, "top-test$"); }))
        << Screen();
  }

  void TearDown() override {
    if (tmux_started_) Tmux({"kill-server"});
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Result Tmux(std::vector<std::string> args) {
    args.insert(args.begin(), {TMUX_BINARY, "-S", socket_, "-f", "/dev/null"});
    return RunProcess(args, {"PATH=/usr/bin:/bin", "HOME=" + dir_});
  }

  std::string Screen() { return Tmux({"capture-pane", "-p", "-t", "top"}).out; }

  bool AlternateScreenOn() {
    return Tmux({"display-message", "-p", "-t", "top", "#{alternate_on}"}).out == "1\n";
  }

  // Types `line` and Enter into the pane's shell.
  void Type(const std::string& line) {
    ASSERT_EQ(Tmux({"send-keys", "-t", "top", "-l", line}).exit_code, 0);
    ASSERT_EQ(Tmux({"send-keys", "-t", "top", "Enter"}).exit_code, 0);
  }

  void Key(const std::string& key) {
    ASSERT_EQ(Tmux({"send-keys", "-t", "top", key}).exit_code, 0);
  }

  // Polls the screen every 50 ms until `pred` holds (at most 30 s).
  template <typename Pred>
  bool WaitScreen(Pred pred, absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (int i = 0; i < 2000; ++i) {
      if (pred(Screen())) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // Starts top in the pane's shell; when it ends, the shell prints its exit
  // code and whether the terminal modes are what they were before.
  void StartTop(const std::string& flags) {
    Type(absl::StrCat("S0=$(stty -g); \"$CTL\" top ", flags,
                      "; echo \"rc=$? tty=$([ \"$(stty -g)\" = \"$S0\" ] && echo same || echo "
                      "changed)\""));
  }

  v1::ListHandlersResponse ListHandlers() {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    v1::ListHandlersResponse r;
    grpc::Status s = client_->admin().ListHandlers(&ctx, v1::ListHandlersRequest(), &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r;
  }

  const v1::HandlerInfo* Find(const v1::ListHandlersResponse& r, const std::string& channel,
                              const std::string& handler) {
    for (const v1::HandlerInfo& h : r.handlers()) {
      if (h.handler().channel() == channel && h.handler().handler_id() == handler) return &h;
    }
    return nullptr;
  }

  void Publish(const std::string& channel, int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(client_->Publish(channel, absl::StrCat("{\"n\":", i, "}")).ok());
    }
  }

  // orders/A: took 5 messages, terminated 3 (DLQ 3) and NACKed 2 with a
  // 10-minute delay (retry depth 2, and pending 2: the daemon's scheduled
  // consumer holds them until due); stays connected. billing/lagger:
  // registered, gone, then 4 messages published (lag 4).
  void SetUpHandlers() {
    auto lagger =
        std::make_unique<TestSubscriber>(client_->broker(), RegisterFor("billing", "lagger"));
    ASSERT_TRUE(lagger->WaitRegistered());
    lagger->Cancel();
    ASSERT_TRUE(lagger->WaitFinished());
    lagger.reset();
    Publish("billing", 4);

    subscriber_ = std::make_unique<TestSubscriber>(client_->broker(), RegisterFor("orders", "A"));
    ASSERT_TRUE(subscriber_->WaitRegistered());
    Publish("orders", 5);
    ASSERT_TRUE(subscriber_->WaitForDeliveries(5));
    v1::SubscribeRequest req;
    for (int i = 0; i < 5; ++i) {
      v1::Verb* v = req.mutable_verbs()->add_verbs();
      v->set_delivery_id(subscriber_->deliveries()[static_cast<size_t>(i)].delivery_id());
      if (i < 3) {
        v->mutable_terminate()->set_reason("bad");
      } else {
        v->mutable_nack()->set_delay_ms(600000);
      }
    }
    ASSERT_TRUE(subscriber_->Send(req));
    ASSERT_TRUE(WaitFor([&] {
      v1::ListHandlersResponse r = ListHandlers();
      const v1::HandlerInfo* a = Find(r, "orders", "A");
      const v1::HandlerInfo* l = Find(r, "billing", "lagger");
      return a != nullptr && l != nullptr && a->dlq_depth() == 3 && a->retry_depth() == 2 &&
             a->pending() == 2 && l->lag() == 4 && l->connected_streams() == 0;
    })) << ListHandlers().DebugString();
  }

  std::unique_ptr<TestRedisServer> redis_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<TestSubscriber> subscriber_;
  std::string dir_;
  std::string socket_;
  bool tmux_started_ = false;
};

TEST_F(TopTmuxTest, ShowsExactDepthsSortsWithSAndQuitsRestoringTheTerminal) {
  SetUpHandlers();
  if (HasFatalFailure()) return;
  StartTop("--interval 200");

  // The first frame with both handlers, by name: billing before orders.
  std::string screen;
  ASSERT_TRUE(WaitScreen([&](const std::string& s) {
    screen = s;
    return RowOf(s, "billing", "lagger").size() == 15 && RowOf(s, "orders", "A").size() == 15;
  })) << Screen();
  EXPECT_TRUE(AlternateScreenOn());
  EXPECT_TRUE(absl::StrContains(screen, "sort: name  (q quit, s sort)")) << screen;
  EXPECT_TRUE(absl::StrContains(screen, absl::StrCat("redrive top  ", daemon_->address())))
      << screen;
  EXPECT_TRUE(absl::StrContains(screen, "readiness SERVING  handlers 2  ")) << screen;
  EXPECT_LT(screen.find("billing "), screen.find("orders ")) << screen;

  const std::vector<std::string> a = RowOf(screen, "orders", "A");
  EXPECT_EQ(a[kConn], "1") << screen;
  EXPECT_EQ(a[kPending], "2") << screen;  // the NACKed two, held by "A:scheduled"
  EXPECT_EQ(a[kLag], "0") << screen;
  EXPECT_EQ(a[kRetry], "2") << screen;
  EXPECT_EQ(a[kDlq], "3") << screen;
  EXPECT_EQ(a[kPaused], "no") << screen;
  const std::vector<std::string> l = RowOf(screen, "billing", "lagger");
  EXPECT_EQ(l[kConn], "0") << screen;
  EXPECT_EQ(l[kLag], "4") << screen;
  EXPECT_EQ(l[kRetry], "0") << screen;
  EXPECT_EQ(l[kDlq], "0") << screen;
  EXPECT_EQ(l[kOldest], "-") << screen;

  // The deliveries counter: orders/A took exactly 5 messages from this
  // daemon, billing/lagger none. HandlerInfo.counters is filled by the
  // daemon's metrics work (issue 12); until then DELIV reads 0 and this
  // assertion fails.
  EXPECT_EQ(a[kDeliv], "5") << "DELIV of orders/A (HandlerInfo.counters.deliveries)\n" << screen;
  EXPECT_EQ(l[kDeliv], "0") << screen;
  // Nothing was delivered between the last two refreshes (the second frame
  // has rates): 0.0 per second.
  ASSERT_TRUE(WaitScreen([&](const std::string& s) {
    screen = s;
    const std::vector<std::string> row = RowOf(s, "orders", "A");
    return row.size() == 15 && row[kDlvRate] != "-";
  })) << Screen();
  EXPECT_EQ(RowOf(screen, "orders", "A")[kDlvRate], "0.0") << screen;

  // s: sorted by DLQ depth, orders/A (3) first.
  Key("s");
  ASSERT_TRUE(WaitScreen([&](const std::string& s) {
    screen = s;
    return absl::StrContains(s, "sort: dlq");
  })) << Screen();
  ASSERT_NE(screen.find("orders "), std::string::npos) << screen;
  EXPECT_LT(screen.find("orders "), screen.find("billing ")) << screen;
  // s again: by lag, billing/lagger (4) first.
  Key("s");
  ASSERT_TRUE(WaitScreen([&](const std::string& s) {
    screen = s;
    return absl::StrContains(s, "sort: lag");
  })) << Screen();
  EXPECT_LT(screen.find("billing "), screen.find("orders ")) << screen;

  // q: top exits 0, the shell's screen is back with the terminal as it was.
  Key("q");
  ASSERT_TRUE(WaitScreen([](const std::string& s) { return !ShellResult(s).empty(); })) << Screen();
  screen = Screen();
  EXPECT_EQ(ShellResult(screen), "rc=0 tty=same") << screen;
  EXPECT_TRUE(absl::StrContains(screen, "\nrc=0 tty=same\ntop-test$")) << screen;
  EXPECT_FALSE(AlternateScreenOn());
  EXPECT_FALSE(absl::StrContains(screen, "CHANNEL")) << screen;
  EXPECT_FALSE(absl::StrContains(screen, "redrive top")) << screen;
}

TEST_F(TopTmuxTest, CtrlCRestoresTheTerminalAndErrorsStayOnScreen) {
  // A wrong token: the error is shown, and top goes on refreshing.
  StartTop("--interval 200 --token-file \"$WRONG\"");
  std::string screen;
  ASSERT_TRUE(WaitScreen([&](const std::string& s) {
    screen = s;
    return absl::StrContains(s, "error: UNAUTHENTICATED: ");
  })) << Screen();
  EXPECT_TRUE(absl::StrContains(screen, "(retrying every 200ms)")) << screen;
  EXPECT_TRUE(absl::StrContains(screen, "readiness SERVING  handlers 0  ")) << screen;
  EXPECT_TRUE(AlternateScreenOn());

  // Ctrl-C: SIGINT through the terminal; top exits 0 and restores it.
  Key("C-c");
  ASSERT_TRUE(WaitScreen([](const std::string& s) { return !ShellResult(s).empty(); })) << Screen();
  screen = Screen();
  EXPECT_EQ(ShellResult(screen), "rc=0 tty=same") << screen;
  EXPECT_FALSE(AlternateScreenOn());
  EXPECT_FALSE(absl::StrContains(screen, "UNAUTHENTICATED")) << screen;
}

}  // namespace
}  // namespace redrive
