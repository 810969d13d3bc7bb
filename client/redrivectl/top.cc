#include "client/redrivectl/top.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <optional>
#include <ostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace redrive::ctl {
namespace {

// ANSI / xterm control sequences (every terminal emulator in use has them).
constexpr char kEnterScreen[] = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";  // alt screen, hide cursor
constexpr char kLeaveScreen[] = "\x1b[?25h\x1b[?1049l";               // show cursor, main screen
constexpr char kHome[] = "\x1b[H";
constexpr char kClearLine[] = "\x1b[K";   // to the end of the line
constexpr char kClearBelow[] = "\x1b[J";  // to the end of the screen

// Used when TIOCGWINSZ has no answer.
constexpr size_t kDefaultColumns = 80;
constexpr size_t kDefaultLines = 24;

absl::Status Usage(absl::string_view message) { return absl::InvalidArgumentError(message); }

// A self-pipe: Wake() from any thread makes the read end readable.
class Waker {
 public:
  Waker() {
    if (pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) fds_[0] = fds_[1] = -1;
  }
  ~Waker() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  void Wake() const {
    const char byte = 1;
    if (fds_[1] >= 0 && write(fds_[1], &byte, 1) < 0) {
      // Full pipe: a wake-up is pending anyway.
    }
  }
  int fd() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};
};

// The terminal while top runs: the alternate screen, and stdin's modes when
// keys are read. The destructor restores both.
class Screen {
 public:
  Screen(TopTerminal terminal, bool keys, std::ostream& out) : terminal_(terminal), out_(out) {
    if (keys && tcgetattr(terminal_.in_fd, &saved_) == 0) {
      termios raw = saved_;
      // ISIG stays: Ctrl-C and Ctrl-\ still signal.
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      modes_changed_ = tcsetattr(terminal_.in_fd, TCSANOW, &raw) == 0;
    }
    out_ << kEnterScreen << std::flush;
  }
  ~Screen() {
    out_ << kLeaveScreen << std::flush;
    if (modes_changed_) tcsetattr(terminal_.in_fd, TCSANOW, &saved_);
  }
  Screen(const Screen&) = delete;
  Screen& operator=(const Screen&) = delete;

  void Draw(const TopFrame& frame) {
    size_t columns = kDefaultColumns, lines = kDefaultLines;
    winsize ws{};
    if (ioctl(terminal_.out_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      columns = ws.ws_col;
      lines = ws.ws_row;
    }
    const std::string text = RenderTopFrame(frame, columns, lines);
    std::vector<absl::string_view> parts = absl::StrSplit(text, '\n');
    if (!parts.empty() && parts.back().empty()) parts.pop_back();
    // No line feed after the last line: on the screen's last line it would
    // scroll the frame up by one.
    out_ << kHome << absl::StrJoin(parts, absl::StrCat(kClearLine, "\r\n")) << kClearLine
         << kClearBelow << std::flush;
  }

 private:
  const TopTerminal terminal_;
  std::ostream& out_;
  termios saved_{};
  bool modes_changed_ = false;
};

}  // namespace

absl::StatusOr<TopPlan> BuildTop(const ParsedArgs& args) {
  TopPlan plan;
  if (args.global.json) {
    return Usage("top has no --json output (use 'redrivectl --json handlers' in scripts)");
  }
  absl::StatusOr<v1::ListHandlersRequest> request = BuildListHandlers(args);
  if (!request.ok()) return request.status();
  plan.request = *std::move(request);
  if (std::optional<std::string> v = args.Get("interval")) {
    absl::StatusOr<uint64_t> ms = ParseUnsigned("interval", *v, 100, 60000);
    if (!ms.ok()) return ms.status();
    plan.interval = absl::Milliseconds(static_cast<int64_t>(*ms));
  }
  if (std::optional<std::string> v = args.Get("iterations")) {
    absl::StatusOr<uint64_t> n = ParseUnsigned("iterations", *v, 0, 1000000);
    if (!n.ok()) return n.status();
    plan.iterations = *n;
  }
  if (std::optional<std::string> v = args.Get("sort")) {
    std::optional<TopSort> sort = ParseTopSort(*v);
    if (!sort.has_value()) {
      return Usage(absl::StrCat("--sort: '", *v, "' is not one of name, dlq, lag, rate"));
    }
    plan.sort = *sort;
  }
  return plan;
}

int RunTop(const TopPlan& plan, const std::string& address, const TopSource& source,
           TopTerminal terminal, Io io, Interrupter& interrupter) {
  const bool tty = isatty(terminal.out_fd) == 1;
  bool keys = tty && isatty(terminal.in_fd) == 1;
  Waker waker;
  std::atomic<bool> interrupted{false};
  interrupter.Set([&interrupted, &waker] {
    interrupted = true;
    waker.Wake();
  });
  std::optional<Screen> screen;
  if (tty) screen.emplace(terminal, keys, io.out);

  TopFrame frame;
  frame.address = address;
  frame.interval = plan.interval;
  frame.sort = plan.sort;
  frame.interactive = keys;
  frame.rows_time = absl::InfinitePast();
  RateTracker tracker;
  uint64_t refreshes = 0;
  bool quit = false;
  const auto draw = [&] {
    if (screen.has_value()) {
      screen->Draw(frame);
    } else {
      io.out << (refreshes > 1 ? "\n" : "") << RenderTopFrame(frame, 0, 0) << std::flush;
    }
  };

  while (!interrupted && !quit) {
    const absl::Time start = absl::Now();
    absl::StatusOr<v1::ListHandlersResponse> handlers = source.list_handlers();
    absl::StatusOr<bool> ready = source.ready();
    frame.now = absl::Now();
    if (handlers.ok()) {
      frame.rows = tracker.Update(*handlers, frame.now);
      frame.rows_time = frame.now;
      frame.error = absl::OkStatus();
    } else {
      frame.error = handlers.status();
    }
    frame.readiness = !ready.ok() ? "?" : (*ready ? "SERVING" : "NOT_SERVING");
    ++refreshes;
    draw();
    if (plan.iterations > 0 && refreshes >= plan.iterations) break;

    // Until the next refresh: keys and interrupts.
    const absl::Time next = start + plan.interval;
    while (!interrupted && !quit) {
      const absl::Duration left = next - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      pollfd fds[2] = {{waker.fd(), POLLIN, 0}, {keys ? terminal.in_fd : -1, POLLIN, 0}};
      const int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
      if (poll(fds, 2, timeout_ms) < 0 && errno != EINTR) break;
      if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[64];
      const ssize_t n = read(terminal.in_fd, buf, sizeof(buf));
      if (n <= 0) {
        keys = false;  // end of input: no more keys, refreshes go on
        continue;
      }
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == 'q' || buf[i] == 'Q') quit = true;
        if (buf[i] == 's' || buf[i] == 'S') {
          frame.sort = NextTopSort(frame.sort);
          draw();
        }
      }
    }
  }
  interrupter.Clear();
  screen.reset();
  if (quit || interrupted || frame.error.ok()) return kExitOk;
  return static_cast<int>(frame.error.code());
}

}  // namespace redrive::ctl
