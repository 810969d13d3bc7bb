// AdminAuth: the bearer-token check of the Admin service (R-A5, R-H3), and of
// the Broker with --broker-auth=token.
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
  // `realm` names the token in messages: "admin" (--admin-token-file,
  // REDRIVE_ADMIN_TOKEN) or "broker" (--broker-token-file,
  // REDRIVE_BROKER_TOKEN).
  AdminAuth(bool disabled, std::string token, std::string realm = "admin")
      : disabled_(disabled), token_(std::move(token)), realm_(std::move(realm)) {}

  // OK, or UNAUTHENTICATED saying what is wrong (never echoing the token).
  grpc::Status Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

  // The operator the client names in `x-redrive-operator`
  // ([A-Za-z0-9._@:-], at most 64 characters; "unknown" otherwise), for the
  // audit log.
  static std::string Operator(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

 private:
  const bool disabled_;
  const std::string token_;
  const std::string realm_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ADMIN_AUTH_H_
