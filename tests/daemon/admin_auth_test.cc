#include "daemon/admin_auth.h"

#include <gtest/gtest.h>

namespace redrive {
namespace {

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

grpc::StatusCode CodeOf(const AdminAuth& auth, const Metadata& md) {
  return auth.Check(md).error_code();
}

TEST(AdminAuthTest, AcceptsOnlyTheConfiguredBearerToken) {
  const AdminAuth auth(false, "secret-token-0123456789");
  EXPECT_EQ(CodeOf(auth, {{"authorization", "Bearer secret-token-0123456789"}}),
            grpc::StatusCode::OK);
  EXPECT_EQ(CodeOf(auth, {{"authorization", "bearer secret-token-0123456789"}}),
            grpc::StatusCode::OK);
  for (const char* bad : {"Bearer secret-token-012345678", "Bearer secret-token-01234567890",
                          "Bearer ", "Basic secret-token-0123456789", "secret-token-0123456789",
                          "Bearer Secret-token-0123456789"}) {
    EXPECT_EQ(CodeOf(auth, {{"authorization", bad}}), grpc::StatusCode::UNAUTHENTICATED) << bad;
  }
  EXPECT_EQ(CodeOf(auth, {}), grpc::StatusCode::UNAUTHENTICATED);
  // The refusal never echoes the token.
  const grpc::Status s = auth.Check({{"authorization", "Bearer guess"}});
  EXPECT_EQ(s.error_message().find("secret"), std::string::npos);
}

TEST(AdminAuthTest, NoTokenRefusesEverythingUnlessDisabled) {
  EXPECT_EQ(CodeOf(AdminAuth(false, ""), {{"authorization", "Bearer "}}),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CodeOf(AdminAuth(true, ""), {}), grpc::StatusCode::OK);
}

TEST(AdminAuthTest, OperatorIsSanitized) {
  EXPECT_EQ(AdminAuth::Operator({{"x-redrive-operator", "alice"}}), "alice");
  EXPECT_EQ(AdminAuth::Operator({}), "unknown");
  EXPECT_EQ(AdminAuth::Operator({{"x-redrive-operator", "alice@ops-1.example:x_y"}}),
            "alice@ops-1.example:x_y");
  EXPECT_EQ(AdminAuth::Operator({{"x-redrive-operator", "a b"}}), "unknown");
  EXPECT_EQ(AdminAuth::Operator({{"x-redrive-operator", "a\"b"}}), "unknown");
  EXPECT_EQ(AdminAuth::Operator({{"x-redrive-operator", std::string(65, 'a')}}), "unknown");
}

}  // namespace
}  // namespace redrive
