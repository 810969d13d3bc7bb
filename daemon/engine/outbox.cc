#include "daemon/engine/outbox.h"

#include <google/protobuf/io/coded_stream.h>

#include <limits>
#include <utility>

#include "daemon/delivery_budget.h"

namespace redrive {
namespace {

// Deliveries.deliveries is field 1, length-delimited.
constexpr uint8_t kDeliveryTag = (1 << 3) | 2;

}  // namespace

void Outbox::Add(const v1::Delivery& delivery) {
  const size_t size = delivery.ByteSizeLong();
  // The limit leaves room for this record's framing and the response's.
  if (size > static_cast<size_t>(std::numeric_limits<int32_t>::max()) - 64) {
    oversized_.push_back(delivery);
    return;
  }
  const size_t cost = size + 8;  // DeliveryCost(delivery), without a second ByteSizeLong
  if (!FitsDeliveryBudget(batch_.cost, cost) && !batch_.bytes.empty()) {
    // This batch is full: close it and start another.
    full_.push_back(std::move(batch_));
    batch_ = Batch{};
  }
  batch_.cost += cost;
  using google::protobuf::io::CodedOutputStream;
  const auto len = static_cast<uint32_t>(size);
  std::string& out = batch_.bytes;
  const size_t at = out.size();
  out.resize(at + 1 + CodedOutputStream::VarintSize32(len) + size);
  auto* p = reinterpret_cast<uint8_t*>(out.data() + at);
  *p++ = kDeliveryTag;
  p = CodedOutputStream::WriteVarint32ToArray(len, p);
  // The sizes ByteSizeLong cached above are the ones written.
  delivery.SerializeWithCachedSizesToArray(p);
}

void Outbox::AddNotice(uint64_t delivery_id, v1::Notice::Code code, std::string message) {
  v1::Notice* n = notices_.mutable_notices()->add_notices();
  n->set_delivery_id(delivery_id);
  n->set_code(code);
  n->set_message(std::move(message));
}

void Outbox::FlushTo(SessionSink& sink) {
  for (Batch& full : full_) sink.SendDeliveries(std::move(full.bytes));
  full_.clear();
  if (!batch_.bytes.empty()) sink.SendDeliveries(std::exchange(batch_, Batch{}).bytes);
  for (v1::Delivery& d : oversized_) {
    v1::SubscribeResponse msg;
    *msg.mutable_deliveries()->add_deliveries() = std::move(d);
    sink.Send(std::move(msg));
  }
  oversized_.clear();
  if (notices_.has_notices()) {
    v1::SubscribeResponse msg;
    msg.Swap(&notices_);
    sink.Send(std::move(msg));
  }
}

}  // namespace redrive
