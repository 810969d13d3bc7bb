// AdminAuth: the Admin service's bearer-token check (R-A5, R-H3).
//
// Every Admin RPC carries `authorization: Bearer <token>` metadata, compared
// in constant time with the configured token. With no token configured
// every call is refused (UNAUTHENTICATED), unless the daemon was started
// with --admin-auth=disabled, which turns the check off (local development).
//
// Thread-safe: immutable after construction.
#ifndef REDRIVE_DAEMON_ADMIN_AUTH_H_
#define REDRIVE_DAEMON_ADMIN_AUTH_H_

#include <grpcpp/support/status.h>
#include <grpcpp/support/string_ref.h>

#include <map>
#include <string>

namespace redrive {

class AdminAuth {
 public:
  AdminAuth(bool disabled, std::string token) : disabled_(disabled), token_(std::move(token)) {}

  // OK, or UNAUTHENTICATED saying what is wrong (never echoing the token).
  grpc::Status Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

  // The operator the client names in `x-redrive-operator`
  // ([A-Za-z0-9._@:-], at most 64 characters; "unknown" otherwise), for the
  // audit log.
  static std::string Operator(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

 private:
  const bool disabled_;
  const std::string token_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ADMIN_AUTH_H_
