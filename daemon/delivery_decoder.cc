#include "daemon/delivery_decoder.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "daemon/retry_fields.h"
#include "daemon/retry_metadata.h"

namespace redrive {

absl::StatusOr<DecodedDelivery> DecodeDelivery(const StreamEntry& entry, bool lenient) {
  DecodedDelivery out;
  if (absl::Status s = DecodeDeliveryInto(entry, lenient, out); !s.ok()) return s;
  return out;
}

absl::Status DecodeDeliveryInto(const StreamEntry& entry, bool lenient, DecodedDelivery& out) {
  out.message.Clear();
  out.attempt = 1;
  out.unreadable.clear();
  absl::StatusOr<RetryState> state = ReadRetryState(entry);
  if (!state.ok()) {
    if (IsPoison(state.status()) && !lenient) return state.status();
    out.unreadable = std::string(state.status().message());
    (void)FillMessage(WithoutRedriveFields(entry), out.message);
    return absl::OkStatus();
  }
  v1::Delivery& message = out.message;
  FillMessage(std::move(state->decoded), message);
  if (state->retry_count > 0 || !state->original_id.empty()) {
    if (std::optional<std::string> body = StripRetryMetadataKeys(message.payload())) {
      message.set_payload(*std::move(body));
    }
  }
  out.attempt = static_cast<uint32_t>(std::min<int64_t>(state->retry_count + 1, UINT32_MAX));
  if (!state->original_id.empty()) message.set_original_entry_id(state->original_id);
  message.set_previous_error(state->last_error);
  message.set_previous_error_code(state->last_error_code);
  return absl::OkStatus();
}

}  // namespace redrive
