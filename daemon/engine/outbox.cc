#include "daemon/engine/outbox.h"

#include <utility>

#include "daemon/delivery_budget.h"

namespace redrive {

void Outbox::Add(v1::Delivery&& delivery) {
  const size_t cost = DeliveryCost(delivery);
  if (!FitsDeliveryBudget(bytes_, cost) && deliveries_.has_deliveries()) {
    // This batch is full: close it and start another.
    full_.push_back(std::move(deliveries_));
    deliveries_.Clear();
    bytes_ = 0;
  }
  bytes_ += cost;
  *deliveries_.mutable_deliveries()->add_deliveries() = std::move(delivery);
}

void Outbox::AddNotice(uint64_t delivery_id, v1::Notice::Code code, std::string message) {
  v1::Notice* n = notices_.mutable_notices()->add_notices();
  n->set_delivery_id(delivery_id);
  n->set_code(code);
  n->set_message(std::move(message));
}

void Outbox::FlushTo(SessionSink& sink) {
  for (v1::SubscribeResponse& full : full_) sink.Send(std::move(full));
  full_.clear();
  bytes_ = 0;
  if (deliveries_.has_deliveries()) {
    v1::SubscribeResponse msg;
    msg.Swap(&deliveries_);
    sink.Send(std::move(msg));
  }
  if (notices_.has_notices()) {
    v1::SubscribeResponse msg;
    msg.Swap(&notices_);
    sink.Send(std::move(msg));
  }
}

}  // namespace redrive
