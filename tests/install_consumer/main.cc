// Uses the installed client with no daemon: builds a client and a request
// (generated redrive.v1 code), publishes to a Unix socket that does not exist
// and prints what came back.
#include <iostream>

#include "redrive/client.h"
#include "redrive/v1/broker.pb.h"

int main() {
  redrive::ClientOptions options;
  options.call_timeout = absl::Seconds(5);
  std::unique_ptr<redrive::Client> client =
      redrive::Client::Connect("unix:/nonexistent/redrive.sock", options);
  redrive::v1::PublishRequest request;
  request.set_channel("orders");
  request.mutable_message()->set_payload("{\"id\":1}");
  const absl::StatusOr<redrive::v1::PublishResponse> response = client->Publish(request);
  std::cout << "redrive client: publish of " << request.ByteSizeLong()
            << " request bytes without a daemon: "
            << absl::StatusCodeToString(response.status().code()) << "\n";
  return response.status().code() == absl::StatusCode::kUnavailable ? 0 : 1;
}
