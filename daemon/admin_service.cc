#include "daemon/admin_service.h"

namespace redrive {

AdminService::AdminService() = default;

}  // namespace redrive
