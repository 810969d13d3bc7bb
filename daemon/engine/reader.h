// Reader: the group reads of each handler (R-B3, R-B5, R-D7, R-D8). A
// handler reads its main stream (group = handler id) and, unless auto-ack,
// its retry stream (group `{handler}-retry`). Reads are non-blocking
// XREADGROUPs issued only when (a) the notifier (ActivityNotifier) reported
// entries, a read came back full or the notifier is down, and (b) the handler has free
// slots (`capacity`); each read asks for at most the free slots, split
// between the two sources when both have entries, so neither starves. A
// group deleted under us is recreated after the last entry read.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_READER_H_
#define REDRIVE_DAEMON_ENGINE_READER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "daemon/activity_notifier.h"
#include "daemon/engine/context.h"

namespace redrive {

class Reader {
 public:
  struct Hooks {
    // Free slots of the handler not yet promised to reads.
    std::function<uint32_t(const HandlerRef&)> capacity;
    // Entries read for the handler (its sessions take them).
    std::function<void(const HandlerRef&, uint8_t source, std::vector<StreamEntry>)> entries;
    // Entries read after the handler left (pending under our consumer,
    // never delivered): to be handed back.
    std::function<void(const HandlerRef&, const SpecPtr&, uint8_t source,
                       std::vector<std::string> ids)>
        orphaned;
    std::function<bool()> draining;
  };

  Reader(EngineContext& ctx, ActivityNotifier& notifier, Hooks hooks);

  void Add(const HandlerRef& ref, const SpecPtr& spec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Stops watching the handler's streams and forgets it.
  void Forget(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Watches `source` of `ref`; `ready` runs once the notifier covers it.
  void Watch(const HandlerRef& ref, uint8_t source, std::function<void()> ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // `source` may have new entries (notifier, a move into the retry stream,
  // a resume, a notifier outage): read when there are slots.
  void Wake(const HandlerRef& ref, uint8_t source) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // The handler's group is ready: its main source can be read.
  void Open(const HandlerRef& ref, uint8_t source) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Reads what the free slots allow.
  void MaybeRead(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Slots promised to reads in flight.
  uint32_t reserved(const HandlerRef& ref) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  ActivityNotifier& notifier() ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) { return notifier_; }
  // The handlers that read `stream`.
  const std::vector<HandlerRef>* Readers(const std::string& stream) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

 private:
  struct Source {
    bool watched = false;
    bool ready = false;
    bool more = true;
    bool reading = false;
    uint64_t activity = 0;  // bumps on every wake
    absl::Time retry_after = absl::InfinitePast();
    // The newest id XREADGROUP returned: a lost group is recreated there.
    std::string last_read_id;
  };
  struct PerHandler {
    SpecPtr spec;
    Source sources[2];
    bool prefer_retry = false;  // which source a one-slot read serves next
    uint32_t reserved = 0;
  };

  PerHandler* Find(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Read(const HandlerRef& ref, PerHandler& h, uint8_t source, uint32_t count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void OnRead(const HandlerRef& ref, const SpecPtr& spec, uint8_t source, uint32_t asked,
              uint64_t activity, absl::StatusOr<std::vector<StreamEntry>> read)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void RecreateGroup(const HandlerRef& ref, PerHandler& h, uint8_t source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  EngineContext& ctx_;
  ActivityNotifier& notifier_;
  const Hooks hooks_;
  // By HandlerRef::generation: an integer key keeps the per-tick lookups of
  // many idle handlers cheap (no string hashing and comparing).
  absl::flat_hash_map<uint64_t, PerHandler> handlers_ ABSL_GUARDED_BY(kLoopThread);
  // stream → the handlers reading it
  absl::flat_hash_map<std::string, std::vector<HandlerRef>> by_stream_ ABSL_GUARDED_BY(kLoopThread);
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_READER_H_
