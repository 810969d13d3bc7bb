#include "daemon/engine/distributor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>

#include "daemon/delivery_decoder.h"
#include "daemon/logging.h"
#include "daemon/trace_context.h"

namespace redrive {
namespace {

constexpr int kScratchKeepBytes = 1 << 20;

}  // namespace

void Distributor::Deliver(EngineHandler& h, uint8_t source, std::vector<StreamEntry> entries) {
  const bool auto_ack = h.spec->auto_ack;
  if (parts_.drainer.draining() && !auto_ack) {
    // Read before the drain began, answered after: hand it straight back.
    std::vector<std::string> ids;
    ids.reserve(entries.size());
    for (const StreamEntry& e : entries) ids.push_back(e.id);
    parts_.retries.Return(h.ref, h.spec, source, ids);
    return;
  }
  for (StreamEntry& e : entries) {
    if (e.deleted) {
      // Trimmed while pending: nothing to deliver; drop it from the PEL.
      if (!auto_ack) {
        const GroupRef g = SourceRef(*h.spec, source);
        parts_.acks.Queue(g.stream, g.group, e.id);
      }
      continue;
    }
    HandlerSession* s = h.sessions.Pick(h.paused);
    if (s == nullptr) {
      // Auto-ack entries were acknowledged at read: kept whole until a slot
      // frees (the streams stay open through a drain's grace period); others
      // are fetched again then.
      h.backlog.Park(std::move(e), source, /*whole=*/auto_ack);
      continue;
    }
    DecodedDelivery* decoded = &scratch_;
    if (absl::Status poison = DecodeDeliveryInto(e, /*lenient=*/auto_ack, scratch_); !poison.ok()) {
      parts_.retries.Poison(h.spec, source, e, poison, FailKind::kNack);
      continue;
    }
    if (!decoded->unreadable.empty()) {
      ++ctx_.stats.decode_errors;
      LogWarn(LogFields()
                  .Channel(h.spec->channel)
                  .Handler(h.spec->handler_id)
                  .EntryId(e.id)
                  .TraceId(TraceIdOf(decoded->message.trace().traceparent()))
                  .Reason(decoded->unreadable),
              "entry is unreadable; delivered as raw bytes");
    }
    s->Deliver(++next_delivery_id_, Entry{std::move(e.id), decoded->attempt, source}, *h.spec,
               decoded->message, ctx_.now());
    // A large entry's buffers are not kept for the next ones (the size
    // was computed when the outbox serialized it).
    if (decoded->message.GetCachedSize() > kScratchKeepBytes) scratch_ = DecodedDelivery{};
    ++ctx_.stats.deliveries;
    h.spec->metrics->deliveries.Add();
    dirty_.Mark(*s);
  }
}

void Distributor::Pump(EngineHandler& h) {
  while (h.backlog.has_whole() && h.sessions.HasSlot(h.paused)) {
    Deliver(h, kMain, {h.backlog.PopWhole()});
  }
  if (parts_.drainer.draining() || h.paused || !h.backlog.has_ids()) return;
  const uint64_t free = h.sessions.FreeSlots();
  const uint64_t promised = h.backlog.fetching() + parts_.reader.reserved(h.ref);
  const uint64_t n =
      std::min<uint64_t>(free > promised ? free - promised : 0, ctx_.options.read_batch);
  if (n == 0) return;
  h.backlog.Refetch(ctx_, *h.spec, n,
                    guard_.Wrap([this, ref = h.ref, spec = h.spec](
                                    uint8_t source, std::vector<Entry> asked,
                                    absl::StatusOr<std::vector<StreamEntry>> fetched) {
                      kLoopThread.AssertHeld();
                      OnFetched(ref, spec, source, std::move(asked), std::move(fetched));
                    }));
}

void Distributor::OnFetched(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                            std::vector<Entry> asked,
                            absl::StatusOr<std::vector<StreamEntry>> fetched) {
  EngineHandler* h = handlers_.Find(ref);
  if (h == nullptr) {
    // The last session left meanwhile: never delivered, handed back.
    parts_.retries.Return(ref, spec, asked);
    return;
  }
  h->backlog.Fetched(asked, fetched.ok());
  if (!fetched.ok()) {
    ++ctx_.stats.redis_errors;  // back in the backlog: the tick tries again
    return;
  }
  ctx_.stats.redeliveries += fetched->size();
  Deliver(*h, source, *std::move(fetched));
  Pump(*h);
  parts_.reader.MaybeRead(ref);
  dirty_.Flush();
}

}  // namespace redrive
