#include "daemon/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace redrive {

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  ListenAddress out;
  out.text = std::string(text);
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "unix:")) {
    absl::ConsumePrefix(&rest, "//");
    if (rest.empty()) return absl::InvalidArgumentError("unix: needs a path");
    out.is_unix = true;
    out.path = std::string(rest);
    return out;
  }
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' has no port"));
  }
  absl::string_view host = rest.substr(0, colon);
  const absl::string_view port = rest.substr(colon + 1);
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]")) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "': unclosed '['"));
    }
  } else if (host.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': write IPv6 addresses as [addr]:port"));
  }
  if (host.empty()) return absl::InvalidArgumentError(absl::StrCat("'", text, "' has no host"));
  uint32_t n = 0;
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(port, &n) || n > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': the port must be a number in 0..65535"));
  }
  out.host = std::string(host);
  out.port = static_cast<int>(n);
  return out;
}

bool IsLoopback(const ListenAddress& address) {
  if (address.is_unix) return true;
  const std::string host = absl::AsciiStrToLower(address.host);
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace redrive

namespace redrive {

std::string ExposureWarning(const ListenAddress& address, bool broker_auth) {
  if (IsLoopback(address)) return "";
  return absl::StrCat("--grpc-listen=", address.text, " is reachable from the network: ",
                      broker_auth ? "Broker calls need the broker token (--broker-auth=token)"
                                  : "the Broker (Publish, Subscribe) is unauthenticated there; use "
                                    "--broker-auth=token, or listen on loopback or a Unix socket");
}

}  // namespace redrive
