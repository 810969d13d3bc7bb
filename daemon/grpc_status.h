// Conversion of absl::Status to grpc::Status at the service edge.
//
// The canonical codes are numerically identical in abseil and gRPC.
#ifndef REDRIVE_DAEMON_GRPC_STATUS_H_
#define REDRIVE_DAEMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace redrive {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace redrive

#endif  // REDRIVE_DAEMON_GRPC_STATUS_H_
