#include "daemon/engine/reader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "daemon/logging.h"
#include "daemon/redis/errors.h"

namespace redrive {

Reader::Reader(EngineContext& ctx, ActivityNotifier& notifier, Hooks hooks)
    : ctx_(ctx), notifier_(notifier), hooks_(std::move(hooks)) {}

Reader::PerHandler* Reader::Find(const HandlerRef& ref) {
  auto it = handlers_.find(ref.generation);
  return it == handlers_.end() ? nullptr : &it->second;
}

void Reader::Add(const HandlerRef& ref, const SpecPtr& spec) {
  PerHandler& h = handlers_[ref.generation];
  h = PerHandler{};
  h.spec = spec;
  by_stream_[spec->keys.stream].push_back(ref);
  if (!spec->auto_ack) by_stream_[spec->keys.retry_stream].push_back(ref);
}

void Reader::Forget(const HandlerRef& ref) {
  auto it = handlers_.find(ref.generation);
  if (it == handlers_.end()) return;
  const PerHandler& h = it->second;
  for (uint8_t source : {kMain, kRetry}) {
    const std::string& stream = SourceRef(*h.spec, source).stream;
    auto bs = by_stream_.find(stream);
    if (bs != by_stream_.end()) {
      auto& refs = bs->second;
      refs.erase(std::remove(refs.begin(), refs.end(), ref), refs.end());
      if (refs.empty()) by_stream_.erase(bs);
    }
    if (h.sources[source].watched) notifier_.Unwatch(stream);
  }
  handlers_.erase(it);
}

const std::vector<HandlerRef>* Reader::Readers(const std::string& stream) const {
  auto it = by_stream_.find(stream);
  return it == by_stream_.end() ? nullptr : &it->second;
}

uint32_t Reader::reserved(const HandlerRef& ref) const {
  auto it = handlers_.find(ref.generation);
  return it == handlers_.end() ? 0 : it->second.reserved;
}

void Reader::Watch(const HandlerRef& ref, uint8_t source, std::function<void()> ready) {
  PerHandler* h = Find(ref);
  if (h == nullptr) return;
  h->sources[source].watched = true;
  notifier_.Watch(SourceRef(*h->spec, source).stream, guard_.Wrap(std::move(ready)));
}

void Reader::Open(const HandlerRef& ref, uint8_t source) {
  PerHandler* h = Find(ref);
  if (h == nullptr) return;
  h->sources[source].ready = true;
  h->sources[source].more = true;
}

void Reader::Wake(const HandlerRef& ref, uint8_t source) {
  PerHandler* h = Find(ref);
  if (h == nullptr) return;
  h->sources[source].more = true;
  ++h->sources[source].activity;
}

void Reader::MaybeRead(const HandlerRef& ref) {
  PerHandler* h = Find(ref);
  if (h == nullptr || hooks_.draining()) return;
  const absl::Time now = ctx_.now();
  auto wants = [&](uint8_t source) {
    const Source& src = h->sources[source];
    return src.ready && !src.reading && src.more && now >= src.retry_after;
  };
  const bool main = wants(kMain);
  const bool retry = !h->spec->auto_ack && wants(kRetry);
  if (!main && !retry) return;
  const uint32_t count = std::min(hooks_.capacity(ref), ctx_.options.read_batch);
  if (count == 0) return;
  if (main && retry) {
    // Both have entries: split the slots so neither starves the other (R-D7).
    if (count == 1) {
      Read(ref, *h, h->prefer_retry ? kRetry : kMain, 1);
      h->prefer_retry = !h->prefer_retry;
      return;
    }
    const uint32_t retry_share = count / 2 + (count % 2 != 0 && h->prefer_retry ? 1 : 0);
    h->prefer_retry = !h->prefer_retry;
    Read(ref, *h, kRetry, retry_share);
    Read(ref, *h, kMain, count - retry_share);
    return;
  }
  Read(ref, *h, main ? kMain : kRetry, count);
}

void Reader::Read(const HandlerRef& ref, PerHandler& h, uint8_t source, uint32_t count) {
  Source& src = h.sources[source];
  src.reading = true;
  h.reserved += count;
  ++ctx_.stats.reads;
  ctx_.ops.ReadGroup(SourceRef(*h.spec, source), count, h.spec->auto_ack,
                     guard_.Wrap([this, ref, spec = h.spec, source, count, activity = src.activity](
                                     absl::StatusOr<std::vector<StreamEntry>> read) {
                       kLoopThread.AssertHeld();
                       OnRead(ref, spec, source, count, activity, std::move(read));
                     }));
}

void Reader::OnRead(const HandlerRef& ref, const SpecPtr& spec, uint8_t source, uint32_t asked,
                    uint64_t activity, absl::StatusOr<std::vector<StreamEntry>> read) {
  PerHandler* h = Find(ref);
  if (h == nullptr) {
    // Every session left while the read was out: what it read is pending
    // under our consumer, never delivered; hand it back.
    if (read.ok() && !spec->auto_ack && !read->empty()) {
      std::vector<std::string> ids;
      for (const StreamEntry& e : *read) ids.push_back(e.id);
      hooks_.orphaned(ref, spec, source, std::move(ids));
    }
    return;
  }
  Source& src = h->sources[source];
  src.reading = false;
  h->reserved -= std::min(h->reserved, asked);
  if (!read.ok()) {
    if (RedisErrorOf(read.status()) == RedisError::kNoGroup) {
      if (source == kRetry && src.last_read_id.empty()) {
        // No retry has been written yet: the first move creates the group.
        src.more = false;
        return;
      }
      RecreateGroup(ref, *h, source);
      return;
    }
    ++ctx_.stats.redis_errors;
    // If the server ran the read, its entries are pending under our
    // consumer without our knowing: the sweep finds them once idle.
    LogDebug(LogFields()
                 .Channel(spec->channel)
                 .Handler(spec->handler_id)
                 .Stream(SourceRef(*spec, source).stream)
                 .Error(read.status().message()),
             "XREADGROUP failed");
    src.retry_after = ctx_.now() + ctx_.options.error_backoff;
    return;
  }
  if (read->size() < asked && activity == src.activity) src.more = false;
  if (!read->empty()) src.last_read_id = read->back().id;
  hooks_.entries(ref, source, *std::move(read));
  MaybeRead(ref);
}

void Reader::RecreateGroup(const HandlerRef& ref, PerHandler& h, uint8_t source) {
  // The group (or the stream) was deleted under us: recreate it after the
  // last entry we read, so nothing delivered is replayed and nothing added
  // since is skipped (R-D8); with nothing read yet, at the end.
  Source& src = h.sources[source];
  ++ctx_.stats.groups_recreated;
  ++ctx_.stats.redis_errors;
  const GroupRef g = SourceRef(*h.spec, source);
  const std::string start = src.last_read_id.empty() ? "$" : src.last_read_id;
  LogWarn(LogFields()
              .Channel(h.spec->channel)
              .Handler(h.spec->handler_id)
              .Stream(g.stream)
              .Group(g.group),
          "consumer group is gone; recreating it at {} (groups recreated so far: {})", start,
          ctx_.stats.groups_recreated);
  src.reading = true;  // no read until the group is back
  ctx_.ops.CreateGroup(g.stream, g.group, start,
                       guard_.Wrap([this, ref, source](absl::Status created) {
                         kLoopThread.AssertHeld();
                         PerHandler* hh = Find(ref);
                         if (hh == nullptr) return;
                         Source& s = hh->sources[source];
                         s.reading = false;
                         s.more = true;
                         if (!created.ok()) {
                           ++ctx_.stats.redis_errors;
                           s.retry_after = ctx_.now() + ctx_.options.error_backoff;
                           return;  // the tick retries the read (and so the creation)
                         }
                         MaybeRead(ref);
                       }));
}

}  // namespace redrive
