// redrive::Worker: runs handler functions over the daemon's Subscribe
// protocol (proto/redrive/v1/broker.proto), on the gRPC callback API.
//
//   redrive::WorkerOptions options;
//   options.target = "unix:/tmp/redrive/redrive.sock";
//   redrive::Worker worker(options);
//   worker.Handle("orders", "billing", [](const redrive::Message& m) -> redrive::Result {
//     if (m.payload().empty()) return redrive::Result::Terminate("empty order");
//     return absl::OkStatus();  // ACK
//   });
//   worker.Start();
//   ...
//   worker.Stop(absl::Seconds(10));
//
// What it does for each Handle() (one Subscribe stream per handler):
//  1. Registers, then runs `fn` for each delivery on the worker's thread
//     pool, never more than the handler's max_in_flight at a time.
//  2. Settles each delivery by what `fn` returned: OK → ACK; an error
//     (Result::Retry, a non-OK absl::Status, or an exception from `fn`) →
//     NACK with its text (and delay, if given); Result::Terminate → TERMINATE
//     (straight to the DLQ). Verbs ready at the same moment travel in one
//     Verbs message; at most one write is outstanding per stream.
//  3. While `fn` runs past half the lease, sends EXTEND every half lease.
//  4. When the stream ends (daemon restart, UNAVAILABLE, drain) reconnects
//     with capped exponential backoff and jitter and registers again. A
//     handler that was running on the old stream finishes, but its verb is
//     dropped with a log line (the daemon retries that delivery): verbs are
//     never sent on another stream than the one their delivery came on.
//  5. On the daemon's drain notice: runs nothing more from that stream,
//     lets running handlers finish and settle within the drain's grace,
//     half-closes, then reconnects (to the daemon that replaces it).
//  6. Stop(grace): sends `stop`, releases deliveries not yet started (NACK,
//     no delay), lets running handlers finish within `grace`, half-closes
//     and waits for the streams to end.
// Stream errors that retrying cannot fix (INVALID_ARGUMENT,
// FAILED_PRECONDITION, UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED,
// NOT_FOUND) stop that handler; WaitReady and status() report them.
//
// Thread-safe. Handle() before Start(); Start() and Stop() once each.
#ifndef REDRIVE_CLIENT_WORKER_H_
#define REDRIVE_CLIENT_WORKER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "redrive/client.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

// One delivery, as the handler sees it. Cheap accessors over the wire
// message (delivery() has every field).
class Message {
 public:
  explicit Message(v1::Delivery delivery)
      : owner_(std::make_shared<const v1::Delivery>(std::move(delivery))),
        d_(static_cast<const v1::Delivery*>(owner_.get())) {}
  // A copy owns a copy of the delivery (it does not keep the batch the
  // delivery was read in); a moved-from Message reads as an empty delivery.
  Message(const Message& other) : Message(other.delivery()) {}
  Message& operator=(const Message& other) {
    if (this != &other) *this = Message(other.delivery());
    return *this;
  }
  Message(Message&& other) noexcept
      : owner_(std::move(other.owner_)),
        d_(std::exchange(other.d_, &v1::Delivery::default_instance())) {}
  Message& operator=(Message&& other) noexcept {
    if (this != &other) {
      owner_ = std::move(other.owner_);
      d_ = std::exchange(other.d_, &v1::Delivery::default_instance());
    }
    return *this;
  }
  ~Message() = default;

  const std::string& payload() const { return d_->payload(); }
  const std::string& content_type() const { return d_->content_type(); }
  const std::string& channel() const { return d_->channel(); }
  // This entry's id, and the main-stream id it first had (they differ for
  // retries, which live in the handler's retry stream).
  const std::string& entry_id() const { return d_->entry_id(); }
  const std::string& original_entry_id() const { return d_->original_entry_id(); }
  // 1 = first attempt; max_attempts 0 = unlimited.
  uint32_t attempt() const { return d_->attempt(); }
  uint32_t max_attempts() const { return d_->max_attempts(); }
  // The previous attempt's error text and code (empty on a first attempt).
  const std::string& previous_error() const { return d_->previous_error(); }
  const std::string& previous_error_code() const { return d_->previous_error_code(); }
  // Application headers, in order.
  std::vector<std::pair<std::string, std::string>> headers() const;
  // The first value of header `key`, or nullopt.
  std::optional<std::string> header(absl::string_view key) const;
  const std::string& correlation_id() const { return d_->correlation_id(); }
  const std::string& traceparent() const { return d_->trace().traceparent(); }
  const std::string& tracestate() const { return d_->trace().tracestate(); }
  absl::Time lease_deadline() const { return absl::FromUnixMillis(d_->lease_deadline_unix_ms()); }
  const v1::Delivery& delivery() const { return *d_; }

 private:
  friend class HandlerRunner;
  // A delivery inside a batch the worker read (a protobuf arena that
  // `owner` keeps alive): no copy per message.
  Message(const v1::Delivery& delivery, std::shared_ptr<const void> owner)
      : owner_(std::move(owner)), d_(&delivery) {}

  std::shared_ptr<const void> owner_;
  const v1::Delivery* d_;
};

// What a handler returns. An absl::Status converts implicitly: OK → Ack,
// an error → Retry(message, no delay, code name).
class Result {
 public:
  enum class Kind { kAck, kRetry, kTerminate };

  Result(const absl::Status& status);  // NOLINT(google-explicit-constructor): by design
  static Result Ack() { return Result(Kind::kAck, "", "", std::nullopt); }
  // NACK: retried after `delay` (nullopt: the handler's backoff policy), or
  // dead-lettered past max retries. `reason` becomes the next attempt's
  // previous_error and the dead letter's error text.
  static Result Retry(std::string reason, std::optional<absl::Duration> delay = std::nullopt,
                      std::string error_code = "") {
    return Result(Kind::kRetry, std::move(reason), std::move(error_code), delay);
  }
  // TERMINATE: failed for good, straight to the dead-letter queue.
  static Result Terminate(std::string reason, std::string error_code = "") {
    return Result(Kind::kTerminate, std::move(reason), std::move(error_code), std::nullopt);
  }

  Kind kind() const { return kind_; }
  const std::string& reason() const { return reason_; }
  const std::string& error_code() const { return error_code_; }
  const std::optional<absl::Duration>& delay() const { return delay_; }

 private:
  Result(Kind kind, std::string reason, std::string error_code, std::optional<absl::Duration> delay)
      : kind_(kind),
        reason_(std::move(reason)),
        error_code_(std::move(error_code)),
        delay_(delay) {}

  Kind kind_;
  std::string reason_;
  std::string error_code_;
  std::optional<absl::Duration> delay_;
};

// A handler. It may throw: an exception NACKs with its what() (code
// "EXCEPTION"). It runs on a pool thread; it may block.
using HandlerFn = std::function<Result(const Message&)>;

struct HandlerOptions {
  // Retries and backoff; nullopt: the daemon's defaults (5 retries from 1 s).
  std::optional<v1::RetryPolicy> retry_policy;
  std::optional<v1::DeadLetterPolicy> dead_letter_policy;
  // Deliveries held (queued or running) at once on this handler's stream,
  // and so the most handler calls running at once. 1..10,000.
  uint32_t max_in_flight = 64;
  // The ack deadline; zero: the daemon's default (30 s). Runs longer than
  // half of it are extended automatically.
  absl::Duration lease = absl::ZeroDuration();
  // Where a new consumer group starts (default: new entries only).
  v1::StartPosition start;
  // Appears in the consumer name (e.g. the pod name).
  std::string consumer_label;
};

struct WorkerOptions {
  // "unix:/path" or "host:port" (any gRPC target).
  std::string target;
  // TLS and bearer token (call_timeout is not used by the stream).
  ClientOptions client;
  // Pool threads shared by the handlers; 0: the sum of the handlers'
  // max_in_flight, at most 256.
  int threads = 0;
  // Reconnect backoff: initial, doubling per failed attempt up to max, each
  // wait drawn uniformly from [d/2, d].
  absl::Duration reconnect_initial = absl::Milliseconds(100);
  absl::Duration reconnect_max = absl::Seconds(5);
  // Log sink (one line, no newline); default: stderr, "redrive worker: ...".
  std::function<void(absl::string_view)> log;
};

// Counters since Start(), for tests and metrics.
struct WorkerStats {
  uint64_t deliveries = 0;
  uint64_t acks = 0;
  uint64_t nacks = 0;
  uint64_t terminates = 0;
  uint64_t extends = 0;
  // Streams registered (the first connection of each handler included).
  uint64_t registrations = 0;
  // Verbs of deliveries from a stream that had ended, dropped.
  uint64_t dropped_verbs = 0;
  // Verb messages written (each holds one or more verbs).
  uint64_t verb_writes = 0;
};

// The wait before reconnect attempt `failures` (0-based): min(max,
// initial * 2^failures), scaled by `unit` in [0, 1) into [d/2, d).
absl::Duration ReconnectDelay(absl::Duration initial, absl::Duration max, int failures,
                              double unit);

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  ~Worker();  // Stop(absl::ZeroDuration()) when still running.
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Adds a handler of `channel` as `handler_id` (the consumer group). Before
  // Start() only; INVALID_ARGUMENT for an empty channel/handler id or
  // max_in_flight out of range, FAILED_PRECONDITION after Start().
  absl::Status Handle(std::string channel, std::string handler_id, HandlerFn fn,
                      HandlerOptions options = {});
  // Opens the streams; does not wait for them (see WaitReady).
  absl::Status Start();
  // Waits until every handler is registered; the first fatal stream error,
  // or DEADLINE_EXCEEDED after `timeout`.
  absl::Status WaitReady(absl::Duration timeout);
  // Graceful stop (see above); returns once every stream ended and every
  // handler call returned (a handler running past `grace` is waited for,
  // its verb dropped).
  void Stop(absl::Duration grace);
  // OK, or the first fatal stream error.
  absl::Status status() const;
  WorkerStats stats() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace redrive

#endif  // REDRIVE_CLIENT_WORKER_H_
