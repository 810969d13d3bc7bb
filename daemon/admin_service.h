// AdminService: the gRPC adapter for redrive.v1.Admin.
//
// Registered now so that reflection describes the whole v1 API; every RPC
// answers UNIMPLEMENTED (the generated default) until the dead-letter
// administration lands.
//
// Thread-safe.
#ifndef REDRIVE_DAEMON_ADMIN_SERVICE_H_
#define REDRIVE_DAEMON_ADMIN_SERVICE_H_

#include "redrive/v1/admin.grpc.pb.h"

namespace redrive {

class AdminService final : public v1::Admin::CallbackService {
 public:
  AdminService();
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ADMIN_SERVICE_H_
