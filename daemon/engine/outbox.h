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
  // Queues a complete delivery.
  void Add(v1::Delivery&& delivery);
  void AddNotice(uint64_t delivery_id, v1::Notice::Code code, std::string message);
  // Sends every queued message through `sink`, batches first.
  void FlushTo(SessionSink& sink);

 private:
  std::vector<v1::SubscribeResponse> full_;  // batches that reached the budget
  v1::SubscribeResponse deliveries_;
  size_t bytes_ = 0;
  v1::SubscribeResponse notices_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_OUTBOX_H_
