#include "daemon/engine/session.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/engine/verb_checks.h"
#include "daemon/logging.h"

namespace redrive {
namespace {

// Settled deliveries remembered per session (at least), so a repeated verb is
// answered as such.
constexpr size_t kSettledMemory = 4096;

}  // namespace

EngineSession::EngineSession(uint64_t session_id, std::shared_ptr<SessionSink> session_sink,
                             SubscriptionSpec session_spec)
    : id(session_id),
      sink(std::move(session_sink)),
      spec(std::move(session_spec)),
      leases(std::max<size_t>(kSettledMemory, size_t{4} * spec.max_in_flight)) {}

uint32_t EngineSession::free_slots() const {
  if (!attached || stopped) return 0;
  const size_t used = leases.size();
  return used >= spec.max_in_flight ? 0 : spec.max_in_flight - static_cast<uint32_t>(used);
}

void EngineSession::Attach(const std::string& instance_id) {
  attached = true;
  v1::SubscribeResponse reply;
  *reply.mutable_registered() = MakeRegistered(spec, instance_id);
  sink->Send(std::move(reply));
  LogInfo(LogFields().Channel(spec.channel).Handler(spec.handler_id).Session(id),
          "session registered a handler (max_in_flight {}, auto_ack {})", spec.max_in_flight,
          spec.auto_ack);
}

void EngineSession::Deliver(uint64_t delivery_id, Entry entry, const SubscriptionSpec& handler_spec,
                            v1::Delivery& message, absl::Time now) {
  const absl::Time deadline = now + spec.lease;
  message.set_delivery_id(delivery_id);
  message.set_channel(handler_spec.channel);
  message.set_stream(SourceStream(handler_spec, entry.source));
  message.set_entry_id(entry.id);
  if (message.original_entry_id().empty()) message.set_original_entry_id(entry.id);
  message.set_attempt(entry.attempt);
  if (handler_spec.has_retry_policy && !handler_spec.retry_policy.unlimited()) {
    message.set_max_attempts(handler_spec.retry_policy.max_retries() + 1);
  }
  message.set_lease_deadline_unix_ms(absl::ToUnixMillis(deadline));
  outbox.Add(message);
  leases.Add(delivery_id, std::move(entry), deadline, now);
}

VerbOutcome EngineSession::Apply(const v1::Verbs& verbs, absl::Time now, DispatcherStats& stats) {
  VerbOutcome out;
  HandlerMetrics& m = *spec.metrics;
  auto notice = [&](uint64_t delivery_id, v1::Notice::Code code, std::string message) {
    outbox.AddNotice(delivery_id, code, std::move(message));
    ++stats.notices;
    ++out.notices;
  };
  for (const v1::Verb& verb : verbs.verbs()) {
    const uint64_t delivery_id = verb.delivery_id();
    LeaseTable::Flight* flight = leases.Find(delivery_id);
    if (flight == nullptr) {
      if (auto n = NotInFlight(verb, leases.SettledAs(delivery_id))) {
        notice(delivery_id, n->first, n->second);
      }
      continue;
    }
    if (std::string invalid = InvalidVerb(verb); !invalid.empty()) {
      notice(delivery_id, v1::Notice::INVALID_VERB, std::move(invalid));
      continue;
    }
    if (verb.has_ack()) {
      ++stats.acks;
      m.acks.Add();
      m.settle_latency.Observe(now - flight->delivered_at);
      out.acked.push_back(
          std::move(leases.Settle(delivery_id, LeaseTable::Outcome::kAcked)->entry));
    } else if (verb.has_nack()) {
      const v1::Nack& nack = verb.nack();
      ++stats.nacks;
      m.nacks.Add();
      m.settle_latency.Observe(now - flight->delivered_at);
      VerbOutcome::Failure f{leases.Settle(delivery_id, LeaseTable::Outcome::kNacked)->entry,
                             FailKind::kNack, nack.reason(), nack.error_code(), std::nullopt};
      if (nack.has_delay_ms()) f.delay = absl::Milliseconds(nack.delay_ms());
      out.failed.push_back(std::move(f));
    } else if (verb.has_extend()) {
      const uint32_t lease_ms = verb.extend().lease_ms();
      ++stats.extends;
      m.extends.Add();
      flight->deadline = now + (lease_ms == 0 ? spec.lease : absl::Milliseconds(lease_ms));
      flight->idle_since = now;
      out.extended[flight->entry.source].push_back(flight->entry.id);
    } else {
      const v1::Terminate& t = verb.terminate();
      ++stats.terminates;
      m.terminates.Add();
      m.settle_latency.Observe(now - flight->delivered_at);
      out.failed.push_back(
          VerbOutcome::Failure{leases.Settle(delivery_id, LeaseTable::Outcome::kTerminated)->entry,
                               FailKind::kTerminated, t.reason(), t.error_code(), std::nullopt});
    }
  }
  return out;
}

std::vector<Entry> EngineSession::TakeExpired(absl::Time now, DispatcherStats& stats) {
  std::vector<Entry> expired;
  if (leases.empty()) return expired;
  for (uint64_t delivery_id : leases.Expired(now)) {
    ++stats.lease_expiries;
    spec.metrics->lease_expiries.Add();
    Entry entry = leases.Settle(delivery_id, LeaseTable::Outcome::kExpired)->entry;
    LogDebug(LogFields()
                 .Channel(spec.channel)
                 .Handler(spec.handler_id)
                 .EntryId(entry.id)
                 .Session(id)
                 .DeliveryId(delivery_id)
                 .Attempt(entry.attempt),
             "lease expired");
    expired.push_back(std::move(entry));
  }
  return expired;
}

void EngineSession::TakeStale(absl::Time now, absl::Duration lease,
                              std::vector<std::string> (&ids)[2]) {
  const absl::Duration third = lease / 3;
  for (auto& [delivery_id, f] : leases.flights()) {
    if (f.deadline > f.idle_since + lease && now - f.idle_since > third) {
      ids[f.entry.source].push_back(f.entry.id);
      f.idle_since = now;
    }
  }
}

void EngineSession::AddHeld(uint8_t source, absl::flat_hash_set<std::string>& held) const {
  for (const auto& [delivery_id, f] : leases.flights()) {
    if (f.entry.source == source) held.insert(f.entry.id);
  }
}

void DirtySessions::Remove(EngineSession& s) {
  if (!s.dirty) return;
  list_.erase(std::remove(list_.begin(), list_.end(), &s), list_.end());
  s.dirty = false;
}

void DirtySessions::Flush() {
  std::vector<EngineSession*> dirty;
  dirty.swap(list_);
  for (EngineSession* s : dirty) {
    s->dirty = false;
    s->outbox.FlushTo(*s->sink);
  }
}

}  // namespace redrive
