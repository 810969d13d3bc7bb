// Distributor: hands a handler's entries to its sessions. Each entry is
// decoded once (DecodeDelivery), given to the next session with a free slot
// (round robin) and leased there; what finds no slot waits in the handler's
// Backlog and is fetched again when slots free; poison (R-D6) goes to the
// DLQ; entries trimmed while pending leave the PEL; entries read before a
// drain began and answered after it are handed straight back.
//
// Loop thread only. Deliveries land in the sessions' outboxes (DirtySessions);
// the caller flushes them at the end of its turn.
#ifndef REDRIVE_DAEMON_ENGINE_DISTRIBUTOR_H_
#define REDRIVE_DAEMON_ENGINE_DISTRIBUTOR_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "daemon/delivery_decoder.h"
#include "daemon/engine/ack_batcher.h"
#include "daemon/engine/context.h"
#include "daemon/engine/drainer.h"
#include "daemon/engine/handler.h"
#include "daemon/engine/reader.h"
#include "daemon/engine/retry_scheduler.h"
#include "daemon/engine/session.h"
#include "daemon/stream_entry.h"

namespace redrive {

class Distributor {
 public:
  struct Parts {
    Reader& reader;
    RetryScheduler& retries;
    AckBatcher& acks;
    Drainer& drainer;
  };
  Distributor(EngineContext& ctx, HandlerTable& handlers, DirtySessions& dirty, Parts parts)
      : ctx_(ctx), handlers_(handlers), dirty_(dirty), parts_(parts) {}

  // Freshly read (or fetched) entries of `source` of `h`.
  void Deliver(EngineHandler& h, uint8_t source, std::vector<StreamEntry> entries)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Hands out what the backlog keeps, as far as the free slots go: whole
  // entries at once, parked ids after fetching them again.
  void Pump(EngineHandler& h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

 private:
  void OnFetched(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                 std::vector<Entry> asked, absl::StatusOr<std::vector<StreamEntry>> fetched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  EngineContext& ctx_;
  HandlerTable& handlers_;
  DirtySessions& dirty_;
  const Parts parts_;
  uint64_t next_delivery_id_ ABSL_GUARDED_BY(kLoopThread) = 0;
  // Every entry is decoded into this one and serialized into an outbox, so
  // the message's strings are allocated once, not per delivery.
  DecodedDelivery scratch_ ABSL_GUARDED_BY(kLoopThread);
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_DISTRIBUTOR_H_
