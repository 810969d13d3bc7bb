// libFuzzer entry point for the `__data__` codec (daemon/envelope.h).
//
// Build with clang: -fsanitize=fuzzer,address,undefined. Besides "no crash",
// it checks the codec's contracts on every input:
//   - DecodeDataValue returns only OK, DataLoss or Unimplemented;
//   - a successful binary decode re-encodes, and the re-encoding decodes back
//     to the same headers and body without needing character-count recovery;
//   - a whole-entry decode of {"__data__": input} agrees with DecodeDataValue.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "daemon/envelope.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  // The strict decoders on their own must never crash.
  (void)redrive::DecodeBinaryV1(input);
  (void)redrive::DecodeLegacyJson(input);

  const absl::StatusOr<redrive::DecodedEntry> decoded = redrive::DecodeDataValue(input);
  if (!decoded.ok()) {
    const absl::StatusCode code = decoded.status().code();
    Check(code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kUnimplemented);
  } else if (decoded->format == redrive::EntryFormat::kBinaryV1) {
    const absl::StatusOr<std::string> reencoded =
        redrive::EncodeBinaryV1(decoded->headers, decoded->body);
    // Recovered character-count headers may exceed 65535 bytes; anything
    // else that decoded must re-encode.
    Check(reencoded.ok() || decoded->recovered_char_length_headers);
    if (reencoded.ok()) {
      const absl::StatusOr<redrive::DecodedEntry> again = redrive::DecodeBinaryV1(*reencoded);
      Check(again.ok() && !again->recovered_char_length_headers &&
            again->headers == decoded->headers && again->body == decoded->body);
    }
  } else if (decoded->format == redrive::EntryFormat::kRaw) {
    Check(decoded->headers.empty() && decoded->body == input);
  }

  if (!input.empty()) {
    const absl::StatusOr<redrive::DecodedEntry> entry =
        redrive::DecodeStreamEntry({{"__data__", std::string(input)}});
    Check(entry.status().code() == decoded.status().code());
    if (entry.ok() && decoded.ok()) {
      Check(entry->format == decoded->format && entry->headers == decoded->headers &&
            entry->body == decoded->body);
    }
  }
  return 0;
}
