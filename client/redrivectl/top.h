// redrivectl top: the command's options and its refresh loop.
//
// On a terminal (stdout a TTY) the loop takes the alternate screen, hides
// the cursor and redraws in place; with stdin a TTY too it puts stdin in
// non-canonical, no-echo mode (signals stay on, so Ctrl-C is SIGINT) and
// reads keys: q quits, s cycles the sort. Everything is restored when the
// loop ends, also through the Interrupter (SIGINT/SIGTERM). When stdout is
// not a TTY it prints one plain frame per refresh, a blank line between
// frames. Failed calls are shown in the frame and retried every interval.
//
// The frame itself is top_view.h's.
#ifndef REDRIVE_CLIENT_REDRIVECTL_TOP_H_
#define REDRIVE_CLIENT_REDRIVECTL_TOP_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/redrivectl/commands.h"
#include "client/redrivectl/run.h"
#include "client/redrivectl/top_view.h"
#include "redrive/v1/admin.pb.h"

namespace redrive::ctl {

struct TopPlan {
  v1::ListHandlersRequest request;  // --channel
  absl::Duration interval = absl::Seconds(1);
  uint64_t iterations = 0;  // 0 = until q, SIGINT or SIGTERM
  TopSort sort = TopSort::kName;
};
absl::StatusOr<TopPlan> BuildTop(const ParsedArgs& args);

// Where the frames' data comes from (the daemon, or a fake in tests).
struct TopSource {
  std::function<absl::StatusOr<v1::ListHandlersResponse>()> list_handlers;
  // grpc.health.v1 "readiness": true when SERVING.
  std::function<absl::StatusOr<bool>()> ready;
};

struct TopTerminal {
  int in_fd = 0;   // keys, when a TTY
  int out_fd = 1;  // the screen, when a TTY; frames go to Io::out either way
};

// Runs until --iterations refreshes, q, or an interrupt. Returns kExitOk
// after q or an interrupt; after the last of --iterations refreshes, kExitOk
// when it worked, else its gRPC status code.
int RunTop(const TopPlan& plan, const std::string& address, const TopSource& source,
           TopTerminal terminal, Io io, Interrupter& interrupter);

}  // namespace redrive::ctl

#endif  // REDRIVE_CLIENT_REDRIVECTL_TOP_H_
