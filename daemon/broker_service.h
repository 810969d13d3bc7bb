// BrokerService: the gRPC adapter for redrive.v1.Broker (callback API).
//
// Publish and PublishBatch validate and encode on the gRPC thread, then hand
// the Redis write to the RedisExecutor; the reaction never blocks on Redis.
// Subscribe streams are SubscribeSession reactors over the DeliveryEngine;
// Tail calls are TailStream reactors.
// With --broker-auth=token every call first passes the bearer-token check
// (UNAUTHENTICATED otherwise, before anything is read or written).
// Subscribe is registered as a raw (ByteBuffer) method so that the session
// parses each client message itself and can answer bytes that are not a
// SubscribeRequest with INVALID_ARGUMENT (a typed reactor only sees ok=false,
// the same as a half-close).
//
// Thread-safe.
#ifndef REDRIVE_DAEMON_BROKER_SERVICE_H_
#define REDRIVE_DAEMON_BROKER_SERVICE_H_

#include <string>

#include "daemon/admin_auth.h"
#include "daemon/delivery_engine.h"
#include "daemon/metrics.h"
#include "daemon/publisher.h"
#include "daemon/redis/executor.h"
#include "redrive/v1/broker.grpc.pb.h"

namespace redrive {

// Publish, PublishBatch and Tail typed, Subscribe raw.
using BrokerCallbackBase = v1::Broker::WithCallbackMethod_Publish<
    v1::Broker::WithCallbackMethod_PublishBatch<v1::Broker::WithRawCallbackMethod_Subscribe<
        v1::Broker::WithCallbackMethod_Tail<v1::Broker::Service>>>>;

class BrokerService final : public BrokerCallbackBase {
 public:
  // Borrows the rest; they must outlive the gRPC server.
  // `auth` guards every call (--broker-auth=token); a disabled one lets
  // everything through.
  BrokerService(const Publisher& publisher, RedisExecutor& executor, DeliveryEngine& engine,
                KeyStyle key_style, std::string instance_id, AdminAuth auth,
                DaemonMetrics* metrics = nullptr)
      : publisher_(publisher),
        executor_(executor),
        engine_(engine),
        key_style_(key_style),
        instance_id_(std::move(instance_id)),
        auth_(std::move(auth)),
        metrics_(metrics) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;
  grpc::ServerUnaryReactor* PublishBatch(grpc::CallbackServerContext* context,
                                         const v1::PublishBatchRequest* request,
                                         v1::PublishBatchResponse* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context) override;
  // A TailStream (plain XREADs on the executor; no consumer group).
  grpc::ServerWriteReactor<v1::TailResponse>* Tail(grpc::CallbackServerContext* context,
                                                   const v1::TailRequest* request) override;

 private:
  const Publisher& publisher_;
  RedisExecutor& executor_;
  DeliveryEngine& engine_;
  const KeyStyle key_style_;
  const std::string instance_id_;
  const AdminAuth auth_;
  DaemonMetrics* const metrics_;  // Publish latency and codes, open streams; may be null
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_BROKER_SERVICE_H_
