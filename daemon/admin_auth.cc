#include "daemon/admin_auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace redrive {
namespace {

// Constant time in the length of `expected`.
bool SameToken(absl::string_view given, absl::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

}  // namespace

grpc::Status AdminAuth::Check(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  if (disabled_) return grpc::Status::OK;
  if (token_.empty()) {
    std::string upper = realm_;
    for (char& ch : upper) ch = absl::ascii_toupper(static_cast<unsigned char>(ch));
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat("no ", realm_, " token is configured on this daemon (set --", realm_,
                     "-token-file or REDRIVE_", upper, "_TOKEN, or --", realm_,
                     "-auth=", realm_ == "admin" ? "disabled" : "none", " for local development)"));
  }
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing 'authorization: Bearer <token>' metadata");
  }
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  if (value.size() < kBearer.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kBearer.size()), kBearer)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "authorization metadata is not 'Bearer <token>'");
  }
  if (!SameToken(value.substr(kBearer.size()), token_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("wrong ", realm_, " token"));
  }
  return grpc::Status::OK;
}

std::string AdminAuth::Operator(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto it = metadata.find("x-redrive-operator");
  if (it == metadata.end() || it->second.empty() || it->second.size() > 64) return "unknown";
  std::string name(it->second.data(), it->second.size());
  for (char ch : name) {
    const bool ok = absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                    ch == '-' || ch == '@' || ch == ':';
    if (!ok) return "unknown";
  }
  return name;
}

}  // namespace redrive
