// The size budget of one Deliveries message, defined once: stock gRPC
// clients refuse messages over 4 MiB by default, so batches stay within
// 3 MiB (a single larger delivery still goes alone). The dispatcher's
// Outbox builds batches with it, and SubscribeSession merges queued batches
// under the same budget.
//
// Thread-safe: constants and pure functions.
#ifndef REDRIVE_DAEMON_DELIVERY_BUDGET_H_
#define REDRIVE_DAEMON_DELIVERY_BUDGET_H_

#include <cstddef>

#include "redrive/v1/broker.pb.h"

namespace redrive {

inline constexpr size_t kDeliveryBudgetBytes = 3u << 20;

// The bytes `delivery` adds to a Deliveries message.
inline size_t DeliveryCost(const v1::Delivery& delivery) {
  return delivery.ByteSizeLong() + 8;  // + tag and length prefix
}

// Whether a batch of `batch_bytes` may take `more_bytes` more.
inline bool FitsDeliveryBudget(size_t batch_bytes, size_t more_bytes) {
  return batch_bytes + more_bytes <= kDeliveryBudgetBytes;
}

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DELIVERY_BUDGET_H_
