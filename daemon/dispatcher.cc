#include "daemon/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/delivery_decoder.h"
#include "daemon/engine/ack_batcher.h"
#include "daemon/engine/dead_letterer.h"
#include "daemon/engine/drainer.h"
#include "daemon/engine/pause_poller.h"
#include "daemon/engine/presence.h"
#include "daemon/engine/reader.h"
#include "daemon/engine/retry_scheduler.h"
#include "daemon/engine/sweeper.h"
#include "daemon/redis/errors.h"
#include "daemon/retry_metadata.h"

namespace redrive {
namespace {

constexpr size_t kSettledMemory = 4096;
constexpr size_t kMaxReason = 4096;
constexpr size_t kMaxErrorCode = 128;

// Resets the idle time of `ids` of a handler's source (still ours), or with
// `release` sets it past every lease so any daemon's reclaimer takes them.
void Touch(EngineContext& ctx, const SubscriptionSpec& spec, uint8_t source,
           std::vector<std::string> ids, bool release) {
  if (ids.empty()) return;
  const GroupRef g = SourceRef(spec, source);
  spdlog::debug("{} {} entries of '{}' in group '{}'", release ? "releasing" : "touching",
                ids.size(), g.stream, g.group);
  if (release) ctx.stats.released += ids.size();
  ctx.ops.Touch(g, std::move(ids), release, [&stats = ctx.stats](absl::Status status) {
    if (!status.ok()) ++stats.redis_errors;
  });
}

// The notice for a verb whose delivery is not in flight; nullopt for a
// repeated ACK (idempotent and silent).
std::optional<std::pair<v1::Notice::Code, std::string>> NotInFlight(
    const v1::Verb& verb, std::optional<LeaseTable::Outcome> settled) {
  const uint64_t id = verb.delivery_id();
  if (!settled.has_value()) {
    return std::make_pair(v1::Notice::UNKNOWN_DELIVERY,
                          absl::StrCat("no delivery ", id, " on this stream"));
  }
  if (verb.has_ack() && *settled == LeaseTable::Outcome::kAcked) return std::nullopt;
  return std::make_pair(v1::Notice::ALREADY_SETTLED,
                        absl::StrCat("delivery ", id, " was already settled"));
}

// Why a NACK or TERMINATE verb is out of range; "" when it is valid.
std::string InvalidVerb(const v1::Verb& verb) {
  if (verb.has_nack()) {
    const v1::Nack& nack = verb.nack();
    if (nack.reason().size() > kMaxReason || nack.error_code().size() > kMaxErrorCode ||
        (nack.has_delay_ms() && nack.delay_ms() > kMaxDurationMs)) {
      return absl::StrCat("nack.reason at most ", kMaxReason, " bytes, error_code at most ",
                          kMaxErrorCode, ", delay_ms at most ", kMaxDurationMs);
    }
  } else if (verb.has_terminate()) {
    const v1::Terminate& t = verb.terminate();
    if (t.reason().size() > kMaxReason || t.error_code().size() > kMaxErrorCode) {
      return absl::StrCat("terminate.reason at most ", kMaxReason, " bytes, error_code at most ",
                          kMaxErrorCode);
    }
  } else if (verb.has_extend()) {
    if (verb.extend().lease_ms() > kMaxDurationMs) {
      return absl::StrCat("extend.lease_ms ", verb.extend().lease_ms(), " is outside 0..",
                          kMaxDurationMs);
    }
  } else if (!verb.has_ack()) {
    return "verb has no action";
  }
  return "";
}

}  // namespace

struct Dispatcher::Parts {
  Parts(EngineContext& ctx, StreamNotifier& notifier, PausePoller::OnChange on_pause,
        PausePoller::KnownKeys known, RetryScheduler::Hooks retry_hooks, Sweeper::Hooks sweep_hooks,
        Reader::Hooks read_hooks)
      : acks(ctx),
        pauses(ctx, std::move(on_pause), std::move(known)),
        presence(ctx),
        dead_letters(ctx),
        retries(ctx, dead_letters, std::move(retry_hooks)),
        sweeper(ctx, std::move(sweep_hooks)),
        reader(ctx, notifier, std::move(read_hooks)),
        drainer(ctx) {}

  AckBatcher acks;
  PausePoller pauses;
  Presence presence;
  DeadLetterer dead_letters;
  RetryScheduler retries;
  Sweeper sweeper;
  Reader reader;
  Drainer drainer;
};

Dispatcher::Session::Session(uint64_t session_id, std::shared_ptr<SessionSink> session_sink,
                             SubscriptionSpec session_spec)
    : id(session_id),
      sink(std::move(session_sink)),
      spec(std::move(session_spec)),
      leases(std::max<size_t>(kSettledMemory, 4 * spec.max_in_flight)) {}

uint32_t Dispatcher::Session::free_slots() const {
  if (!attached || stopped) return 0;
  const size_t used = leases.size();
  return used >= spec.max_in_flight ? 0 : spec.max_in_flight - static_cast<uint32_t>(used);
}

Dispatcher::Dispatcher(EventLoop& loop, StreamOps& ops, StreamNotifier& notifier,
                       DispatcherOptions options)
    : state_(std::move(options)), ctx_{loop,           ops,           state_.options, state_.stats,
                                       state_.summary, state_.tracker} {
  auto draining = [this] {
    kLoopThread.AssertHeld();
    return parts_->drainer.draining();
  };
  RetryScheduler::Hooks retry_hooks;
  retry_hooks.schedule_failed = [this](const HandlerRef& ref, uint8_t source) {
    kLoopThread.AssertHeld();
    if (Handler* h = Find(ref)) {
      parts_->sweeper.SweepBy(ref, source, ctx_.now() + h->spec->lease);
    }
  };
  retry_hooks.moved = [this](const HandlerRef& ref, uint8_t source) {
    kLoopThread.AssertHeld();
    if (source == kRetry) parts_->sweeper.WantTrim(ref);
    // Read it now rather than on the notifier's word.
    parts_->reader.Open(ref, kRetry);
    parts_->reader.Wake(ref, kRetry);
    parts_->reader.MaybeRead(ref);
    FlushOut();
  };
  retry_hooks.draining = draining;
  Sweeper::Hooks sweep_hooks;
  sweep_hooks.held = [this](const HandlerRef& ref, uint8_t source) {
    kLoopThread.AssertHeld();
    return HeldIds(ref, source);
  };
  sweep_hooks.claimed = [this](const HandlerRef& ref, uint8_t source, const std::string& consumer,
                               std::vector<StreamEntry> entries) {
    kLoopThread.AssertHeld();
    OnClaimed(ref, source, consumer, std::move(entries));
  };
  Reader::Hooks read_hooks;
  read_hooks.capacity = [this](const HandlerRef& ref) {
    kLoopThread.AssertHeld();
    Handler* h = Find(ref);
    return h == nullptr ? 0u : Capacity(*h);
  };
  read_hooks.entries = [this](const HandlerRef& ref, uint8_t source,
                              std::vector<StreamEntry> entries) {
    kLoopThread.AssertHeld();
    if (Handler* h = Find(ref)) DeliverEntries(*h, source, std::move(entries));
    FlushOut();
  };
  read_hooks.orphaned = [this](const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                               std::vector<std::string> ids) {
    kLoopThread.AssertHeld();
    parts_->retries.Return(ref, spec, source, ids);
  };
  read_hooks.draining = draining;
  auto on_pause = [this](const std::string& key, bool paused) {
    kLoopThread.AssertHeld();
    auto it = handlers_.find(key);
    if (it == handlers_.end() || it->second->paused == paused) return;
    Handler& h = *it->second;
    h.paused = paused;
    spdlog::info("handler '{}' on '{}' {}", h.spec->handler_id, h.spec->channel,
                 paused ? "paused: no new deliveries" : "resumed");
    if (!paused) {
      for (uint8_t source : {kMain, kRetry}) parts_->reader.Wake(h.ref, source);
      Pump(h);
      parts_->reader.MaybeRead(h.ref);
    }
    FlushOut();
  };
  auto known = [this] {
    kLoopThread.AssertHeld();
    std::vector<std::string> keys;
    for (const auto& [key, h] : handlers_) keys.push_back(key);
    return keys;
  };
  parts_ = std::make_unique<Parts>(ctx_, notifier, std::move(on_pause), std::move(known),
                                   std::move(retry_hooks), std::move(sweep_hooks),
                                   std::move(read_hooks));
  state_.tracker.set_on_idle([this] {
    kLoopThread.AssertHeld();
    if (parts_->drainer.draining()) CheckDrained();
  });
  tick_timer_ = loop.NewTimer([this] {
    kLoopThread.AssertHeld();
    Tick();
  });
  tick_timer_->Arm(state_.options.tick);
}

Dispatcher::~Dispatcher() = default;

Dispatcher::Handler* Dispatcher::Find(const HandlerRef& ref) {
  auto it = handlers_.find(ref.key);
  if (it == handlers_.end() || it->second->ref.generation != ref.generation) return nullptr;
  return it->second.get();
}

size_t Dispatcher::InFlight(uint64_t session_id) const {
  auto it = sessions_.find(session_id);
  return it == sessions_.end() ? 0 : it->second->leases.size();
}

// ---------------------------------------------------------------- register

void Dispatcher::Register(uint64_t session_id, SubscriptionSpec spec,
                          std::shared_ptr<SessionSink> sink) {
  if (parts_->drainer.draining()) {
    sink->Finish(absl::UnavailableError("redrived is shutting down"));
    return;
  }
  const std::string key = EngineHandlerKey(spec.channel, spec.handler_id);
  auto found = handlers_.find(key);
  Handler* h = found == handlers_.end() ? nullptr : found->second.get();
  if (h != nullptr) {
    // Every stream of a handler here shares its policies (the first
    // registration's apply) and its consumer: a disagreeing registration is
    // refused rather than silently overruled.
    if (absl::Status same = CheckSamePolicy(*h->spec, spec); !same.ok()) {
      spdlog::info("session {} refused: {}", session_id, std::string(same.message()));
      sink->Finish(same);
      return;
    }
    spec.consumer = h->spec->consumer;
  }
  auto session = std::make_unique<Session>(session_id, std::move(sink), std::move(spec));
  Session& s = *session;
  sessions_[session_id] = std::move(session);
  if (h == nullptr) {
    auto created = std::make_unique<Handler>();
    created->ref = HandlerRef{key, ++next_generation_};
    created->spec = std::make_shared<const SubscriptionSpec>(s.spec);
    created->paused = parts_->pauses.paused(key);
    h = created.get();
    handlers_[key] = std::move(created);
    parts_->reader.Add(h->ref, h->spec);
    parts_->sweeper.Add(h->ref);
    parts_->retries.Add(h->ref);
    s.handler = h;
    h->waiting.push_back(&s);
    CreateGroup(*h);
    return;
  }
  s.handler = h;
  if (!h->ready) {
    h->waiting.push_back(&s);
    return;
  }
  Attach(*h, s);
  Pump(*h);
  parts_->reader.MaybeRead(h->ref);
  FlushOut();
}

void Dispatcher::CreateGroup(Handler& handler) {
  const SubscriptionSpec& spec = *handler.spec;
  // A pause set while no daemon had the handler applies before the first
  // read (replies arrive in order, so this one comes before the group's).
  parts_->pauses.Check(handler.ref.key, spec.channel, spec.handler_id);
  ctx_.ops.CreateGroup(spec.keys.stream, spec.keys.group, GroupStartId(spec.start),
                       guard_.Wrap([this, ref = handler.ref](absl::Status status) {
                         kLoopThread.AssertHeld();
                         Handler* h = Find(ref);
                         if (h == nullptr) return;
                         if (RedisErrorOf(status) == RedisError::kWrongType) {
                           status = absl::FailedPreconditionError(absl::StrCat(
                               "key '", h->spec->keys.stream, "' exists and is not a stream"));
                         }
                         if (!status.ok()) {
                           OnGroupReady(*h, status);
                           return;
                         }
                         // Recorded for the Admin service (R-E1), with this daemon's presence
                         // heartbeat, before the registration is answered: a client that saw
                         // Registered finds its handler in ListHandlers.
                         h->present = true;
                         parts_->presence.Record(*h->spec, guard_.Wrap([this, ref] {
                           kLoopThread.AssertHeld();
                           if (Find(ref) == nullptr) return;
                           parts_->reader.Watch(ref, kMain, [this, ref] {
                             kLoopThread.AssertHeld();
                             if (Handler* ready = Find(ref)) OnGroupReady(*ready, absl::OkStatus());
                           });
                         }));
                       }));
}

void Dispatcher::OnGroupReady(Handler& h, absl::Status status) {
  std::vector<Session*> waiting;
  waiting.swap(h.waiting);
  if (!status.ok()) {
    spdlog::warn("registration of handler '{}' on '{}' failed: {}", h.spec->handler_id,
                 h.spec->channel, std::string(status.message()));
    for (Session* s : waiting) {
      s->sink->Finish(status);
      s->handler = nullptr;
      sessions_.erase(s->id);
    }
    MaybeRemoveHandler(h);
    return;
  }
  h.ready = true;
  parts_->reader.Open(h.ref, kMain);
  if (!h.spec->auto_ack) {
    // The retry group is created by the first move into the stream (the
    // scripts create it at the stream's end right before adding the entry),
    // so a handler that never fails leaves no retry key behind.
    parts_->reader.Watch(h.ref, kRetry, [this, ref = h.ref] {
      kLoopThread.AssertHeld();
      parts_->reader.Open(ref, kRetry);
      parts_->reader.MaybeRead(ref);
      FlushOut();
    });
  }
  for (Session* s : waiting) Attach(h, *s);
  Pump(h);
  parts_->reader.MaybeRead(h.ref);
  FlushOut();
}

void Dispatcher::Attach(Handler& h, Session& s) {
  s.attached = true;
  h.sessions.push_back(&s);
  v1::SubscribeResponse reply;
  *reply.mutable_registered() = MakeRegistered(s.spec, ctx_.options.instance_id);
  s.sink->Send(std::move(reply));
  spdlog::info("session {} registered handler '{}' on '{}' (max_in_flight {}, auto_ack {})", s.id,
               s.spec.handler_id, s.spec.channel, s.spec.max_in_flight, s.spec.auto_ack);
}

// ---------------------------------------------------------------- delivering

uint32_t Dispatcher::Capacity(const Handler& h) const {
  if (parts_->drainer.draining() || h.paused) return 0;
  uint64_t free = 0;
  for (const Session* s : h.sessions) free += s->free_slots();
  const uint64_t taken = h.backlog.ids.size() + h.backlog.entries.size() +
                         parts_->reader.reserved(h.ref.key) + h.backlog.fetching.size();
  return free > taken ? static_cast<uint32_t>(std::min<uint64_t>(free - taken, UINT32_MAX)) : 0;
}

namespace {

// The next attached session of `sessions` with a free slot, round robin.
template <typename SessionT>
SessionT* PickSession(const std::vector<SessionT*>& sessions, size_t& round_robin, bool paused) {
  if (paused) return nullptr;  // what arrives now waits here (R-E5)
  const size_t n = sessions.size();
  for (size_t i = 0; i < n; ++i) {
    SessionT* s = sessions[(round_robin + i) % n];
    if (s->free_slots() > 0) {
      round_robin = (round_robin + i + 1) % n;
      return s;
    }
  }
  return nullptr;
}

}  // namespace

void Dispatcher::Pump(Handler& h) {
  auto has_slot = [&h] {
    return !h.paused && std::any_of(h.sessions.begin(), h.sessions.end(),
                                    [](const Session* s) { return s->free_slots() > 0; });
  };
  while (!h.backlog.entries.empty() && has_slot()) {
    StreamEntry e = std::move(h.backlog.entries.front());
    h.backlog.entries.pop_front();
    DeliverEntries(h, kMain, {std::move(e)});
  }
  if (parts_->drainer.draining() || h.backlog.ids.empty()) return;
  uint64_t free = 0;
  for (const Session* s : h.sessions) free += s->free_slots();
  const uint64_t promised = h.backlog.fetching.size() + parts_->reader.reserved(h.ref.key);
  const uint64_t taking = std::min<uint64_t>(
      {free > promised ? free - promised : 0, h.backlog.ids.size(), ctx_.options.read_batch});
  if (taking == 0) return;
  // Fetch the entries again; XCLAIM with min-idle 0 keeps them ours, resets
  // their idle time and returns their fields (deleted ones are dropped).
  std::vector<Entry> asked[2];
  for (uint64_t i = 0; i < taking; ++i) {
    Entry e = std::move(h.backlog.ids.front());
    h.backlog.ids.pop_front();
    h.backlog.fetching.insert(e.id);
    asked[e.source].push_back(std::move(e));
  }
  for (uint8_t source : {kMain, kRetry}) {
    if (asked[source].empty()) continue;
    std::vector<std::string> ids;
    for (const Entry& e : asked[source]) ids.push_back(e.id);
    ctx_.ops.Claim(
        SourceRef(*h.spec, source), absl::ZeroDuration(), std::move(ids),
        guard_.Wrap([this, ref = h.ref, spec = h.spec, source, asked = std::move(asked[source])](
                        absl::StatusOr<std::vector<StreamEntry>> fetched) mutable {
          kLoopThread.AssertHeld();
          if (Find(ref) == nullptr) {
            // The last session left meanwhile: never delivered,
            // handed back.
            std::vector<std::string> back;
            for (const Entry& e : asked) back.push_back(e.id);
            parts_->retries.Return(ref, spec, source, back);
            return;
          }
          OnFetched(ref, source, std::move(fetched), std::move(asked));
        }));
  }
}

void Dispatcher::OnFetched(const HandlerRef& ref, uint8_t source,
                           absl::StatusOr<std::vector<StreamEntry>> fetched,
                           std::vector<Entry> asked) {
  Handler& h = *Find(ref);
  for (const Entry& e : asked) h.backlog.fetching.erase(e.id);
  if (!fetched.ok()) {
    ++ctx_.stats.redis_errors;
    // Back to the front, in their original order; the tick tries again.
    for (auto it = asked.rbegin(); it != asked.rend(); ++it) {
      h.backlog.ids.push_front(std::move(*it));
    }
    return;
  }
  ctx_.stats.redeliveries += fetched->size();
  DeliverEntries(h, source, *std::move(fetched));
  Pump(h);
  parts_->reader.MaybeRead(h.ref);
  FlushOut();
}

void Dispatcher::DeliverEntries(Handler& h, uint8_t source, std::vector<StreamEntry> entries) {
  const bool auto_ack = h.spec->auto_ack;
  if (parts_->drainer.draining() && !auto_ack) {
    // Read before the drain began, answered after: hand it straight back.
    std::vector<std::string> ids;
    for (const StreamEntry& e : entries) ids.push_back(e.id);
    parts_->retries.Return(h.ref, h.spec, source, ids);
    return;
  }
  for (StreamEntry& e : entries) {
    if (e.deleted) {
      // Trimmed while pending: nothing to deliver; drop it from the PEL.
      if (!auto_ack) {
        const GroupRef g = SourceRef(*h.spec, source);
        parts_->acks.Queue(g.stream, g.group, e.id);
      }
      continue;
    }
    Session* s = PickSession(h.sessions, h.round_robin, h.paused);
    if (s == nullptr) {
      // Auto-ack entries were acknowledged at read: kept whole until a slot
      // frees (the streams stay open through a drain's grace period); others
      // are fetched again then.
      if (auto_ack) {
        h.backlog.entries.push_back(std::move(e));
      } else {
        h.backlog.ids.push_back(Entry{std::move(e.id), 1, source});
      }
      continue;
    }
    absl::StatusOr<DecodedDelivery> decoded = DecodeDelivery(e, /*lenient=*/auto_ack);
    if (decoded.ok() && !decoded->unreadable.empty()) {
      ++ctx_.stats.decode_errors;
      spdlog::warn("entry {} of '{}' is unreadable ({}); delivered as raw bytes", e.id,
                   h.spec->channel, decoded->unreadable);
    }
    if (!decoded.ok()) {
      // Poison (R-D6): straight to the DLQ, raw bytes kept; never delivered,
      // never in the way of the entries behind it.
      ++ctx_.stats.poison;
      spdlog::debug("entry {} of '{}' is poison for handler '{}': {}", e.id,
                    SourceRef(*h.spec, source).stream, h.spec->handler_id,
                    std::string(decoded.status().message()));
      FailureRecord f = parts_->retries.MakeFailure(
          *h.spec, 1, FailKind::kNack, std::string(decoded.status().message()), "POISON");
      f.outcome = "poison";
      parts_->dead_letters.DeadLetter(h.spec, source, e,
                                      absl::StatusOr<RetryState>(decoded.status()), f, "poison",
                                      h.spec->consumer);
      continue;
    }
    Deliver(h, *s, Entry{std::move(e.id), decoded->attempt, source}, std::move(decoded->message));
  }
}

void Dispatcher::Deliver(Handler& h, Session& s, Entry entry, v1::Delivery&& message) {
  const uint64_t id = ++next_delivery_id_;
  const absl::Time deadline = ctx_.now() + s.spec.lease;
  const SubscriptionSpec& spec = *h.spec;
  message.set_delivery_id(id);
  message.set_channel(spec.channel);
  message.set_stream(SourceRef(spec, entry.source).stream);
  message.set_entry_id(entry.id);
  if (message.original_entry_id().empty()) message.set_original_entry_id(entry.id);
  message.set_attempt(entry.attempt);
  if (spec.has_retry_policy && !spec.retry_policy.unlimited()) {
    message.set_max_attempts(spec.retry_policy.max_retries() + 1);
  }
  message.set_lease_deadline_unix_ms(absl::ToUnixMillis(deadline));
  s.outbox.Add(std::move(message));
  s.leases.Add(id, std::move(entry), deadline, deadline - s.spec.lease);
  ++ctx_.stats.deliveries;
  if (!s.dirty) {
    s.dirty = true;
    dirty_.push_back(&s);
  }
}

void Dispatcher::FlushOut() {
  std::vector<Session*> dirty;
  dirty.swap(dirty_);
  for (Session* s : dirty) {
    s->dirty = false;
    s->outbox.FlushTo(*s->sink);
  }
}

void Dispatcher::OnStreamActivity(const std::string& stream) {
  const std::vector<std::string>* keys = parts_->reader.Readers(stream);
  if (keys == nullptr) return;
  for (const std::string& key : std::vector<std::string>(*keys)) {
    auto it = handlers_.find(key);
    if (it == handlers_.end()) continue;
    const Handler& h = *it->second;
    for (uint8_t source : {kMain, kRetry}) {
      if (SourceRef(*h.spec, source).stream == stream) parts_->reader.Wake(h.ref, source);
    }
    parts_->reader.MaybeRead(h.ref);
  }
  FlushOut();
}

// ---------------------------------------------------------------- verbs

void Dispatcher::Verbs(uint64_t session_id, const v1::Verbs& verbs) {
  auto sit = sessions_.find(session_id);
  if (sit == sessions_.end()) return;
  Session& s = *sit->second;
  Handler* h = s.handler;
  const bool settles = h != nullptr && !h->spec->auto_ack;
  const absl::Time now = ctx_.now();
  std::vector<std::string> extended[2];
  auto notice = [&](uint64_t id, v1::Notice::Code code, std::string message) {
    kLoopThread.AssertHeld();
    s.outbox.AddNotice(id, code, std::move(message));
    ++ctx_.stats.notices;
    if (!s.dirty) {
      s.dirty = true;
      dirty_.push_back(&s);
    }
  };
  for (const v1::Verb& verb : verbs.verbs()) {
    const uint64_t id = verb.delivery_id();
    LeaseTable::Flight* flight = s.leases.Find(id);
    if (flight == nullptr) {
      if (auto n = NotInFlight(verb, s.leases.SettledAs(id))) notice(id, n->first, n->second);
      continue;
    }
    if (std::string invalid = InvalidVerb(verb); !invalid.empty()) {
      notice(id, v1::Notice::INVALID_VERB, std::move(invalid));
      continue;
    }
    const Entry entry = flight->entry;
    if (verb.has_ack()) {
      ++ctx_.stats.acks;
      s.leases.Settle(id, LeaseTable::Outcome::kAcked);
      if (!settles) continue;
      const GroupRef g = SourceRef(*h->spec, entry.source);
      parts_->acks.Queue(g.stream, g.group, entry.id);
      if (entry.source == kRetry) parts_->sweeper.WantTrim(h->ref);
    } else if (verb.has_nack()) {
      const v1::Nack& nack = verb.nack();
      ++ctx_.stats.nacks;
      s.leases.Settle(id, LeaseTable::Outcome::kNacked);
      std::optional<absl::Duration> delay;
      if (nack.has_delay_ms()) delay = absl::Milliseconds(nack.delay_ms());
      if (settles) Fail(*h, entry, FailKind::kNack, nack.reason(), nack.error_code(), delay);
    } else if (verb.has_extend()) {
      const uint32_t lease_ms = verb.extend().lease_ms();
      ++ctx_.stats.extends;
      flight->deadline = now + (lease_ms == 0 ? s.spec.lease : absl::Milliseconds(lease_ms));
      flight->idle_since = now;
      extended[entry.source].push_back(entry.id);
    } else {
      const v1::Terminate& t = verb.terminate();
      ++ctx_.stats.terminates;
      s.leases.Settle(id, LeaseTable::Outcome::kTerminated);
      if (settles) Fail(*h, entry, FailKind::kTerminated, t.reason(), t.error_code(), {});
    }
  }
  if (h != nullptr) {
    if (settles) {
      for (uint8_t source : {kMain, kRetry}) {
        Touch(ctx_, *h->spec, source, std::move(extended[source]), false);
      }
    }
    Pump(*h);
    parts_->reader.MaybeRead(h->ref);
  }
  FlushOut();
  if (parts_->drainer.draining()) CheckDrained();
}

void Dispatcher::Fail(Handler& h, const Entry& entry, FailKind kind, std::string error,
                      std::string error_code, std::optional<absl::Duration> delay) {
  if (entry.source == kRetry) parts_->sweeper.WantTrim(h.ref);
  parts_->retries.Fail(h.ref, h.spec, entry, kind, std::move(error), std::move(error_code), delay,
                       parts_->sweeper.Period(*h.spec));
}

void Dispatcher::OnClaimed(const HandlerRef& ref, uint8_t source, const std::string& consumer,
                           std::vector<StreamEntry> entries) {
  Handler* h = Find(ref);
  if (h == nullptr) return;
  for (StreamEntry& e : entries) {
    const GroupRef g = SourceRef(*h->spec, source);
    if (e.deleted) {
      parts_->acks.Queue(g.stream, g.group, e.id);
      continue;
    }
    ++ctx_.stats.reclaimed;
    absl::StatusOr<RetryState> state = ReadRetryState(e);
    if (!state.ok()) {
      ++ctx_.stats.poison;
      FailureRecord f = parts_->retries.MakeFailure(
          *h->spec, 1, FailKind::kExpired, std::string(state.status().message()), "POISON");
      f.outcome = "poison";
      parts_->dead_letters.DeadLetter(h->spec, source, e, state, f, "poison", h->spec->consumer);
      continue;
    }
    const uint32_t attempt =
        static_cast<uint32_t>(std::min<int64_t>(state->retry_count + 1, UINT32_MAX));
    ctx_.summary.LeaseExpired(h->spec->channel, h->spec->handler_id);
    spdlog::debug("entry {} of '{}' was idle past its lease on consumer '{}': attempt {} failed",
                  e.id, g.stream, consumer, attempt);
    Fail(*h, Entry{e.id, attempt, source}, FailKind::kExpired,
         absl::StrCat("lease expired on consumer ", consumer), "LEASE_EXPIRED", std::nullopt);
  }
  FlushOut();
}

absl::flat_hash_set<std::string> Dispatcher::HeldIds(const HandlerRef& ref, uint8_t source) {
  absl::flat_hash_set<std::string> held;
  Handler* h = Find(ref);
  if (h == nullptr) return held;
  for (const Session* s : h->sessions) {
    for (const auto& [id, f] : s->leases.flights()) {
      if (f.entry.source == source) held.insert(f.entry.id);
    }
  }
  for (const Entry& e : h->backlog.ids) {
    if (e.source == source) held.insert(e.id);
  }
  parts_->dead_letters.AddHeld(ref.key, source, held);
  // (fetching ids are few and short-lived; a collision between the two
  // streams' ids only makes a sweep skip an entry once.)
  held.insert(h->backlog.fetching.begin(), h->backlog.fetching.end());
  return held;
}

void Dispatcher::Stop(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  it->second->stopped = true;
}

// ---------------------------------------------------------------- disconnect

void Dispatcher::Disconnect(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  spdlog::debug("session {} disconnected with {} deliveries in flight", session_id,
                s.leases.size());
  DetachSession(s);
  sessions_.erase(it);
  FlushOut();
  if (parts_->drainer.draining()) CheckDrained();
}

void Dispatcher::DetachSession(Session& s) {
  Handler* h = s.handler;
  if (s.dirty) {
    dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), &s), dirty_.end());
    s.dirty = false;
  }
  if (h == nullptr) return;
  h->waiting.erase(std::remove(h->waiting.begin(), h->waiting.end(), &s), h->waiting.end());
  h->sessions.erase(std::remove(h->sessions.begin(), h->sessions.end(), &s), h->sessions.end());
  std::vector<std::pair<uint64_t, Entry>> unsettled = s.leases.TakeAll();
  if (!h->spec->auto_ack) {
    // (Auto-ack entries were acknowledged at read: nothing to give back.)
    // R-B7: each unsettled delivery is a failed attempt, retried at once —
    // by another stream of the handler if one is connected — or
    // dead-lettered as "disconnected" once the policy is exhausted.
    for (const auto& [id, e] : unsettled) {
      ++ctx_.stats.disconnect_failures;
      Fail(*h, e, FailKind::kDisconnected, "consumer disconnected", "DISCONNECTED",
           absl::ZeroDuration());
    }
  }
  s.handler = nullptr;
  Pump(*h);
  const bool can_take = std::any_of(h->sessions.begin(), h->sessions.end(),
                                    [](const Session* o) { return !o->stopped; });
  if (!can_take && !h->backlog.ids.empty()) {
    // Read but never delivered, and no session here will take them: hand
    // them back through the retry path for any stream (not a failed attempt).
    std::vector<std::string> ids[2];
    for (const Entry& e : h->backlog.ids) ids[e.source].push_back(e.id);
    h->backlog.ids.clear();
    for (uint8_t source : {kMain, kRetry}) {
      parts_->retries.Return(h->ref, h->spec, source, ids[source]);
    }
  }
  parts_->reader.MaybeRead(h->ref);
  MaybeRemoveHandler(*h);
}

void Dispatcher::MaybeRemoveHandler(Handler& h) {
  if (!h.sessions.empty() || !h.waiting.empty()) return;
  const std::string key = h.ref.key;
  parts_->reader.Forget(key);
  parts_->sweeper.Forget(key);
  parts_->retries.Forget(key);
  parts_->dead_letters.Forget(key);
  if (h.present) parts_->presence.Remove(*h.spec);
  handlers_.erase(key);  // destroys h
}

// ---------------------------------------------------------------- timers

void Dispatcher::SetPaused(const std::string& channel, const std::string& handler_id, bool paused) {
  parts_->pauses.Set(EngineHandlerKey(channel, handler_id), paused);
  FlushOut();
}

std::vector<Dispatcher::HandlerSnapshot> Dispatcher::Snapshot() const {
  std::vector<HandlerSnapshot> out;
  for (const auto& [key, h] : handlers_) {
    HandlerSnapshot snap;
    snap.channel = h->spec->channel;
    snap.handler_id = h->spec->handler_id;
    snap.consumer = h->spec->consumer;
    snap.sessions = static_cast<uint32_t>(h->sessions.size());
    for (const Session* s : h->sessions) snap.in_flight += s->leases.size();
    snap.paused = h->paused;
    out.push_back(std::move(snap));
  }
  return out;
}

void Dispatcher::Tick() {
  const absl::Time now = ctx_.now();
  if (!handlers_.empty()) {
    parts_->pauses.MaybePoll(now);
    std::vector<const SubscriptionSpec*> present;
    for (const auto& [key, h] : handlers_) {
      if (h->ready && !h->sessions.empty()) present.push_back(h->spec.get());
    }
    parts_->presence.MaybeBeat(now, present);
  }
  // Lease expiry (R-D3): a failed attempt, retried after its backoff.
  for (auto& [sid, session] : sessions_) {
    Session& s = *session;
    for (uint64_t id : s.leases.Expired(now)) {
      ++ctx_.stats.lease_expiries;
      const Entry entry = s.leases.Settle(id, LeaseTable::Outcome::kExpired)->entry;
      if (s.handler == nullptr) continue;
      ctx_.summary.LeaseExpired(s.spec.channel, s.spec.handler_id);
      spdlog::debug("delivery {} (entry {}) on session {}: lease expired", id, entry.id, s.id);
      if (!s.handler->spec->auto_ack) {
        Fail(*s.handler, entry, FailKind::kExpired,
             absl::StrCat("lease of ", absl::ToInt64Milliseconds(s.spec.lease),
                          " ms expired without ACK or EXTEND"),
             "LEASE_EXPIRED", std::nullopt);
      }
    }
  }
  for (auto& [key, handler] : handlers_) {
    if (handler->ready) TickHandler(*handler, now);
  }
  StreamNotifier& notifier = parts_->reader.notifier();
  if (!notifier.healthy()) notifier.Kick();
  for (const std::string& line : ctx_.summary.Report(now)) spdlog::info("{}", line);
  FlushOut();
  if (parts_->drainer.draining()) CheckDrained();
  tick_timer_->Arm(ctx_.options.tick);
}

void Dispatcher::TickHandler(Handler& h, absl::Time now) {
  const SubscriptionSpec& spec = *h.spec;
  if (!parts_->reader.notifier().healthy()) {
    // Poll while the notifier is down.
    for (uint8_t source : {kMain, kRetry}) parts_->reader.Wake(h.ref, source);
  }
  Pump(h);
  // Entries waiting for a slot stay ours: keep their idle time low.
  if (!h.backlog.ids.empty() && !h.sessions.empty() && now >= h.backlog.touch_at) {
    std::vector<std::string> ids[2];
    for (const Entry& e : h.backlog.ids) ids[e.source].push_back(e.id);
    for (uint8_t source : {kMain, kRetry}) Touch(ctx_, spec, source, std::move(ids[source]), false);
    h.backlog.touch_at = now + spec.lease / 3;
  }
  if (!spec.auto_ack && now >= h.in_flight_touch_at) {
    // Deliveries that may outlive the handler's lease in Redis (a longer
    // session lease, a long EXTEND) get their idle time reset, so no sweep
    // takes them while their client still holds a valid lease.
    const absl::Duration third = spec.lease / 3;
    std::vector<std::string> ids[2];
    for (Session* s : h.sessions) {
      for (auto& [id, f] : s->leases.flights()) {
        if (f.deadline > f.idle_since + spec.lease && now - f.idle_since > third) {
          ids[f.entry.source].push_back(f.entry.id);
          f.idle_since = now;
        }
      }
    }
    for (uint8_t source : {kMain, kRetry}) Touch(ctx_, spec, source, std::move(ids[source]), false);
    h.in_flight_touch_at = now + third;
  }
  if (!spec.auto_ack && !parts_->drainer.draining()) {
    parts_->dead_letters.RetryDue(h.ref, h.spec, now, parts_->sweeper.Period(spec));
    parts_->retries.MaybeMove(h.ref, h.spec, now);
    parts_->sweeper.MaybeSweep(h.ref, h.spec, now);
  }
  parts_->reader.MaybeRead(h.ref);
}

// ---------------------------------------------------------------- drain

void Dispatcher::Drain(absl::Duration grace, std::function<void()> done) {
  parts_->drainer.Start(grace, std::move(done));
  v1::SubscribeResponse drain;
  drain.mutable_drain()->set_grace_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(grace)));
  drain.mutable_drain()->set_reason("redrived is shutting down");
  for (auto& [id, s] : sessions_) s->sink->Send(drain);
  spdlog::info("draining {} sessions for up to {} ms", sessions_.size(),
               absl::ToInt64Milliseconds(grace));
  CheckDrained();
}

void Dispatcher::CheckDrained() {
  bool settled = true;
  for (const auto& [id, s] : sessions_) settled = settled && s->leases.empty();
  if (!parts_->drainer.HandBackDue(settled)) return;
  // What is still unsettled when the grace ends stays pending for the next
  // owner (broker.proto, step 6): like what was read and never delivered, it
  // is handed back through the retry path without counting an attempt, so a
  // rolling deploy never moves a message closer to (or into) the DLQ.
  for (auto& [key, h] : handlers_) {
    std::vector<std::pair<uint64_t, Entry>> unsettled;
    for (Session* s : h->sessions) {
      for (auto& taken : s->leases.TakeAll()) unsettled.push_back(std::move(taken));
    }
    if (h->spec->auto_ack) {
      h->backlog.ids.clear();
      continue;
    }
    // In delivery order, then what was never delivered.
    std::sort(unsettled.begin(), unsettled.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> ids[2];
    for (const auto& [id, e] : unsettled) {
      ++ctx_.stats.drain_released;
      ids[e.source].push_back(e.id);
    }
    for (const Entry& e : h->backlog.ids) ids[e.source].push_back(e.id);
    h->backlog.ids.clear();
    if (!unsettled.empty()) {
      spdlog::info(
          "handler '{}' on '{}': {} unsettled deliveries handed back at the end of the "
          "drain (no attempt counted)",
          h->spec->handler_id, h->spec->channel, unsettled.size());
    }
    for (uint8_t source : {kMain, kRetry}) {
      parts_->retries.Return(h->ref, h->spec, source, ids[source]);
    }
  }
  parts_->acks.Flush();
  // The retry moves started here and before finish first: their replies (or
  // the command timeout) come within seconds.
  if (!parts_->drainer.OpsDone()) return;
  for (auto& [id, s] : sessions_) {
    s->sink->Finish(absl::UnavailableError("redrived is shutting down"));
  }
  for (const std::string& line : ctx_.summary.ReportNow(ctx_.now())) spdlog::info("{}", line);
  parts_->drainer.Finish();
}

}  // namespace redrive
