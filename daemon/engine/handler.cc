#include "daemon/engine/handler.h"

#include <algorithm>
#include <utility>

namespace redrive {

void EngineHandler::AddHeld(uint8_t source, absl::flat_hash_set<std::string>& held) const {
  for (const HandlerSession* s : sessions.attached()) s->AddHeld(source, held);
  backlog.AddHeld(source, held);
}

void EngineHandler::KeepOurs(EngineContext& ctx, absl::Time now) {
  // (Cheap checks first: this runs for every handler on every tick.)
  if (backlog.has_ids() && !sessions.attached().empty()) backlog.MaybeTouch(ctx, *spec, now);
  if (auto_ack || now < in_flight_touch_at) return;
  std::vector<std::string> ids[2];
  for (HandlerSession* s : sessions.attached()) s->TakeStale(now, spec->lease, ids);
  for (uint8_t source : {kMain, kRetry}) {
    TouchEntries(ctx, *spec, source, std::move(ids[source]), false);
  }
  in_flight_touch_at = now + spec->lease / 3;
}

size_t EngineHandler::TakeForHandBack(std::vector<std::string> (&ids)[2]) {
  std::vector<std::pair<uint64_t, Entry>> unsettled;
  for (HandlerSession* s : sessions.attached()) {
    for (auto& taken : s->leases.TakeAll()) unsettled.push_back(std::move(taken));
  }
  std::sort(unsettled.begin(), unsettled.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [delivery_id, e] : unsettled) ids[e.source].push_back(std::move(e.id));
  for (Entry& e : backlog.TakeIds()) ids[e.source].push_back(std::move(e.id));
  return unsettled.size();
}

}  // namespace redrive
