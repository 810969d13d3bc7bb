// W3C trace context (https://www.w3.org/TR/trace-context/) as redrive uses
// it: the traceparent grammar, the trace id that log lines carry, and the
// trace context an OpenTelemetry-instrumented client sends as gRPC metadata
// (`traceparent`, `tracestate`) on Publish / PublishBatch.
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_TRACE_CONTEXT_H_
#define REDRIVE_DAEMON_TRACE_CONTEXT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "redrive/v1/common.pb.h"

namespace redrive {

// The longest tracestate redrive stores (a message's trace.tracestate, or
// the metadata's values joined).
inline constexpr size_t kMaxTracestate = 256;

// Checks a W3C traceparent: "00-<32 hex>-<16 hex>-<2 hex>", lower-case hex,
// version not ff, ids not all zero.
bool IsValidTraceparent(absl::string_view tp);

// The 32-hex trace id of a valid traceparent (a view into `tp`); "" for
// anything else.
absl::string_view TraceIdOf(absl::string_view tp);

// The trace context of a Publish call's metadata.
struct MetadataTrace {
  // Empty when the call sent no usable traceparent.
  v1::TraceContext trace;
  // Why (part of) what the call sent was not used; "" when everything sent
  // was used (or nothing was sent).
  std::string ignored;
};

// Reads the values of the `traceparent` and `tracestate` metadata keys:
//   - no traceparent: nothing;
//   - more than one traceparent, or an invalid one: nothing, `ignored` says
//     why (W3C: such a request starts a new trace);
//   - otherwise the traceparent, and the tracestate values joined with ","
//     (W3C: several tracestate headers are one list) unless the result is
//     longer than kMaxTracestate or holds anything but printable ASCII, in
//     which case the tracestate alone is dropped and `ignored` says why.
MetadataTrace TraceFromMetadata(absl::Span<const absl::string_view> traceparents,
                                absl::Span<const absl::string_view> tracestates);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_TRACE_CONTEXT_H_
