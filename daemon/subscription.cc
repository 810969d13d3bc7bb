#include "daemon/subscription.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace redrive {
namespace {

// Integer fields print as integers ("1000000000", never "1e+09").
absl::Status OutOfRange(absl::string_view field, uint64_t value, uint64_t lo, uint64_t hi) {
  return absl::InvalidArgumentError(
      absl::StrCat("register.", field, " ", value, " is outside ", lo, "..", hi));
}

// For the fractional fields (multiplier, jitter).
absl::Status OutOfRangeReal(absl::string_view field, double value, double lo, double hi) {
  return absl::InvalidArgumentError(
      absl::StrCat("register.", field, " ", value, " is outside ", lo, "..", hi));
}

absl::StatusOr<v1::RetryPolicy> ResolveRetryPolicy(const v1::RetryPolicy& in) {
  v1::RetryPolicy p;
  p.set_unlimited(in.unlimited());
  p.set_max_retries(in.has_max_retries() ? in.max_retries() : kDefaultMaxRetries);
  if (p.max_retries() > kMaxMaxRetries) {
    return OutOfRange("retry_policy.max_retries", p.max_retries(), 0, kMaxMaxRetries);
  }
  if (in.unlimited() && in.has_max_retries()) {
    return absl::InvalidArgumentError(
        "register.retry_policy: max_retries and unlimited are exclusive");
  }
  p.set_initial_backoff_ms(in.has_initial_backoff_ms() ? in.initial_backoff_ms()
                                                       : kDefaultInitialBackoffMs);
  if (p.initial_backoff_ms() > kMaxDurationMs) {
    return OutOfRange("retry_policy.initial_backoff_ms", p.initial_backoff_ms(), 0, kMaxDurationMs);
  }
  p.set_multiplier(in.has_multiplier() ? in.multiplier() : kDefaultMultiplier);
  if (!std::isfinite(p.multiplier()) || p.multiplier() < 1.0 || p.multiplier() > 10.0) {
    return OutOfRangeReal("retry_policy.multiplier", p.multiplier(), 1.0, 10.0);
  }
  p.set_max_backoff_ms(in.has_max_backoff_ms()
                           ? in.max_backoff_ms()
                           : std::max(kDefaultMaxBackoffMs, p.initial_backoff_ms()));
  if (p.max_backoff_ms() < p.initial_backoff_ms() || p.max_backoff_ms() > kMaxDurationMs) {
    return OutOfRange("retry_policy.max_backoff_ms", p.max_backoff_ms(), p.initial_backoff_ms(),
                      kMaxDurationMs);
  }
  p.set_jitter(in.has_jitter() ? in.jitter() : kDefaultJitter);
  if (!std::isfinite(p.jitter()) || p.jitter() < 0.0 || p.jitter() > 1.0) {
    return OutOfRangeReal("retry_policy.jitter", p.jitter(), 0.0, 1.0);
  }
  p.set_defaults_applied(!in.has_max_retries() || !in.has_initial_backoff_ms() ||
                         !in.has_multiplier() || !in.has_max_backoff_ms() || !in.has_jitter());
  return p;
}

absl::Status ValidateLabel(absl::string_view label) {
  if (label.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("register.consumer_label is ", label.size(), " bytes; at most 64"));
  }
  for (char c : label) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          "register.consumer_label has a character outside [A-Za-z0-9._-]");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SubscriptionSpec> ResolveRegistration(const v1::Register& reg, KeyStyle style,
                                                     absl::string_view instance_id) {
  SubscriptionSpec spec;
  if (absl::Status s = ValidateChannel(reg.channel(), "register.channel"); !s.ok()) return s;
  if (absl::Status s = ValidateHandlerId(reg.handler_id(), "register.handler_id"); !s.ok()) {
    return s;
  }
  spec.channel = reg.channel();
  spec.handler_id = reg.handler_id();
  spec.keys = MakeHandlerKeys(spec.channel, spec.handler_id, style);

  spec.max_in_flight = reg.max_in_flight() == 0 ? kDefaultMaxInFlight : reg.max_in_flight();
  if (spec.max_in_flight > kMaxMaxInFlight) {
    return OutOfRange("max_in_flight", reg.max_in_flight(), 1, kMaxMaxInFlight);
  }
  const uint32_t lease_ms = reg.lease_ms() == 0 ? kDefaultLeaseMs : reg.lease_ms();
  if (lease_ms < kMinLeaseMs || lease_ms > kMaxDurationMs) {
    return OutOfRange("lease_ms", reg.lease_ms(), kMinLeaseMs, kMaxDurationMs);
  }
  spec.lease = absl::Milliseconds(lease_ms);

  spec.start = reg.start();
  switch (reg.start().kind()) {
    case v1::StartPosition::START_UNSPECIFIED:
    case v1::StartPosition::START_NEW:
    case v1::StartPosition::START_BACKLOG:
      if (!reg.start().entry_id().empty()) {
        return absl::InvalidArgumentError(
            "register.start.entry_id is only allowed with START_AT_ID");
      }
      if (reg.start().kind() == v1::StartPosition::START_UNSPECIFIED) {
        spec.start.set_kind(v1::StartPosition::START_NEW);
      }
      break;
    case v1::StartPosition::START_AT_ID:
      if (!IsValidEntryId(reg.start().entry_id())) {
        return absl::InvalidArgumentError(absl::StrCat("register.start.entry_id '",
                                                       reg.start().entry_id(),
                                                       "' is not a stream entry id (<ms>-<seq>)"));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("register.start.kind ", reg.start().kind(), " is unknown"));
  }
  if (absl::Status s = ValidateLabel(reg.consumer_label()); !s.ok()) return s;
  spec.consumer_label = reg.consumer_label();
  spec.consumer = ConsumerName(spec.handler_id, instance_id, spec.consumer_label);

  spec.auto_ack = reg.auto_ack();
  if (reg.auto_ack()) {
    if (reg.has_retry_policy()) {
      return absl::InvalidArgumentError(
          "register.auto_ack (at-most-once) cannot be combined with register.retry_policy");
    }
    if (reg.has_dead_letter_policy()) {
      return absl::InvalidArgumentError(
          "register.auto_ack (at-most-once) cannot be combined with "
          "register.dead_letter_policy");
    }
  } else {
    absl::StatusOr<v1::RetryPolicy> policy = ResolveRetryPolicy(reg.retry_policy());
    if (!policy.ok()) return policy.status();
    spec.has_retry_policy = true;
    spec.retry_policy = *std::move(policy);
  }

  const v1::DeadLetterPolicy& dlq = reg.dead_letter_policy();
  if (dlq.max_len() > kMaxDeadLetterCap) {
    return OutOfRange("dead_letter_policy.max_len", dlq.max_len(), 0, kMaxDeadLetterCap);
  }
  if (!v1::DeadLetterPolicy::Overflow_IsValid(dlq.overflow())) {
    return absl::InvalidArgumentError(
        absl::StrCat("register.dead_letter_policy.overflow ", dlq.overflow(), " is unknown"));
  }
  if (dlq.max_len() > 0 && dlq.overflow() == v1::DeadLetterPolicy::OVERFLOW_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "register.dead_letter_policy.max_len needs an explicit overflow policy "
        "(OVERFLOW_EVICT_OLDEST or OVERFLOW_HOLD)");
  }
  if (dlq.max_len() == 0 && dlq.overflow() != v1::DeadLetterPolicy::OVERFLOW_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "register.dead_letter_policy.overflow needs a max_len greater than 0");
  }
  spec.dead_letter_policy = dlq;
  return spec;
}

absl::Status CheckSamePolicy(const SubscriptionSpec& registered, const SubscriptionSpec& incoming) {
  auto differs = [&](absl::string_view field, const auto& mine, const auto& theirs) {
    return absl::FailedPreconditionError(absl::StrCat(
        "register.", field, ": ", mine, " differs from the registered ", theirs, " (handler '",
        registered.handler_id, "' on '", registered.channel,
        "' is registered on this daemon; every registration of a handler must agree)"));
  };
  auto flag = [](bool b) { return b ? "true" : "false"; };
  if (incoming.auto_ack != registered.auto_ack) {
    return differs("auto_ack", flag(incoming.auto_ack), flag(registered.auto_ack));
  }
  const v1::RetryPolicy& a = incoming.retry_policy;
  const v1::RetryPolicy& b = registered.retry_policy;
  if (incoming.has_retry_policy && registered.has_retry_policy) {
    if (a.unlimited() != b.unlimited()) {
      return differs("retry_policy.unlimited", flag(a.unlimited()), flag(b.unlimited()));
    }
    if (!a.unlimited() && a.max_retries() != b.max_retries()) {
      return differs("retry_policy.max_retries", a.max_retries(), b.max_retries());
    }
    if (a.initial_backoff_ms() != b.initial_backoff_ms()) {
      return differs("retry_policy.initial_backoff_ms", a.initial_backoff_ms(),
                     b.initial_backoff_ms());
    }
    if (a.multiplier() != b.multiplier()) {
      return differs("retry_policy.multiplier", a.multiplier(), b.multiplier());
    }
    if (a.max_backoff_ms() != b.max_backoff_ms()) {
      return differs("retry_policy.max_backoff_ms", a.max_backoff_ms(), b.max_backoff_ms());
    }
    if (a.jitter() != b.jitter()) {
      return differs("retry_policy.jitter", a.jitter(), b.jitter());
    }
  }
  const v1::DeadLetterPolicy& da = incoming.dead_letter_policy;
  const v1::DeadLetterPolicy& db = registered.dead_letter_policy;
  if (da.max_len() != db.max_len()) {
    return differs("dead_letter_policy.max_len", da.max_len(), db.max_len());
  }
  if (da.overflow() != db.overflow()) {
    return differs("dead_letter_policy.overflow",
                   v1::DeadLetterPolicy::Overflow_Name(da.overflow()),
                   v1::DeadLetterPolicy::Overflow_Name(db.overflow()));
  }
  return absl::OkStatus();
}

v1::Registered MakeRegistered(const SubscriptionSpec& spec, absl::string_view instance_id) {
  v1::Registered r;
  r.set_channel(spec.channel);
  r.set_handler_id(spec.handler_id);
  if (spec.has_retry_policy) *r.mutable_retry_policy() = spec.retry_policy;
  *r.mutable_dead_letter_policy() = spec.dead_letter_policy;
  r.set_max_in_flight(spec.max_in_flight);
  r.set_lease_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(spec.lease)));
  *r.mutable_start() = spec.start;
  r.set_auto_ack(spec.auto_ack);
  v1::RedisNames* n = r.mutable_names();
  n->set_stream(spec.keys.stream);
  n->set_group(spec.keys.group);
  n->set_retry_stream(spec.keys.retry_stream);
  n->set_retry_group(spec.keys.retry_group);
  n->set_dlq_stream(spec.keys.dlq_stream);
  n->set_consumer(spec.consumer);
  r.set_instance_id(std::string(instance_id));
  return r;
}

std::string GroupStartId(const v1::StartPosition& start) {
  switch (start.kind()) {
    case v1::StartPosition::START_BACKLOG:
      return "0";
    case v1::StartPosition::START_AT_ID:
      return start.entry_id();
    default:
      return "$";
  }
}

}  // namespace redrive
