// EngineHandler: a handler on this daemon (one channel + handler id): its
// sessions, the entries waiting for a slot (Backlog) and its flags.
// HandlerSession: a session and the handler it registered.
// HandlerTable: the handlers by key and by generation (HandlerRef).
//
// Loop thread only (the dispatcher owns them).
#ifndef REDRIVE_DAEMON_ENGINE_HANDLER_H_
#define REDRIVE_DAEMON_ENGINE_HANDLER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "daemon/engine/backlog.h"
#include "daemon/engine/context.h"
#include "daemon/engine/session.h"

namespace redrive {

struct EngineHandler;

struct HandlerSession : EngineSession {
  using EngineSession::EngineSession;
  EngineHandler* handler = nullptr;  // null once detached
};

struct EngineHandler {
  HandlerRef ref;
  SpecPtr spec;           // of the first registration
  bool auto_ack = false;  // the spec's, kept here for the tick
  bool ready = false;     // its group exists and is watched
  bool paused = false;    // R-E5: nothing read or handed out
  bool present = false;   // its registry record was written (removed with it)
  SessionRing<HandlerSession> sessions;
  Backlog backlog;
  // In-flight entries whose deadline (a longer session lease, EXTEND)
  // outlives the handler's lease in Redis are touched every lease / 3.
  absl::Time in_flight_touch_at = absl::InfinitePast();

  // Ids of `source` its sessions and backlog hold (a sweep skips them).
  void AddHeld(uint8_t source, absl::flat_hash_set<std::string>& held) const;
  // Keeps what this daemon holds ours in Redis: resets the idle time of the
  // backlog's ids and of deliveries whose deadline outlives the handler's
  // lease (a longer session lease, a long EXTEND), each every lease / 3, so
  // no sweep takes them while a client still holds a valid lease.
  void KeepOurs(EngineContext& ctx, absl::Time now);
  // End of a drain: takes every unsettled delivery (in delivery order) and
  // the backlog's ids, by source, into `ids`; returns how many were
  // unsettled.
  size_t TakeForHandBack(std::vector<std::string> (&ids)[2]);

  // Free slots of its sessions not yet promised to the backlog or to the
  // `reading` slots of reads in flight.
  uint32_t Capacity(uint32_t reading) const {
    const uint64_t free = sessions.FreeSlots();
    const uint64_t taken = backlog.taken() + reading;
    return free > taken ? static_cast<uint32_t>(std::min<uint64_t>(free - taken, UINT32_MAX)) : 0;
  }
};

class HandlerTable {
 public:
  using Map = absl::flat_hash_map<uint64_t, std::unique_ptr<EngineHandler>>;

  // By generation: the lookups of every tick and reply (an integer key).
  EngineHandler* Find(const HandlerRef& ref) const {
    auto it = by_generation_.find(ref.generation);
    return it == by_generation_.end() ? nullptr : it->second.get();
  }
  EngineHandler* FindKey(const std::string& key) const {
    auto it = by_key_.find(key);
    return it == by_key_.end() ? nullptr : by_generation_.at(it->second).get();
  }
  // A new handler for `key`, with a generation no earlier handler had.
  EngineHandler& Create(const std::string& key, SpecPtr spec) {
    auto h = std::make_unique<EngineHandler>();
    h->ref = HandlerRef{key, ++next_generation_};
    h->auto_ack = spec->auto_ack;
    h->spec = std::move(spec);
    by_key_[key] = h->ref.generation;
    EngineHandler& created = *h;
    by_generation_[h->ref.generation] = std::move(h);
    return created;
  }
  // Destroys the handler.
  void Remove(const HandlerRef& ref) {
    auto it = by_key_.find(ref.key);
    if (it != by_key_.end() && it->second == ref.generation) by_key_.erase(it);  // not a newer one
    by_generation_.erase(ref.generation);
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    out.reserve(by_key_.size());
    for (const auto& [key, generation] : by_key_) out.push_back(key);
    return out;
  }
  size_t size() const { return by_generation_.size(); }
  bool empty() const { return by_generation_.empty(); }
  Map::iterator begin() { return by_generation_.begin(); }
  Map::iterator end() { return by_generation_.end(); }
  Map::const_iterator begin() const { return by_generation_.begin(); }
  Map::const_iterator end() const { return by_generation_.end(); }

 private:
  Map by_generation_;
  absl::flat_hash_map<std::string, uint64_t> by_key_;
  uint64_t next_generation_ = 0;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_HANDLER_H_
