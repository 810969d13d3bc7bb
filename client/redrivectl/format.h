// redrivectl output: aligned tables and key/value blocks for people, one line
// of JSON per message for scripts.
//
// JSON is google::protobuf::util::MessageToJsonString with proto field names
// (entry_id, not entryId), fields at their default values included, enums by
// name; 64-bit integers are strings, bytes are base64 (the proto3 JSON
// mapping, as grpcurl prints them).
//
// Times are printed in UTC, RFC 3339 with milliseconds; a zero time or
// duration is "-". Payload bytes and other free text are escaped to one line
// (EscapeForLine).
//
// Thread-safe (pure functions).
#ifndef REDRIVE_CLIENT_REDRIVECTL_FORMAT_H_
#define REDRIVE_CLIENT_REDRIVECTL_FORMAT_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "redrive/v1/admin.pb.h"
#include "redrive/v1/broker.pb.h"

namespace redrive::ctl {

// Columns separated by two spaces, padded to the widest cell (in UTF-8 code
// points); the last column is not padded. Every line ends in '\n'.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void AddRow(std::vector<std::string> row);
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// One line of JSON for `message`, without a trailing newline.
std::string ToJson(const google::protobuf::Message& message);

// Printable ASCII and valid UTF-8 unchanged; backslash, \n, \r, \t as C
// escapes; other control bytes and invalid UTF-8 as \xNN.
std::string EscapeForLine(absl::string_view bytes);
// "2024-05-01T12:00:00.000Z"; "-" for 0.
std::string FormatUnixMs(int64_t unix_ms);
// "1h2m3s", "450ms"; "-" for 0 or less.
std::string FormatDurationMs(int64_t ms);
// "NOT_FOUND" etc. for a gRPC status code number.
std::string StatusCodeName(int code);
// "redrivectl: CODE_NAME: message\n".
std::string FormatError(const absl::Status& status);

std::string FormatHandlers(const v1::ListHandlersResponse& response);
std::string FormatHandler(const v1::HandlerInfo& handler);
std::string FormatDeadLetters(const v1::ListDeadLettersResponse& response);
std::string FormatDeadLetter(const v1::DeadLetter& dead_letter);
std::string FormatCount(const v1::CountDeadLettersResponse& response);
std::string FormatJob(const v1::RedriveJob& job);
// One progress line for `dlq redrive --wait` (stderr).
std::string FormatJobProgress(const v1::RedriveJob& job);
std::string FormatRedrive(const v1::RedriveDeadLettersResponse& response);
std::string FormatDelete(const v1::DeleteDeadLettersResponse& response);
std::string FormatPurge(const v1::PurgeDeadLettersResponse& response);
std::string FormatDeleteHandler(const v1::DeleteHandlerResponse& response);
std::string FormatMigrate(const v1::MigrateLegacyKeysResponse& response);
std::string FormatPublish(const v1::PublishResponse& response);
// "ENTRY_ID attempt=N headers={k=v, k2=v2} PAYLOAD\n" (tail).
std::string FormatDelivery(const v1::Delivery& delivery);

std::string TargetName(const v1::RedriveTarget& target);

}  // namespace redrive::ctl

#endif  // REDRIVE_CLIENT_REDRIVECTL_FORMAT_H_
