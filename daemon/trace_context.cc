#include "daemon/trace_context.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace redrive {
namespace {

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(absl::string_view s) { return s.find_first_not_of('0') == absl::string_view::npos; }

bool IsPrintableAscii(absl::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

}  // namespace

bool IsValidTraceparent(absl::string_view tp) {
  // version(2) - trace-id(32) - parent-id(16) - flags(2)
  if (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return false;
  const absl::string_view version = tp.substr(0, 2);
  const absl::string_view trace_id = tp.substr(3, 32);
  const absl::string_view parent_id = tp.substr(36, 16);
  const absl::string_view flags = tp.substr(53, 2);
  return IsLowerHex(version) && version != "ff" && IsLowerHex(trace_id) && !AllZero(trace_id) &&
         IsLowerHex(parent_id) && !AllZero(parent_id) && IsLowerHex(flags);
}

absl::string_view TraceIdOf(absl::string_view tp) {
  if (!IsValidTraceparent(tp)) return {};
  return tp.substr(3, 32);
}

MetadataTrace TraceFromMetadata(absl::Span<const absl::string_view> traceparents,
                                absl::Span<const absl::string_view> tracestates) {
  MetadataTrace out;
  if (traceparents.empty()) return out;
  if (traceparents.size() > 1) {
    out.ignored = absl::StrCat("the call sent ", traceparents.size(), " traceparent values");
    return out;
  }
  if (!IsValidTraceparent(traceparents[0])) {
    out.ignored = "the call's traceparent is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)";
    return out;
  }
  out.trace.set_traceparent(std::string(traceparents[0]));
  if (tracestates.empty()) return out;
  std::string tracestate = absl::StrJoin(tracestates, ",");
  if (tracestate.size() > kMaxTracestate) {
    out.ignored = absl::StrCat("the call's tracestate is ", tracestate.size(), " bytes; at most ",
                               kMaxTracestate, " are kept");
  } else if (!IsPrintableAscii(tracestate)) {
    out.ignored = "the call's tracestate is not printable ASCII";
  } else {
    out.trace.set_tracestate(std::move(tracestate));
  }
  return out;
}

}  // namespace redrive
