// LeaseTable: the deliveries one Subscribe stream holds (delivery id →
// entry, lease deadline) and the outcomes of recently settled ones, so a
// repeated verb is answered idempotently (R-B6) and an unknown one noticed.
//
// Thread-compatible (the dispatcher uses it on the loop thread).
#ifndef REDRIVE_DAEMON_ENGINE_LEASE_TABLE_H_
#define REDRIVE_DAEMON_ENGINE_LEASE_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "daemon/engine/context.h"

namespace redrive {

class LeaseTable {
 public:
  enum class Outcome : uint8_t { kAcked, kNacked, kTerminated, kExpired, kMoved };

  struct Flight {
    Entry entry;
    absl::Time deadline;
    absl::Time idle_since;  // when Redis last reset the entry's idle time
    absl::Time delivered_at;
  };

  // Remembers at least `settled_memory` settled ids.
  explicit LeaseTable(size_t settled_memory) : settled_memory_(settled_memory) {}

  // Delivered at `idle_since` (the settle latency counts from it).
  void Add(uint64_t delivery_id, Entry entry, absl::Time deadline, absl::Time idle_since);
  // The flight of an unsettled delivery, or null.
  Flight* Find(uint64_t delivery_id);
  // How a delivery was settled, if it is still remembered.
  std::optional<Outcome> SettledAs(uint64_t delivery_id) const;
  // Settles a delivery in flight: removes it and remembers its outcome.
  // Returns its flight, or nullopt when it was not in flight.
  std::optional<Flight> Settle(uint64_t delivery_id, Outcome outcome);
  // Deliveries whose deadline is at or before `now`, in delivery order.
  std::vector<uint64_t> Expired(absl::Time now) const;
  // Removes every delivery in flight (no outcome remembered), in delivery
  // order.
  std::vector<std::pair<uint64_t, Entry>> TakeAll();

  size_t size() const { return flights_.size(); }
  bool empty() const { return flights_.empty(); }
  // For iteration (the touch of long leases, the ids a sweep must skip).
  absl::flat_hash_map<uint64_t, Flight>& flights() { return flights_; }
  const absl::flat_hash_map<uint64_t, Flight>& flights() const { return flights_; }

 private:
  const size_t settled_memory_;
  absl::flat_hash_map<uint64_t, Flight> flights_;
  absl::flat_hash_map<uint64_t, Outcome> settled_;
  std::deque<uint64_t> settled_order_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_LEASE_TABLE_H_
