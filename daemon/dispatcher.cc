#include "daemon/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/engine/ack_batcher.h"
#include "daemon/engine/dead_letterer.h"
#include "daemon/engine/distributor.h"
#include "daemon/engine/drainer.h"
#include "daemon/engine/pause_poller.h"
#include "daemon/engine/presence.h"
#include "daemon/engine/reader.h"
#include "daemon/engine/retry_scheduler.h"
#include "daemon/engine/sweeper.h"
#include "daemon/logging.h"
#include "daemon/redis/errors.h"

namespace redrive {

struct Dispatcher::Parts {
  Parts(EngineContext& ctx, ActivityNotifier& notifier, HandlerTable& handlers,
        DirtySessions& dirty, PausePoller::OnChange on_pause, PausePoller::KnownKeys known,
        RetryScheduler::Hooks retry_hooks, Sweeper::Hooks sweep_hooks, Reader::Hooks read_hooks)
      : acks(ctx),
        pauses(ctx, std::move(on_pause), std::move(known)),
        presence(ctx),
        dead_letters(ctx),
        retries(ctx, dead_letters, std::move(retry_hooks)),
        sweeper(ctx, std::move(sweep_hooks)),
        reader(ctx, notifier, std::move(read_hooks)),
        drainer(ctx),
        distributor(ctx, handlers, dirty, {reader, retries, acks, drainer}) {}

  AckBatcher acks;
  PausePoller pauses;
  Presence presence;
  DeadLetterer dead_letters;
  RetryScheduler retries;
  Sweeper sweeper;
  Reader reader;
  Drainer drainer;
  Distributor distributor;
};

Dispatcher::Dispatcher(EventLoop& loop, StreamOps& ops, ActivityNotifier& notifier,
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
    const Handler* h = handlers_.Find(ref);
    if (h != nullptr) parts_->sweeper.SweepBy(ref, source, ctx_.now() + h->spec->lease);
  };
  retry_hooks.moved = [this](const HandlerRef& ref, uint8_t source) {
    kLoopThread.AssertHeld();
    if (source == kRetry) parts_->sweeper.WantTrim(ref);
    // Read it now rather than on the notifier's word.
    parts_->reader.Open(ref, kRetry);
    parts_->reader.Wake(ref, kRetry);
    parts_->reader.MaybeRead(ref);
    dirty_.Flush();
  };
  retry_hooks.draining = draining;
  Sweeper::Hooks sweep_hooks;
  // What this daemon holds of a handler's source: a sweep skips it.
  sweep_hooks.held = [this](const HandlerRef& ref, uint8_t source) {
    kLoopThread.AssertHeld();
    absl::flat_hash_set<std::string> held;
    if (Handler* h = handlers_.Find(ref)) h->AddHeld(source, held);
    parts_->dead_letters.AddHeld(ref, source, held);
    return held;
  };
  sweep_hooks.claimed = [this](const HandlerRef& ref, uint8_t source, const std::string& consumer,
                               std::vector<StreamEntry> entries) {
    kLoopThread.AssertHeld();
    Handler* h = handlers_.Find(ref);
    if (h == nullptr) return;
    const GroupRef g = SourceRef(*h->spec, source);
    if (source == kRetry) parts_->sweeper.WantTrim(ref);
    for (const std::string& id :
         parts_->retries.Reclaimed(ref, h->spec, source, consumer, std::move(entries),
                                   parts_->sweeper.Period(*h->spec))) {
      parts_->acks.Queue(g.stream, g.group, id);
    }
  };
  auto known = [this] {
    kLoopThread.AssertHeld();
    return handlers_.keys();
  };
  Reader::Hooks read_hooks;
  read_hooks.capacity = [this](const HandlerRef& ref) {
    kLoopThread.AssertHeld();
    Handler* h = handlers_.Find(ref);
    if (h == nullptr || h->paused || parts_->drainer.draining()) return 0u;
    return h->Capacity(parts_->reader.reserved(ref));
  };
  read_hooks.entries = [this](const HandlerRef& ref, uint8_t source,
                              std::vector<StreamEntry> entries) {
    kLoopThread.AssertHeld();
    Handler* h = handlers_.Find(ref);
    if (h != nullptr) parts_->distributor.Deliver(*h, source, std::move(entries));
    dirty_.Flush();
  };
  read_hooks.orphaned = [this](const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                               const std::vector<std::string>& ids) {
    kLoopThread.AssertHeld();
    parts_->retries.Return(ref, spec, source, ids);
  };
  read_hooks.draining = draining;
  auto on_pause = [this](const std::string& key, bool paused) {
    kLoopThread.AssertHeld();
    Handler* found = handlers_.FindKey(key);
    if (found == nullptr || found->paused == paused) return;
    Handler& h = *found;
    h.paused = paused;
    LogInfo(LogFields().Channel(h.spec->channel).Handler(h.spec->handler_id), "handler {}",
            paused ? "paused: no new deliveries" : "resumed");
    if (!paused) {
      for (uint8_t source : {kMain, kRetry}) parts_->reader.Wake(h.ref, source);
      parts_->distributor.Pump(h);
      parts_->reader.MaybeRead(h.ref);
    }
    dirty_.Flush();
  };
  parts_ = std::make_unique<Parts>(ctx_, notifier, handlers_, dirty_, std::move(on_pause),
                                   std::move(known), std::move(retry_hooks), std::move(sweep_hooks),
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
  Handler* h = handlers_.FindKey(key);
  if (h != nullptr) {
    // Every stream of a handler here shares its policies (the first
    // registration's apply) and its consumer: a disagreeing registration is
    // refused rather than silently overruled.
    if (absl::Status same = CheckSamePolicy(*h->spec, spec); !same.ok()) {
      LogInfo(LogFields()
                  .Channel(spec.channel)
                  .Handler(spec.handler_id)
                  .Session(session_id)
                  .Reason(same.message()),
              "registration refused");
      sink->Finish(same);
      return;
    }
    spec.consumer = h->spec->consumer;
    spec.metrics = h->spec->metrics;
  } else if (ctx_.options.metrics != nullptr) {
    spec.metrics = ctx_.options.metrics->ForHandler(spec.channel, spec.handler_id);
  }
  auto session = std::make_unique<Session>(session_id, std::move(sink), std::move(spec));
  Session& s = *session;
  sessions_[session_id] = std::move(session);
  const bool created = h == nullptr;
  if (created) {
    h = &handlers_.Create(key, std::make_shared<const SubscriptionSpec>(s.spec));
    h->paused = parts_->pauses.paused(key);
    parts_->reader.Add(h->ref, h->spec);
    parts_->sweeper.Add(h->ref);
    parts_->retries.Add(h->ref);
    parts_->dead_letters.Add(h->ref);
  }
  s.handler = h;
  if (!h->ready) {
    h->sessions.waiting().push_back(&s);
    if (created) CreateGroup(*h);
    return;
  }
  h->sessions.attached().push_back(&s);
  s.Attach(ctx_.options.instance_id);
  parts_->distributor.Pump(*h);
  parts_->reader.MaybeRead(h->ref);
  dirty_.Flush();
}

void Dispatcher::CreateGroup(Handler& handler) {
  const SubscriptionSpec& spec = *handler.spec;
  // A pause set while no daemon had the handler applies before the first
  // read (replies arrive in order, so this one comes before the group's).
  parts_->pauses.Check(handler.ref.key, spec.channel, spec.handler_id);
  ctx_.ops.CreateGroup(spec.keys.stream, spec.keys.group, GroupStartId(spec.start),
                       guard_.Wrap([this, ref = handler.ref](absl::Status status) {
                         kLoopThread.AssertHeld();
                         Handler* h = handlers_.Find(ref);
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
                           if (handlers_.Find(ref) == nullptr) return;
                           parts_->reader.Watch(ref, kMain, [this, ref] {
                             kLoopThread.AssertHeld();
                             Handler* ready = handlers_.Find(ref);
                             if (ready != nullptr) OnGroupReady(*ready, absl::OkStatus());
                           });
                         }));
                       }));
}

void Dispatcher::OnGroupReady(Handler& h, absl::Status status) {
  std::vector<Session*> waiting;
  waiting.swap(h.sessions.waiting());
  if (!status.ok()) {
    LogWarn(
        LogFields().Channel(h.spec->channel).Handler(h.spec->handler_id).Error(status.message()),
        "registration of a handler failed");
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
      dirty_.Flush();
    });
  }
  for (Session* s : waiting) {
    h.sessions.attached().push_back(s);
    s->Attach(ctx_.options.instance_id);
  }
  parts_->distributor.Pump(h);
  parts_->reader.MaybeRead(h.ref);
  dirty_.Flush();
}

// ---------------------------------------------------------------- delivering

void Dispatcher::OnStreamActivity(const std::string& stream) {
  const std::vector<HandlerRef>* readers = parts_->reader.Readers(stream);
  if (readers == nullptr) return;
  for (const HandlerRef& ref : std::vector<HandlerRef>(*readers)) {
    const Handler* h = handlers_.Find(ref);
    if (h == nullptr) continue;
    for (uint8_t source : {kMain, kRetry}) {
      if (SourceRef(*h->spec, source).stream == stream) parts_->reader.Wake(ref, source);
    }
    parts_->reader.MaybeRead(ref);
  }
  dirty_.Flush();
}

// ---------------------------------------------------------------- verbs

void Dispatcher::Verbs(uint64_t session_id, const v1::Verbs& verbs) {
  auto sit = sessions_.find(session_id);
  if (sit == sessions_.end()) return;
  Session& s = *sit->second;
  VerbOutcome out = s.Apply(verbs, ctx_.now(), ctx_.stats);
  if (out.notices > 0) dirty_.Mark(s);
  if (Handler* h = s.handler) {
    if (!h->spec->auto_ack) {
      for (Entry& e : out.acked) {
        parts_->acks.Queue(SourceStream(*h->spec, e.source), SourceGroup(*h->spec, e.source),
                           std::move(e.id));
        if (e.source == kRetry) parts_->sweeper.WantTrim(h->ref);
      }
      for (VerbOutcome::Failure& f : out.failed) {
        Fail(*h, f.entry, f.kind, std::move(f.error), std::move(f.error_code), f.delay);
      }
      for (uint8_t source : {kMain, kRetry}) {
        TouchEntries(ctx_, *h->spec, source, std::move(out.extended[source]), false);
      }
    }
    parts_->distributor.Pump(*h);
    parts_->reader.MaybeRead(h->ref);
  }
  dirty_.Flush();
  if (parts_->drainer.draining()) CheckDrained();
}

void Dispatcher::Fail(Handler& h, const Entry& entry, FailKind kind, std::string error,
                      std::string error_code, std::optional<absl::Duration> delay) {
  if (entry.source == kRetry) parts_->sweeper.WantTrim(h.ref);
  parts_->retries.Fail(h.ref, h.spec, entry, kind, std::move(error), std::move(error_code), delay,
                       parts_->sweeper.Period(*h.spec));
}

void Dispatcher::Stop(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  if (it != sessions_.end()) it->second->stopped = true;
}

// ---------------------------------------------------------------- disconnect

void Dispatcher::Disconnect(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  LogDebug(LogFields().Session(session_id), "session disconnected with {} deliveries in flight",
           s.leases.size());
  DetachSession(s);
  sessions_.erase(it);
  dirty_.Flush();
  if (parts_->drainer.draining()) CheckDrained();
}

void Dispatcher::DetachSession(Session& s) {
  dirty_.Remove(s);
  Handler* h = s.handler;
  if (h == nullptr) return;
  h->sessions.Remove(&s);
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
  parts_->distributor.Pump(*h);
  if (!h->sessions.AnyTaking() && h->backlog.has_ids()) {
    // Read but never delivered, and no session here will take them: hand
    // them back through the retry path for any stream (not a failed attempt).
    parts_->retries.Return(h->ref, h->spec, h->backlog.TakeIds());
  }
  parts_->reader.MaybeRead(h->ref);
  MaybeRemoveHandler(*h);
}

void Dispatcher::MaybeRemoveHandler(Handler& h) {
  if (!h.sessions.empty()) return;
  const HandlerRef ref = h.ref;
  parts_->reader.Forget(ref);
  parts_->sweeper.Forget(ref);
  parts_->retries.Forget(ref);
  parts_->dead_letters.Forget(ref);
  if (h.present) parts_->presence.Remove(*h.spec);
  handlers_.Remove(ref);  // destroys h
}

// ---------------------------------------------------------------- timers

void Dispatcher::SetPaused(const std::string& channel, const std::string& handler_id, bool paused) {
  parts_->pauses.Set(EngineHandlerKey(channel, handler_id), paused);
  dirty_.Flush();
}

std::vector<Dispatcher::HandlerSnapshot> Dispatcher::Snapshot() const {
  std::vector<HandlerSnapshot> out;
  for (const auto& [generation, h] : handlers_) {
    HandlerSnapshot snap;
    snap.channel = h->spec->channel;
    snap.handler_id = h->spec->handler_id;
    snap.consumer = h->spec->consumer;
    snap.sessions = static_cast<uint32_t>(h->sessions.attached().size());
    for (const Session* s : h->sessions.attached()) snap.in_flight += s->leases.size();
    snap.paused = h->paused;
    out.push_back(std::move(snap));
  }
  return out;
}

void Dispatcher::Tick() {
  const absl::Time now = ctx_.now();
  if (!handlers_.empty()) {
    parts_->pauses.MaybePoll(now);
    if (parts_->presence.due(now)) {
      std::vector<const SubscriptionSpec*> present;
      for (const auto& [generation, h] : handlers_) {
        if (h->ready && !h->sessions.attached().empty()) present.push_back(h->spec.get());
      }
      parts_->presence.MaybeBeat(now, present);
    }
  }
  // Lease expiry (R-D3): a failed attempt, retried after its backoff.
  for (auto& [sid, session] : sessions_) {
    Session& s = *session;
    for (Entry& entry : s.TakeExpired(now, ctx_.stats)) {
      if (s.handler == nullptr) continue;
      ctx_.summary.LeaseExpired(s.spec.channel, s.spec.handler_id);
      if (s.handler->spec->auto_ack) continue;
      Fail(*s.handler, entry, FailKind::kExpired,
           absl::StrCat("lease of ", absl::ToInt64Milliseconds(s.spec.lease),
                        " ms expired without ACK or EXTEND"),
           "LEASE_EXPIRED", std::nullopt);
    }
  }
  for (auto& [generation, handler] : handlers_) {
    if (handler->ready) TickHandler(*handler, now);
  }
  if (!parts_->reader.notifier().healthy()) parts_->reader.notifier().Kick();
  for (const std::string& line : ctx_.summary.Report(now)) spdlog::info("{}", line);
  dirty_.Flush();
  if (parts_->drainer.draining()) CheckDrained();
  tick_timer_->Arm(ctx_.options.tick);
}

void Dispatcher::TickHandler(Handler& h, absl::Time now) {
  if (!parts_->reader.notifier().healthy()) {
    // Poll while the notifier is down.
    for (uint8_t source : {kMain, kRetry}) parts_->reader.Wake(h.ref, source);
  }
  parts_->distributor.Pump(h);
  h.KeepOurs(ctx_, now);
  if (!h.auto_ack && !parts_->drainer.draining()) {
    if (parts_->dead_letters.retrying()) {
      parts_->dead_letters.RetryDue(h.ref, h.spec, now, parts_->sweeper.Period(*h.spec));
    }
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
  for (auto& [generation, h] : handlers_) {
    std::vector<std::string> ids[2];
    const size_t unsettled = h->TakeForHandBack(ids);
    if (h->spec->auto_ack) continue;  // acknowledged at read: nothing to give back
    ctx_.stats.drain_released += unsettled;
    if (unsettled > 0) {
      LogInfo(LogFields().Channel(h->spec->channel).Handler(h->spec->handler_id),
              "{} unsettled deliveries handed back at the end of the drain (no attempt counted)",
              unsettled);
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
