// Outbox: what the dispatcher queued for one session until the next flush —
// deliveries in batches within the message budget (delivery_budget.h), and
// notices.
//
// Thread-compatible (loop thread).
#ifndef REDRIVE_DAEMON_ENGINE_OUTBOX_H_
#define REDRIVE_DAEMON_ENGINE_OUTBOX_H_

#include <cstddef>
#include <string>
#include <vector>

#include "daemon/session_sink.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

class Outbox {
 public:
  // Queues a complete delivery: serialized now, so `delivery` may be reused.
  void Add(const v1::Delivery& delivery);
  void AddNotice(uint64_t delivery_id, v1::Notice::Code code, std::string message);
  // Sends every queued message through `sink`, batches first.
  void FlushTo(SessionSink& sink);

 private:
  // A Deliveries message in its wire form (SessionSink::SendDeliveries).
  struct Batch {
    std::string bytes;
    size_t cost = 0;  // DeliveryCost summed: the budget's measure
  };
  std::vector<Batch> full_;  // batches that reached the budget
  Batch batch_;
  // A delivery too large to encode (over 2 GiB): sent as a message, which
  // the session refuses to serialize and ends the stream.
  std::vector<v1::Delivery> oversized_;
  v1::SubscribeResponse notices_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_OUTBOX_H_
