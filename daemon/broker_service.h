// BrokerService: the gRPC adapter for redrive.v1.Broker (callback API).
//
// Publish and PublishBatch validate and encode on the gRPC thread, then hand
// the Redis write to the RedisExecutor; the reaction never blocks on Redis.
// Subscribe is not implemented yet (UNIMPLEMENTED, the generated default).
//
// Thread-safe.
#ifndef REDRIVE_DAEMON_BROKER_SERVICE_H_
#define REDRIVE_DAEMON_BROKER_SERVICE_H_

#include "daemon/publisher.h"
#include "daemon/redis_client.h"
#include "redrive/v1/broker.grpc.pb.h"

namespace redrive {

class BrokerService final : public v1::Broker::CallbackService {
 public:
  // Borrows both; they must outlive the gRPC server.
  BrokerService(const Publisher& publisher, RedisExecutor& executor)
      : publisher_(publisher), executor_(executor) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;
  grpc::ServerUnaryReactor* PublishBatch(grpc::CallbackServerContext* context,
                                         const v1::PublishBatchRequest* request,
                                         v1::PublishBatchResponse* response) override;

 private:
  const Publisher& publisher_;
  RedisExecutor& executor_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_BROKER_SERVICE_H_
