#include "daemon/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/logging.h"
#include "daemon/redis/scripts.h"

namespace redrive {
namespace {

constexpr size_t kSettledMemory = 4096;
constexpr size_t kMaxReason = 4096;
constexpr size_t kMaxErrorCode = 128;
// Past any lease (at most 24 h): a released entry is reclaimable at once.
constexpr absl::string_view kReleaseIdleMs = "86400001";
// After the drain grace, how long retry scripts already sent may take.
constexpr absl::Duration kDrainOpsWait = absl::Seconds(10);

std::string HandlerKey(absl::string_view channel, absl::string_view handler_id) {
  return absl::StrCat(channel, std::string(1, '\0'), handler_id);
}

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

}  // namespace

uint32_t Dispatcher::Session::free_slots() const {
  if (!attached || stopped) return 0;
  const size_t used = in_flight.size();
  return used >= spec.max_in_flight ? 0 : spec.max_in_flight - static_cast<uint32_t>(used);
}

Dispatcher::Dispatcher(EventLoop& loop, AsyncCommander& redis, StreamNotifier& notifier,
                       DispatcherOptions options)
    : loop_(loop),
      redis_(redis),
      notifier_(notifier),
      options_(std::move(options)),
      summary_(options_.log_summary_interval, options_.now()) {
  unit_random_ = options_.unit_random;
  if (!unit_random_) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    unit_random_ = [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
  }
  ack_timer_ = loop_.NewTimer([this] {
    ack_timer_armed_ = false;
    FlushAcks();
  });
  tick_timer_ = loop_.NewTimer([this] { Tick(); });
  tick_timer_->Arm(options_.tick);
}

Dispatcher::~Dispatcher() { *alive_ = false; }

AsyncCallback Dispatcher::Guard(std::function<void(absl::StatusOr<RedisReply>)> fn) {
  return [alive = alive_, fn = std::move(fn)](absl::StatusOr<RedisReply> r) {
    if (*alive) fn(std::move(r));
  };
}

Dispatcher::Handler* Dispatcher::FindHandler(const std::string& key) {
  auto it = handlers_.find(key);
  return it == handlers_.end() ? nullptr : it->second.get();
}

Dispatcher::Handler* Dispatcher::FindHandler(const HandlerRef& ref) {
  Handler* h = FindHandler(ref.key);
  return h != nullptr && h->generation == ref.generation ? h : nullptr;
}

size_t Dispatcher::InFlight(uint64_t session_id) const {
  auto it = sessions_.find(session_id);
  return it == sessions_.end() ? 0 : it->second->in_flight.size();
}

// ---------------------------------------------------------------- register

void Dispatcher::Register(uint64_t session_id, SubscriptionSpec spec,
                          std::shared_ptr<SessionSink> sink) {
  if (draining_) {
    sink->Finish(absl::UnavailableError("redrived is shutting down"));
    return;
  }
  auto session = std::make_unique<Session>();
  session->id = session_id;
  session->sink = std::move(sink);
  session->spec = std::move(spec);
  Session& s = *session;
  sessions_[session_id] = std::move(session);

  const std::string key = HandlerKey(s.spec.channel, s.spec.handler_id);
  Handler* h = FindHandler(key);
  if (h != nullptr) {
    // Every stream of a handler here shares its policies (the first
    // registration's apply) and its consumer: a disagreeing registration is
    // refused rather than silently overruled.
    if (absl::Status same = CheckSamePolicy(h->spec, s.spec); !same.ok()) {
      spdlog::info("session {} refused: {}", session_id, std::string(same.message()));
      s.sink->Finish(same);
      sessions_.erase(session_id);
      return;
    }
    s.spec.consumer = h->spec.consumer;
  }
  if (h == nullptr) {
    auto created = std::make_unique<Handler>();
    created->key = key;
    created->generation = ++next_generation_;
    created->spec = s.spec;
    created->auto_ack = s.spec.auto_ack;
    created->scheduled_consumer = ScheduledConsumerName(s.spec.handler_id);
    created->names = std::make_shared<const SubscriptionSpec>(s.spec);
    created->sources[kMain].stream = s.spec.keys.stream;
    created->sources[kMain].group = s.spec.keys.group;
    created->sources[kRetry].stream = s.spec.keys.retry_stream;
    created->sources[kRetry].group = s.spec.keys.retry_group;
    created->paused = paused_.contains(key);
    h = created.get();
    handlers_[key] = std::move(created);
    by_stream_[h->spec.keys.stream].push_back(key);
    if (!h->auto_ack) by_stream_[h->spec.keys.retry_stream].push_back(key);
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
  MaybeRead(*h);
  FlushOut();
}

void Dispatcher::CreateGroup(Handler& handler) {
  const HandlerRef key{handler.key, handler.generation};
  const std::string start = GroupStartId(handler.spec.start);
  // A pause set while no daemon had the handler applies before the first
  // read (replies arrive in order, so this one comes before the group's).
  const std::string field = RegistryField(handler.spec.channel, handler.spec.handler_id);
  redis_.Send({"HEXISTS", kPausedHandlersKey, field},
              Guard([this, key, epoch = pause_epoch_](absl::StatusOr<RedisReply> r) {
                // A local SetPaused since then wins.
                if (!r.ok() || !r->is_integer() || epoch != pause_epoch_) return;
                if (Handler* h = FindHandler(key)) {
                  if (r->integer == 1) paused_.insert(h->key);
                  ApplyPaused(*h, r->integer == 1);
                }
              }));
  redis_.Send({"XGROUP", "CREATE", handler.spec.keys.stream, handler.spec.keys.group, start,
               "MKSTREAM"},
              Guard([this, key](absl::StatusOr<RedisReply> r) {
                Handler* h = FindHandler(key);
                if (h == nullptr) return;
                absl::Status status = r.status();
                if (r.ok() && r->is_error()) {
                  if (absl::StartsWith(r->str, "BUSYGROUP")) {
                    status = absl::OkStatus();  // shared group exists: keep its position
                  } else if (absl::StartsWith(r->str, "WRONGTYPE")) {
                    status = absl::FailedPreconditionError(absl::StrCat(
                        "key '", h->spec.keys.stream, "' exists and is not a stream"));
                  } else {
                    status = r->ErrorStatus();
                  }
                }
                if (!status.ok()) {
                  OnGroupReady(*h, status);
                  return;
                }
                // Recorded for the Admin service (R-E1) before the
                // registration is answered: a client that saw Registered
                // finds its handler in ListHandlers.
                // With this daemon's presence heartbeat (DeleteHandler
                // refuses while it is fresh).
                h->present = true;
                redis_.Send(
                    {"HSET", kHandlersRegistryKey,
                     RegistryField(h->spec.channel, h->spec.handler_id),
                     MakeRegistered(h->spec, options_.instance_id).SerializeAsString(),
                     PresenceField(h->spec.channel, h->spec.handler_id, options_.instance_id),
                     absl::StrCat(absl::ToUnixMillis(options_.now()))},
                    Guard([this, key](absl::StatusOr<RedisReply> recorded) {
                      if (!recorded.ok() || recorded->is_error()) {
                        spdlog::warn("handler registry update failed: {}",
                                     recorded.ok() ? recorded->str
                                                   : std::string(recorded.status().message()));
                      }
                      Handler* hh = FindHandler(key);
                      if (hh == nullptr) return;
                      hh->sources[kMain].watched = true;
                      notifier_.Watch(hh->spec.keys.stream, [this, alive = alive_, key] {
                        if (!*alive) return;
                        if (Handler* ready = FindHandler(key)) {
                          OnGroupReady(*ready, absl::OkStatus());
                        }
                      });
                    }));
              }));
}

void Dispatcher::OnGroupReady(Handler& h, absl::Status status) {
  std::vector<Session*> waiting;
  waiting.swap(h.waiting);
  if (!status.ok()) {
    spdlog::warn("registration of handler '{}' on '{}' failed: {}", h.spec.handler_id,
                 h.spec.channel, std::string(status.message()));
    for (Session* s : waiting) {
      s->sink->Finish(status);
      s->handler = nullptr;
      sessions_.erase(s->id);
    }
    MaybeRemoveHandler(h);
    return;
  }
  h.ready = true;
  h.sources[kMain].ready = true;
  h.sources[kMain].more = true;
  // A new handler here looks for due retries (another daemon may have left
  // some) and orphaned entries at once.
  h.next_due = absl::InfinitePast();
  if (!h.auto_ack) WatchRetrySource(h);
  for (Session* s : waiting) Attach(h, *s);
  Pump(h);
  MaybeRead(h);
  FlushOut();
}

void Dispatcher::WatchRetrySource(Handler& h) {
  // The retry group is created by the first move into the stream (the
  // scripts create it at the stream's end right before adding the entry),
  // so a handler that never fails leaves no retry key behind.
  Source& src = h.sources[kRetry];
  src.watched = true;
  notifier_.Watch(src.stream, [this, alive = alive_, key = HandlerRef{h.key, h.generation}] {
    if (!*alive) return;
    Handler* hh = FindHandler(key);
    if (hh == nullptr) return;
    hh->sources[kRetry].ready = true;
    hh->sources[kRetry].more = true;
    MaybeRead(*hh);
    FlushOut();
  });
}

void Dispatcher::Attach(Handler& h, Session& s) {
  s.attached = true;
  h.sessions.push_back(&s);
  v1::SubscribeResponse reply;
  *reply.mutable_registered() = MakeRegistered(s.spec, options_.instance_id);
  s.sink->Send(std::move(reply));
  spdlog::info("session {} registered handler '{}' on '{}' (max_in_flight {}, auto_ack {})", s.id,
               s.spec.handler_id, s.spec.channel, s.spec.max_in_flight, s.spec.auto_ack);
}

// ---------------------------------------------------------------- reading

uint32_t Dispatcher::Capacity(const Handler& h) const {
  if (draining_ || h.paused) return 0;
  uint64_t free = 0;
  for (const Session* s : h.sessions) free += s->free_slots();
  const uint64_t taken =
      h.backlog.size() + h.auto_backlog.size() + h.reserved + h.fetching.size();
  return free > taken ? static_cast<uint32_t>(std::min<uint64_t>(free - taken, UINT32_MAX)) : 0;
}

Dispatcher::Session* Dispatcher::PickSession(Handler& h) {
  if (h.paused) return nullptr;  // what arrives now waits here (R-E5)
  const size_t n = h.sessions.size();
  for (size_t i = 0; i < n; ++i) {
    Session* s = h.sessions[(h.round_robin + i) % n];
    if (s->free_slots() > 0) {
      h.round_robin = (h.round_robin + i + 1) % n;
      return s;
    }
  }
  return nullptr;
}

void Dispatcher::Pump(Handler& h) {
  while (!h.auto_backlog.empty()) {
    Session* s = PickSession(h);
    if (s == nullptr) break;
    StreamEntry e = std::move(h.auto_backlog.front());
    h.auto_backlog.pop_front();
    uint32_t attempt = 1;
    absl::StatusOr<v1::Delivery> message = Prepare(h, e, &attempt);
    if (!message.ok()) continue;  // logged; auto-ack has no DLQ
    Deliver(h, *s, Entry{std::move(e.id), attempt, kMain}, *std::move(message));
  }
  if (draining_ || h.backlog.empty()) return;
  uint64_t free = 0;
  for (const Session* s : h.sessions) free += s->free_slots();
  const uint64_t promised = h.fetching.size() + h.reserved;
  const uint64_t taking = std::min<uint64_t>(
      {free > promised ? free - promised : 0, h.backlog.size(), options_.read_batch});
  if (taking == 0) return;
  // Fetch the entries again; XCLAIM with min-idle 0 keeps them ours, resets
  // their idle time and returns their fields (deleted ones are dropped).
  std::vector<Entry> asked[2];
  for (uint64_t i = 0; i < taking; ++i) {
    Entry e = std::move(h.backlog.front());
    h.backlog.pop_front();
    h.fetching.insert(e.id);
    asked[e.source].push_back(std::move(e));
  }
  const HandlerRef key{h.key, h.generation};
  for (uint8_t source : {kMain, kRetry}) {
    if (asked[source].empty()) continue;
    const Target target = TargetOf(h, source);
    RedisArgv argv = {"XCLAIM", target.stream, target.group, target.consumer, "0"};
    for (const Entry& e : asked[source]) argv.push_back(e.id);
    redis_.Send(argv, Guard([this, key, source, spec = h.names, asked = std::move(asked[source])](
                                absl::StatusOr<RedisReply> r) mutable {
                  OnFetched(key, source, spec, std::move(asked), std::move(r));
                }));
  }
}

void Dispatcher::OnFetched(const HandlerRef& key, uint8_t source,
                           const std::shared_ptr<const SubscriptionSpec>& spec,
                           std::vector<Entry> asked, absl::StatusOr<RedisReply> reply) {
  Handler* h = FindHandler(key);
  if (h == nullptr) {
    // The last session left meanwhile: never delivered, handed back.
    std::vector<std::string> ids;
    for (const Entry& e : asked) ids.push_back(e.id);
    Return(spec, key, source, ids);
    return;
  }
  for (const Entry& e : asked) h->fetching.erase(e.id);
  absl::StatusOr<std::vector<StreamEntry>> entries =
      reply.ok() && !reply->is_error() ? ParseEntryList(*std::move(reply))
                                       : absl::StatusOr<std::vector<StreamEntry>>(
                                             absl::UnavailableError("fetch failed"));
  if (!entries.ok()) {
    ++stats_.redis_errors;
    // Back to the front, in their original order; the tick tries again.
    for (auto it = asked.rbegin(); it != asked.rend(); ++it) h->backlog.push_front(std::move(*it));
    return;
  }
  stats_.redeliveries += entries->size();
  DeliverEntries(*h, source, *std::move(entries));
  Pump(*h);
  MaybeRead(*h);
  FlushOut();
}

absl::StatusOr<v1::Delivery> Dispatcher::Prepare(Handler& h, const StreamEntry& e,
                                                 uint32_t* attempt) {
  v1::Delivery message;
  absl::StatusOr<RetryState> state = ReadRetryState(e);
  if (!state.ok()) {
    if (IsPoison(state.status()) && !h.auto_ack) return state.status();
    // Auto-ack has no dead-letter queue: deliver what can be read.
    ++stats_.decode_errors;
    spdlog::warn("entry {} of '{}' is unreadable ({}); delivered as raw bytes", e.id,
                 h.spec.channel, std::string(state.status().message()));
    (void)FillMessage(WithoutRedriveFields(e), message);
    return message;
  }
  FillMessage(std::move(state->decoded), message);
  if (state->retry_count > 0 || !state->original_id.empty()) {
    if (std::optional<std::string> body = StripRetryMetadataKeys(message.payload())) {
      message.set_payload(*std::move(body));
    }
  }
  *attempt = static_cast<uint32_t>(std::min<int64_t>(state->retry_count + 1, UINT32_MAX));
  if (!state->original_id.empty()) message.set_original_entry_id(state->original_id);
  message.set_previous_error(state->last_error);
  message.set_previous_error_code(state->last_error_code);
  return message;
}

void Dispatcher::DeliverEntries(Handler& h, uint8_t source, std::vector<StreamEntry>&& entries) {
  if (draining_ && !h.auto_ack) {
    // Read before the drain began, answered after: hand it straight back.
    std::vector<std::string> ids;
    for (const StreamEntry& e : entries) ids.push_back(e.id);
    Return(h.names, HandlerRef{h.key, h.generation}, source, ids);
    return;
  }
  for (StreamEntry& e : entries) {
    if (e.deleted) {
      // Trimmed while pending: nothing to deliver; drop it from the PEL.
      if (!h.auto_ack) QueueAck(h, source, e.id);
      continue;
    }
    if (h.auto_ack) {
      // Acknowledged at read: deliver it here or keep it whole until a slot
      // frees (the streams stay open through a drain's grace period).
      Session* s = PickSession(h);
      if (s == nullptr) {
        h.auto_backlog.push_back(std::move(e));
        continue;
      }
      uint32_t attempt = 1;
      absl::StatusOr<v1::Delivery> message = Prepare(h, e, &attempt);
      if (message.ok()) Deliver(h, *s, Entry{std::move(e.id), attempt, kMain}, *std::move(message));
      continue;
    }
    Session* s = PickSession(h);
    if (s == nullptr) {
      h.backlog.push_back(Entry{std::move(e.id), 1, source});  // refetched when a slot frees
      continue;
    }
    uint32_t attempt = 1;
    absl::StatusOr<v1::Delivery> message = Prepare(h, e, &attempt);
    if (!message.ok()) {
      // Poison (R-D6): straight to the DLQ, raw bytes kept; never delivered,
      // never in the way of the entries behind it.
      ++stats_.poison;
      // (Counted; the per-handler summary line reports it as "poison".)
      spdlog::debug("entry {} of '{}' is poison for handler '{}': {}", e.id,
                    h.sources[source].stream, h.spec.handler_id,
                    std::string(message.status().message()));
      FailureRecord f = MakeFailure(h, 1, FailKind::kNack, std::string(message.status().message()),
                                    "POISON");
      f.outcome = "poison";
      DeadLetter(h.names, source, e, absl::StatusOr<RetryState>(message.status()), f, "poison",
                 h.spec.consumer);
      continue;
    }
    Deliver(h, *s, Entry{std::move(e.id), attempt, source}, *std::move(message));
  }
}

absl::flat_hash_set<std::string> Dispatcher::HeldIds(const Handler& h, uint8_t source) const {
  absl::flat_hash_set<std::string> held;
  for (const Session* s : h.sessions) {
    for (const auto& [id, f] : s->in_flight) {
      if (f.entry.source == source) held.insert(f.entry.id);
    }
  }
  for (const Entry& e : h.backlog) {
    if (e.source == source) held.insert(e.id);
  }
  for (const std::string& dead : h.dead_lettering) {
    const std::string prefix = DeadKey(source, "");
    if (absl::StartsWith(dead, prefix)) held.insert(dead.substr(prefix.size()));
  }
  // (fetching ids are few and short-lived; a collision between the two
  // streams' ids only makes a sweep skip an entry once.)
  held.insert(h.fetching.begin(), h.fetching.end());
  return held;
}

void Dispatcher::MaybeRead(Handler& h) {
  if (!h.ready || draining_) return;
  const absl::Time now = options_.now();
  auto wants = [&](uint8_t source) {
    const Source& src = h.sources[source];
    return src.ready && !src.reading && src.more && now >= src.retry_after;
  };
  const bool main = wants(kMain);
  const bool retry = !h.auto_ack && wants(kRetry);
  if (!main && !retry) return;
  const uint32_t count = std::min(Capacity(h), options_.read_batch);
  if (count == 0) return;
  if (main && retry) {
    // Both have entries: split the slots so neither starves the other (R-D7).
    if (count == 1) {
      Read(h, h.prefer_retry ? kRetry : kMain, 1);
      h.prefer_retry = !h.prefer_retry;
      return;
    }
    const uint32_t retry_share = count / 2 + (count % 2 != 0 && h.prefer_retry ? 1 : 0);
    h.prefer_retry = !h.prefer_retry;
    Read(h, kRetry, retry_share);
    Read(h, kMain, count - retry_share);
    return;
  }
  Read(h, main ? kMain : kRetry, count);
}

void Dispatcher::Read(Handler& h, uint8_t source, uint32_t count) {
  Source& src = h.sources[source];
  src.reading = true;
  h.reserved += count;
  ++stats_.reads;
  const std::string count_text = absl::StrCat(count);
  RedisArgv argv = {"XREADGROUP", "GROUP", src.group, h.spec.consumer, "COUNT", count_text};
  if (h.auto_ack) argv.push_back("NOACK");
  argv.insert(argv.end(), {"STREAMS", src.stream, ">"});
  const HandlerRef key{h.key, h.generation};
  const uint64_t activity = src.activity;
  redis_.Send(argv, Guard([this, key, source, spec = h.names, count, activity](
                              absl::StatusOr<RedisReply> r) {
                OnRead(key, source, spec, count, activity, std::move(r));
              }));
}

void Dispatcher::OnRead(const HandlerRef& key, uint8_t source,
                        const std::shared_ptr<const SubscriptionSpec>& spec, uint32_t asked,
                        uint64_t activity, absl::StatusOr<RedisReply> reply) {
  Handler* h = FindHandler(key);
  if (h == nullptr) {
    // Every session left while the read was out: what it read is pending
    // under our consumer, never delivered; hand it back.
    if (reply.ok() && !reply->is_error() && !spec->auto_ack) {
      absl::StatusOr<std::vector<StreamEntry>> entries = ParseReadReply(
          *std::move(reply), source == kMain ? spec->keys.stream : spec->keys.retry_stream);
      if (entries.ok()) {
        std::vector<std::string> ids;
        for (const StreamEntry& e : *entries) ids.push_back(e.id);
        Return(spec, key, source, ids);
      }
    }
    return;
  }
  Source& src = h->sources[source];
  src.reading = false;
  h->reserved -= std::min(h->reserved, asked);
  if (!reply.ok() || reply->is_error()) {
    if (reply.ok() && absl::StartsWith(reply->str, "NOGROUP")) {
      if (source == kRetry && src.last_read_id.empty()) {
        // No retry has been written yet: the first move creates the group.
        src.more = false;
        return;
      }
      RecreateGroup(*h, source);
      return;
    }
    ++stats_.redis_errors;
    // If the server ran the read, its entries are pending under our
    // consumer without our knowing: the sweep finds them once idle.
    src.next_sweep = std::min(src.next_sweep, options_.now() + h->spec.lease);
    spdlog::debug("XREADGROUP on '{}' failed: {}", src.stream,
                  reply.ok() ? reply->str : std::string(reply.status().message()));
    src.retry_after = options_.now() + options_.error_backoff;
    return;
  }
  absl::StatusOr<std::vector<StreamEntry>> entries = ParseReadReply(*std::move(reply), src.stream);
  if (!entries.ok()) {
    ++stats_.redis_errors;
    spdlog::error("unexpected XREADGROUP reply: {}", std::string(entries.status().message()));
    src.retry_after = options_.now() + options_.error_backoff;
    return;
  }
  if (entries->size() < asked && activity == src.activity) src.more = false;
  if (!entries->empty()) src.last_read_id = entries->back().id;
  DeliverEntries(*h, source, *std::move(entries));
  MaybeRead(*h);
  FlushOut();
}

void Dispatcher::RecreateGroup(Handler& h, uint8_t source) {
  // The group (or the stream) was deleted under us: recreate it after the
  // last entry we read, so nothing delivered is replayed and nothing added
  // since is skipped (R-D8); with nothing read yet, at the end.
  Source& src = h.sources[source];
  ++stats_.groups_recreated;
  ++stats_.redis_errors;
  const std::string start = src.last_read_id.empty() ? "$" : src.last_read_id;
  spdlog::warn("group '{}' on '{}' is gone; recreating it at {} (groups recreated so far: {})",
               src.group, src.stream, start, stats_.groups_recreated);
  src.reading = true;  // no read until the group is back
  const HandlerRef key{h.key, h.generation};
  redis_.Send({"XGROUP", "CREATE", src.stream, src.group, start, "MKSTREAM"},
              Guard([this, key, source](absl::StatusOr<RedisReply> r) {
                Handler* hh = FindHandler(key);
                if (hh == nullptr) return;
                Source& s = hh->sources[source];
                s.reading = false;
                s.more = true;
                const bool created =
                    r.ok() && (!r->is_error() || absl::StartsWith(r->str, "BUSYGROUP"));
                if (!created) {
                  ++stats_.redis_errors;
                  s.retry_after = options_.now() + options_.error_backoff;
                  return;  // the tick retries the read (and so the creation)
                }
                MaybeRead(*hh);
                FlushOut();
              }));
}

void Dispatcher::OnStreamActivity(const std::string& stream) {
  auto it = by_stream_.find(stream);
  if (it == by_stream_.end()) return;
  for (const std::string& key : it->second) {
    Handler* h = FindHandler(key);
    if (h == nullptr) continue;
    for (Source& src : h->sources) {
      if (src.stream != stream) continue;
      src.more = true;
      ++src.activity;
    }
    MaybeRead(*h);
  }
  FlushOut();
}

// ---------------------------------------------------------------- delivering

void Dispatcher::Deliver(Handler& h, Session& s, Entry entry, v1::Delivery&& message) {
  const uint64_t id = ++next_delivery_id_;
  const absl::Time deadline = options_.now() + s.spec.lease;
  size_t cost = message.payload().size() + message.previous_error().size() + 256;
  for (const v1::Header& hd : message.headers()) cost += hd.key().size() + hd.value().size() + 8;
  for (const v1::StreamField& f : message.fields()) cost += f.name().size() + f.value().size() + 8;
  if (s.out_bytes + cost > options_.max_message_bytes && s.out_deliveries.has_deliveries()) {
    // This batch is full: close it and start another.
    s.out_full.push_back(std::move(s.out_deliveries));
    s.out_deliveries.Clear();
    s.out_bytes = 0;
  }
  s.out_bytes += cost;
  v1::Delivery* d = s.out_deliveries.mutable_deliveries()->add_deliveries();
  *d = std::move(message);
  d->set_delivery_id(id);
  d->set_channel(h.spec.channel);
  d->set_stream(h.sources[entry.source].stream);
  d->set_entry_id(entry.id);
  if (d->original_entry_id().empty()) d->set_original_entry_id(entry.id);
  d->set_attempt(entry.attempt);
  if (h.spec.has_retry_policy && !h.spec.retry_policy.unlimited()) {
    d->set_max_attempts(h.spec.retry_policy.max_retries() + 1);
  }
  d->set_lease_deadline_unix_ms(UnixMillis(deadline));
  s.in_flight.emplace(id, Flight{std::move(entry), deadline, deadline - s.spec.lease});
  ++stats_.deliveries;
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
    for (v1::SubscribeResponse& full : s->out_full) s->sink->Send(std::move(full));
    s->out_full.clear();
    s->out_bytes = 0;
    if (s->out_deliveries.has_deliveries()) {
      v1::SubscribeResponse msg;
      msg.Swap(&s->out_deliveries);
      s->sink->Send(std::move(msg));
    }
    if (s->out_notices.has_notices()) {
      v1::SubscribeResponse msg;
      msg.Swap(&s->out_notices);
      s->sink->Send(std::move(msg));
    }
  }
}

void Dispatcher::Notice(Session& s, uint64_t delivery_id, v1::Notice::Code code,
                        std::string message) {
  v1::Notice* n = s.out_notices.mutable_notices()->add_notices();
  n->set_delivery_id(delivery_id);
  n->set_code(code);
  n->set_message(std::move(message));
  ++stats_.notices;
  if (!s.dirty) {
    s.dirty = true;
    dirty_.push_back(&s);
  }
}

// ---------------------------------------------------------------- verbs

void Dispatcher::Settle(Session& s, uint64_t delivery_id, Outcome outcome) {
  auto it = s.in_flight.find(delivery_id);
  if (it == s.in_flight.end()) return;
  s.in_flight.erase(it);
  s.settled.emplace(delivery_id, outcome);
  s.settled_order.push_back(delivery_id);
  while (s.settled_order.size() > std::max<size_t>(kSettledMemory, 4 * s.spec.max_in_flight)) {
    s.settled.erase(s.settled_order.front());
    s.settled_order.pop_front();
  }
}

void Dispatcher::Verbs(uint64_t session_id, const v1::Verbs& verbs) {
  auto sit = sessions_.find(session_id);
  if (sit == sessions_.end()) return;
  Session& s = *sit->second;
  Handler* h = s.handler;
  const absl::Time now = options_.now();
  std::vector<std::string> extended[2];
  for (const v1::Verb& verb : verbs.verbs()) {
    const uint64_t id = verb.delivery_id();
    auto it = s.in_flight.find(id);
    if (it == s.in_flight.end()) {
      auto settled = s.settled.find(id);
      if (settled == s.settled.end()) {
        Notice(s, id, v1::Notice::UNKNOWN_DELIVERY,
               absl::StrCat("no delivery ", id, " on this stream"));
      } else if (!(verb.has_ack() && settled->second == Outcome::kAcked)) {
        // A repeated ACK is idempotent and silent; anything else is noted.
        Notice(s, id, v1::Notice::ALREADY_SETTLED,
               absl::StrCat("delivery ", id, " was already settled"));
      }
      continue;
    }
    const Entry entry = it->second.entry;
    switch (verb.action_case()) {
      case v1::Verb::kAck:
        ++stats_.acks;
        if (h != nullptr && !h->auto_ack) QueueAck(*h, entry.source, entry.id);
        Settle(s, id, Outcome::kAcked);
        break;
      case v1::Verb::kNack: {
        const v1::Nack& nack = verb.nack();
        if (nack.reason().size() > kMaxReason || nack.error_code().size() > kMaxErrorCode ||
            (nack.has_delay_ms() && nack.delay_ms() > kMaxDurationMs)) {
          Notice(s, id, v1::Notice::INVALID_VERB,
                 absl::StrCat("nack.reason at most ", kMaxReason, " bytes, error_code at most ",
                              kMaxErrorCode, ", delay_ms at most ", kMaxDurationMs));
          break;
        }
        ++stats_.nacks;
        Settle(s, id, Outcome::kNacked);
        if (h != nullptr && !h->auto_ack) {
          std::optional<absl::Duration> delay;
          if (nack.has_delay_ms()) delay = absl::Milliseconds(nack.delay_ms());
          Fail(*h, entry, FailKind::kNack, nack.reason(), nack.error_code(), delay);
        }
        break;
      }
      case v1::Verb::kExtend: {
        const uint32_t lease_ms = verb.extend().lease_ms();
        if (lease_ms > kMaxDurationMs) {
          Notice(s, id, v1::Notice::INVALID_VERB,
                 absl::StrCat("extend.lease_ms ", lease_ms, " is outside 0..", kMaxDurationMs));
          break;
        }
        ++stats_.extends;
        it->second.deadline = now + (lease_ms == 0 ? s.spec.lease : absl::Milliseconds(lease_ms));
        it->second.idle_since = now;
        extended[entry.source].push_back(entry.id);
        break;
      }
      case v1::Verb::kTerminate: {
        const v1::Terminate& t = verb.terminate();
        if (t.reason().size() > kMaxReason || t.error_code().size() > kMaxErrorCode) {
          Notice(s, id, v1::Notice::INVALID_VERB,
                 absl::StrCat("terminate.reason at most ", kMaxReason,
                              " bytes, error_code at most ", kMaxErrorCode));
          break;
        }
        ++stats_.terminates;
        Settle(s, id, Outcome::kTerminated);
        if (h != nullptr && !h->auto_ack) {
          Fail(*h, entry, FailKind::kTerminated, t.reason(), t.error_code(), std::nullopt);
        }
        break;
      }
      default:
        Notice(s, id, v1::Notice::INVALID_VERB, "verb has no action");
        break;
    }
  }
  if (h != nullptr) {
    if (!h->auto_ack) {
      for (uint8_t source : {kMain, kRetry}) Touch(*h, source, extended[source], false);
    }
    Pump(*h);
    MaybeRead(*h);
  }
  FlushOut();
  if (draining_) CheckDrained();
}

void Dispatcher::QueueAck(Handler& h, uint8_t source, const std::string& id) {
  const Source& src = h.sources[source];
  acks_[{src.stream, src.group}].push_back(id);
  if (source == kRetry) h.sources[kRetry].trim_wanted = true;
  if (++acks_queued_ >= options_.ack_batch) {
    FlushAcks();
  } else if (!ack_timer_armed_) {
    ack_timer_armed_ = true;
    ack_timer_->Arm(options_.ack_delay);
  }
}

void Dispatcher::FlushAcks() {
  if (acks_queued_ == 0) return;
  for (auto& [target, ids] : acks_) {
    if (ids.empty()) continue;
    RedisArgv argv = {"XACK", target.first, target.second};
    argv.reserve(3 + ids.size());
    for (const std::string& id : ids) argv.push_back(id);
    // The argv views `ids`; hiredis copies the arguments inside Send.
    redis_.Send(argv, Guard([this](absl::StatusOr<RedisReply> r) {
                  if (!r.ok() || r->is_error()) {
                    ++stats_.redis_errors;
                    spdlog::warn("XACK failed ({}); the entries stay pending and are reclaimed",
                                 r.ok() ? r->str : std::string(r.status().message()));
                  }
                }));
    ids.clear();
  }
  acks_queued_ = 0;
}

Dispatcher::Target Dispatcher::TargetOf(const Handler& h, uint8_t source) {
  return Target{h.sources[source].stream, h.sources[source].group, h.spec.consumer};
}

void Dispatcher::Touch(const Handler& h, uint8_t source, const std::vector<std::string>& ids,
                       bool release) {
  Touch(TargetOf(h, source), ids, release);
}

void Dispatcher::Touch(const Target& t, const std::vector<std::string>& ids, bool release) {
  if (ids.empty()) return;
  spdlog::debug("{} {} entries of '{}' in group '{}'", release ? "releasing" : "touching",
                ids.size(), t.stream, t.group);
  if (release) stats_.released += ids.size();
  std::vector<std::string> args = {t.group, t.consumer,
                                   release ? std::string(kReleaseIdleMs) : std::string()};
  args.insert(args.end(), ids.begin(), ids.end());
  SendScript(redis_, TouchScript(), {t.stream}, std::move(args),
             Guard([this](absl::StatusOr<RedisReply> r) {
               if (!r.ok() || r->is_error()) ++stats_.redis_errors;
             }));
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
                s.in_flight.size());
  DetachSession(s);
  sessions_.erase(it);
  FlushOut();
  if (draining_) CheckDrained();
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
  if (!s.in_flight.empty() && !h->auto_ack) {
    // (Auto-ack entries were acknowledged at read: nothing to give back.)
    // R-B7: each unsettled delivery is a failed attempt, retried at once —
    // by another stream of the handler if one is connected — or
    // dead-lettered as "disconnected" once the policy is exhausted.
    std::vector<std::pair<uint64_t, Entry>> failed;
    for (auto& [id, f] : s.in_flight) failed.emplace_back(id, std::move(f.entry));
    std::sort(failed.begin(), failed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [id, e] : failed) {
      ++stats_.disconnect_failures;
      Fail(*h, e, FailKind::kDisconnected, "consumer disconnected", "DISCONNECTED",
           absl::ZeroDuration());
    }
  }
  s.in_flight.clear();
  s.handler = nullptr;
  Pump(*h);
  const bool can_take = std::any_of(h->sessions.begin(), h->sessions.end(),
                                    [](const Session* o) { return !o->stopped; });
  if (!can_take && !h->backlog.empty()) {
    // Read but never delivered, and no session here will take them: hand
    // them back through the retry path for any stream (not a failed attempt).
    std::vector<std::string> ids[2];
    for (const Entry& e : h->backlog) ids[e.source].push_back(e.id);
    h->backlog.clear();
    for (uint8_t source : {kMain, kRetry}) {
      Return(h->names, HandlerRef{h->key, h->generation}, source, ids[source]);
    }
  }
  MaybeRead(*h);
  MaybeRemoveHandler(*h);
}

void Dispatcher::MaybeRemoveHandler(Handler& h) {
  if (!h.sessions.empty() || !h.waiting.empty()) return;
  for (const Source& src : h.sources) {
    auto it = by_stream_.find(src.stream);
    if (it != by_stream_.end()) {
      auto& keys = it->second;
      keys.erase(std::remove(keys.begin(), keys.end(), h.key), keys.end());
      if (keys.empty()) by_stream_.erase(it);
    }
    if (src.watched) notifier_.Unwatch(src.stream);
  }
  if (h.present) {
    redis_.Send({"HDEL", kHandlersRegistryKey,
                 PresenceField(h.spec.channel, h.spec.handler_id, options_.instance_id)},
                [](absl::StatusOr<RedisReply>) {});
  }
  handlers_.erase(h.key);  // destroys h
}

// ---------------------------------------------------------------- timers

void Dispatcher::SetPaused(const std::string& channel, const std::string& handler_id,
                           bool paused) {
  const std::string key = HandlerKey(channel, handler_id);
  ++pause_epoch_;
  if (paused) {
    paused_.insert(key);
  } else {
    paused_.erase(key);
  }
  if (Handler* h = FindHandler(key)) ApplyPaused(*h, paused);
  FlushOut();
}

void Dispatcher::ApplyPaused(Handler& h, bool paused) {
  if (h.paused == paused) return;
  h.paused = paused;
  spdlog::info("handler '{}' on '{}' {}", h.spec.handler_id, h.spec.channel,
               paused ? "paused: no new deliveries" : "resumed");
  if (!paused) {
    for (Source& src : h.sources) src.more = true;
    Pump(h);
    MaybeRead(h);
  }
}

void Dispatcher::PollPaused() {
  if (polling_paused_) return;
  polling_paused_ = true;
  redis_.Send({"HGETALL", kPausedHandlersKey},
              Guard([this, epoch = pause_epoch_](absl::StatusOr<RedisReply> r) {
                polling_paused_ = false;
                // A local SetPaused since the poll was sent wins over it.
                if (!r.ok() || !r->is_array() || epoch != pause_epoch_) return;
                absl::flat_hash_set<std::string> paused;
                for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
                  const std::string& field = r->elements[i].str;
                  const size_t space = field.find(' ');
                  if (space == std::string::npos) continue;
                  paused.insert(HandlerKey(absl::string_view(field).substr(0, space),
                                           absl::string_view(field).substr(space + 1)));
                }
                paused_ = std::move(paused);
                for (auto& [key, h] : handlers_) ApplyPaused(*h, paused_.contains(key));
                FlushOut();
              }));
}

void Dispatcher::BeatPresence() {
  const std::string beat = absl::StrCat(absl::ToUnixMillis(options_.now()));
  std::vector<std::string> fields;
  for (const auto& [key, h] : handlers_) {
    if (!h->ready || h->sessions.empty()) continue;
    fields.push_back(PresenceField(h->spec.channel, h->spec.handler_id, options_.instance_id));
  }
  if (fields.empty()) return;
  RedisArgv argv = {"HSET", kHandlersRegistryKey};
  for (const std::string& f : fields) {
    argv.push_back(f);
    argv.push_back(beat);
  }
  redis_.Send(argv, [](absl::StatusOr<RedisReply> r) {
    if (!r.ok() || r->is_error()) {
      spdlog::debug("presence heartbeat failed: {}",
                    r.ok() ? r->str : std::string(r.status().message()));
    }
  });
}

std::vector<Dispatcher::HandlerSnapshot> Dispatcher::Snapshot() const {
  std::vector<HandlerSnapshot> out;
  for (const auto& [key, h] : handlers_) {
    HandlerSnapshot snap;
    snap.channel = h->spec.channel;
    snap.handler_id = h->spec.handler_id;
    snap.consumer = h->spec.consumer;
    snap.sessions = static_cast<uint32_t>(h->sessions.size());
    for (const Session* s : h->sessions) snap.in_flight += s->in_flight.size();
    snap.paused = h->paused;
    out.push_back(std::move(snap));
  }
  return out;
}

void Dispatcher::Tick() {
  const absl::Time now = options_.now();
  if (!handlers_.empty() && now >= next_pause_poll_) {
    PollPaused();
    next_pause_poll_ = now + options_.pause_poll;
  }
  if (!handlers_.empty() && now >= next_presence_) {
    BeatPresence();
    next_presence_ = now + options_.presence_interval;
  }
  // Lease expiry (R-D3): a failed attempt, retried after its backoff.
  for (auto& [sid, session] : sessions_) {
    Session& s = *session;
    std::vector<uint64_t> expired;
    for (const auto& [id, f] : s.in_flight) {
      if (f.deadline <= now) expired.push_back(id);
    }
    std::sort(expired.begin(), expired.end());
    for (uint64_t id : expired) {
      ++stats_.lease_expiries;
      const Entry entry = s.in_flight[id].entry;
      if (s.handler != nullptr) {
        summary_.LeaseExpired(s.spec.channel, s.spec.handler_id);
        spdlog::debug("delivery {} (entry {}) on session {}: lease expired", id, entry.id, s.id);
      }
      Settle(s, id, Outcome::kExpired);
      if (s.handler != nullptr && !s.handler->auto_ack) {
        Fail(*s.handler, entry, FailKind::kExpired,
             absl::StrCat("lease of ", absl::ToInt64Milliseconds(s.spec.lease),
                          " ms expired without ACK or EXTEND"),
             "LEASE_EXPIRED", std::nullopt);
      }
    }
  }
  for (auto& [key, handler] : handlers_) {
    Handler& h = *handler;
    if (!h.ready) continue;
    if (!notifier_.healthy()) {
      for (Source& src : h.sources) src.more = true;  // poll while the notifier is down
    }
    Pump(h);
    // Entries waiting for a slot stay ours: keep their idle time low.
    if (!h.backlog.empty() && !h.sessions.empty() && now >= h.backlog_touch_at) {
      std::vector<std::string> ids[2];
      for (const Entry& e : h.backlog) ids[e.source].push_back(e.id);
      for (uint8_t source : {kMain, kRetry}) Touch(h, source, ids[source], false);
      h.backlog_touch_at = now + h.spec.lease / 3;
    }
    if (!h.auto_ack && now >= h.in_flight_touch_at) {
      // Deliveries that may outlive the handler's lease in Redis (a longer
      // session lease, a long EXTEND) get their idle time reset, so no
      // sweep takes them while their client still holds a valid lease.
      const absl::Duration third = h.spec.lease / 3;
      std::vector<std::string> ids[2];
      for (Session* s : h.sessions) {
        for (auto& [id, f] : s->in_flight) {
          if (f.deadline > f.idle_since + h.spec.lease && now - f.idle_since > third) {
            ids[f.entry.source].push_back(f.entry.id);
            f.idle_since = now;
          }
        }
      }
      for (uint8_t source : {kMain, kRetry}) Touch(h, source, ids[source], false);
      h.in_flight_touch_at = now + third;
    }
    if (!h.auto_ack && !draining_) {
      RetryDeadLetters(h);
      if (now >= h.next_due) MoveDue(h);
      for (uint8_t source : {kMain, kRetry}) {
        if (now >= h.sources[source].next_sweep) Sweep(h, source);
      }
    }
    MaybeRead(h);
  }
  if (!notifier_.healthy()) notifier_.Kick();
  for (const std::string& line : summary_.Report(now)) spdlog::info("{}", line);
  FlushOut();
  if (draining_) CheckDrained();
  tick_timer_->Arm(options_.tick);
}

absl::Duration Dispatcher::SweepPeriod(const Handler& h) const {
  return std::max(h.spec.lease, options_.min_sweep);
}

// ---------------------------------------------------------------- drain

void Dispatcher::Drain(absl::Duration grace, std::function<void()> done) {
  draining_ = true;
  drain_deadline_ = options_.now() + grace;
  drain_done_ = std::move(done);
  v1::SubscribeResponse drain;
  drain.mutable_drain()->set_grace_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(grace)));
  drain.mutable_drain()->set_reason("redrived is shutting down");
  for (auto& [id, s] : sessions_) s->sink->Send(drain);
  spdlog::info("draining {} sessions for up to {} ms", sessions_.size(),
               absl::ToInt64Milliseconds(grace));
  CheckDrained();
}

void Dispatcher::CheckDrained() {
  if (!drain_done_) return;
  bool settled = true;
  for (const auto& [id, s] : sessions_) settled = settled && s->in_flight.empty();
  const bool late = options_.now() >= drain_deadline_;
  if (!settled && !late) return;
  // What is still unsettled when the grace ends stays pending for the next
  // owner (broker.proto, step 6): like what was read and never delivered, it
  // is handed back through the retry path without counting an attempt, so a
  // rolling deploy never moves a message closer to (or into) the DLQ.
  for (auto& [key, h] : handlers_) {
    std::vector<std::pair<uint64_t, Entry>> unsettled;
    for (Session* s : h->sessions) {
      for (auto& [id, f] : s->in_flight) unsettled.emplace_back(id, std::move(f.entry));
      s->in_flight.clear();
    }
    if (h->auto_ack) {
      h->backlog.clear();
      continue;
    }
    // In delivery order, then what was never delivered.
    std::sort(unsettled.begin(), unsettled.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> ids[2];
    for (const auto& [id, e] : unsettled) {
      ++stats_.drain_released;
      ids[e.source].push_back(e.id);
    }
    for (const Entry& e : h->backlog) ids[e.source].push_back(e.id);
    h->backlog.clear();
    if (!unsettled.empty()) {
      spdlog::info("handler '{}' on '{}': {} unsettled deliveries handed back at the end of the "
                   "drain (no attempt counted)",
                   h->spec.handler_id, h->spec.channel, unsettled.size());
    }
    for (uint8_t source : {kMain, kRetry}) {
      Return(h->names, HandlerRef{h->key, h->generation}, source, ids[source]);
    }
  }
  FlushAcks();
  // The retry moves started here and before finish first: their replies (or
  // the command timeout) come within seconds.
  if (ops_in_progress_ > 0 && options_.now() < drain_deadline_ + kDrainOpsWait) return;
  for (auto& [id, s] : sessions_) {
    s->sink->Finish(absl::UnavailableError("redrived is shutting down"));
  }
  for (const std::string& line : summary_.ReportNow(options_.now())) spdlog::info("{}", line);
  auto done = std::move(drain_done_);
  drain_done_ = nullptr;
  // Runs after the XACK/XCLAIM replies above (replies arrive in order).
  redis_.Send({"PING"}, [done = std::move(done)](absl::StatusOr<RedisReply>) { done(); });
}

void Dispatcher::EndOp() {
  if (ops_in_progress_ > 0) --ops_in_progress_;
  if (ops_in_progress_ == 0 && draining_) CheckDrained();
}

}  // namespace redrive
