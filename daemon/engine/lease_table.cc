#include "daemon/engine/lease_table.h"

#include <algorithm>

namespace redrive {

void LeaseTable::Add(uint64_t delivery_id, Entry entry, absl::Time deadline,
                     absl::Time idle_since) {
  flights_.emplace(delivery_id,
                   Flight{std::move(entry), deadline, idle_since, /*delivered_at=*/idle_since});
}

LeaseTable::Flight* LeaseTable::Find(uint64_t delivery_id) {
  auto it = flights_.find(delivery_id);
  return it == flights_.end() ? nullptr : &it->second;
}

std::optional<LeaseTable::Outcome> LeaseTable::SettledAs(uint64_t delivery_id) const {
  auto it = settled_.find(delivery_id);
  if (it == settled_.end()) return std::nullopt;
  return it->second;
}

std::optional<LeaseTable::Flight> LeaseTable::Settle(uint64_t delivery_id, Outcome outcome) {
  auto it = flights_.find(delivery_id);
  if (it == flights_.end()) return std::nullopt;
  Flight flight = std::move(it->second);
  flights_.erase(it);
  settled_.emplace(delivery_id, outcome);
  settled_order_.push_back(delivery_id);
  while (settled_order_.size() > settled_memory_) {
    settled_.erase(settled_order_.front());
    settled_order_.pop_front();
  }
  return flight;
}

std::vector<uint64_t> LeaseTable::Expired(absl::Time now) const {
  std::vector<uint64_t> expired;
  for (const auto& [id, f] : flights_) {
    if (f.deadline <= now) expired.push_back(id);
  }
  std::sort(expired.begin(), expired.end());
  return expired;
}

std::vector<std::pair<uint64_t, Entry>> LeaseTable::TakeAll() {
  std::vector<std::pair<uint64_t, Entry>> all;
  all.reserve(flights_.size());
  for (auto& [id, f] : flights_) all.emplace_back(id, std::move(f.entry));
  flights_.clear();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return all;
}

}  // namespace redrive
