#include "redrive/worker.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <exception>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "redrive/v1/broker.grpc.pb.h"
#include "thread_pool.h"

namespace redrive {
namespace {

constexpr int kMaxVerbsPerMessage = 10000;
constexpr size_t kMaxReasonBytes = 4096;
constexpr size_t kMaxErrorCodeBytes = 128;
constexpr int64_t kMaxDelayMs = 86400000;
// How often leases and reconnects are looked at.
constexpr absl::Duration kTick = absl::Milliseconds(20);

bool Fatal(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::NOT_FOUND:
      return true;
    default:
      return false;
  }
}

std::string Truncated(const std::string& s, size_t max) {
  return s.size() <= max ? s : s.substr(0, max);
}

v1::Verb VerbFor(uint64_t delivery_id, const Result& result) {
  v1::Verb verb;
  verb.set_delivery_id(delivery_id);
  switch (result.kind()) {
    case Result::Kind::kAck:
      verb.mutable_ack();
      break;
    case Result::Kind::kRetry: {
      v1::Nack* nack = verb.mutable_nack();
      nack->set_reason(Truncated(result.reason(), kMaxReasonBytes));
      nack->set_error_code(Truncated(result.error_code(), kMaxErrorCodeBytes));
      if (result.delay().has_value()) {
        nack->set_delay_ms(static_cast<uint32_t>(
            std::clamp<int64_t>(absl::ToInt64Milliseconds(*result.delay()), 0, kMaxDelayMs)));
      }
      break;
    }
    case Result::Kind::kTerminate:
      verb.mutable_terminate()->set_reason(Truncated(result.reason(), kMaxReasonBytes));
      verb.mutable_terminate()->set_error_code(Truncated(result.error_code(), kMaxErrorCodeBytes));
      break;
  }
  return verb;
}

const char* VerbName(const v1::Verb& verb) {
  switch (verb.action_case()) {
    case v1::Verb::kAck:
      return "ACK";
    case v1::Verb::kNack:
      return "NACK";
    case v1::Verb::kExtend:
      return "EXTEND";
    case v1::Verb::kTerminate:
      return "TERMINATE";
    default:
      return "verb";
  }
}

}  // namespace

// ------------------------------------------------------------------ Message

std::vector<std::pair<std::string, std::string>> Message::headers() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(d_.headers_size());
  for (const v1::Header& h : d_.headers()) out.emplace_back(h.key(), h.value());
  return out;
}

std::optional<std::string> Message::header(absl::string_view key) const {
  for (const v1::Header& h : d_.headers()) {
    if (h.key() == key) return h.value();
  }
  return std::nullopt;
}

Result::Result(const absl::Status& status)
    : kind_(status.ok() ? Kind::kAck : Kind::kRetry),
      reason_(status.message()),
      error_code_(status.ok() ? "" : absl::StatusCodeToString(status.code())) {}

absl::Duration ReconnectDelay(absl::Duration initial, absl::Duration max, int failures,
                              double unit) {
  absl::Duration d = initial;
  for (int i = 0; i < failures && d < max; ++i) d *= 2;
  d = std::min(d, max);
  return d / 2 + (d / 2) * std::clamp(unit, 0.0, 1.0);
}

// ------------------------------------------------------------------ internals

class HandlerRunner;

// Counters shared by the handlers of one worker.
struct Counters {
  std::atomic<uint64_t> deliveries{0};
  std::atomic<uint64_t> acks{0};
  std::atomic<uint64_t> nacks{0};
  std::atomic<uint64_t> terminates{0};
  std::atomic<uint64_t> extends{0};
  std::atomic<uint64_t> registrations{0};
  std::atomic<uint64_t> dropped_verbs{0};
  std::atomic<uint64_t> verb_writes{0};
};

// One Subscribe call (callback API). Deletes itself in OnDone. Verbs queued
// while a write is outstanding go out together in the next write. A hold
// keeps OnDone away until the read side has ended and the runner has
// detached the stream, so the runner never calls into a finished call.
//
// Thread-safe.
class SubscribeStream final
    : public grpc::ClientBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse> {
 public:
  SubscribeStream(HandlerRunner& runner, Counters& counters, const v1::Register& reg)
      : runner_(runner), counters_(counters), context_(std::make_shared<grpc::ClientContext>()) {
    *first_.mutable_register_() = reg;
  }

  // Starts the call; the register message is its first write.
  void Start(v1::Broker::Stub& stub, const Client& client) {
    client.AddCallCredentials(*context_);
    stub.async()->Subscribe(context_.get(), this);
    StartWrite(&first_);
    StartRead(&response_);
    AddHold();
    StartCall();
  }

  const std::shared_ptr<grpc::ClientContext>& context() const { return context_; }

  void Enqueue(v1::Verb verb) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      pending_.push_back(std::move(verb));
    }
    MaybeWrite();
  }
  // Sends `stop` after the verbs queued before it.
  void SendStop() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      stop_wanted_ = true;
    }
    MaybeWrite();
  }
  // Half-closes after everything queued has been written.
  void CloseWrites() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      close_wanted_ = true;
    }
    MaybeWrite();
  }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) broken_ = true;
    }
    MaybeWrite();
  }
  void OnDone(const grpc::Status& status) override;

 private:
  // Starts the next write (verbs, then stop, then the half-close) when none
  // is outstanding. gRPC may run a reaction inline from a Start* call, so
  // those are made without mu_ held.
  void MaybeWrite() ABSL_LOCKS_EXCLUDED(mu_) {
    enum { kNone, kWrite, kWritesDone } what = kNone;
    {
      absl::MutexLock lock(&mu_);
      if (write_in_flight_ || broken_ || writes_done_) return;
      if (!pending_.empty()) {
        writing_.Clear();
        v1::Verbs* verbs = writing_.mutable_verbs();
        const size_t n = std::min<size_t>(pending_.size(), kMaxVerbsPerMessage);
        for (size_t i = 0; i < n; ++i) *verbs->add_verbs() = std::move(pending_[i]);
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
        what = kWrite;
        counters_.verb_writes.fetch_add(1, std::memory_order_relaxed);
      } else if (stop_wanted_ && !stop_sent_) {
        writing_.Clear();
        writing_.mutable_stop();
        stop_sent_ = true;
        what = kWrite;
      } else if (close_wanted_) {
        writes_done_ = true;
        what = kWritesDone;
      }
      if (what == kWrite) write_in_flight_ = true;
    }
    // writing_ is not touched again until OnWriteDone clears write_in_flight_.
    if (what == kWrite) StartWrite(&writing_);
    if (what == kWritesDone) StartWritesDone();
  }

  HandlerRunner& runner_;
  Counters& counters_;
  // Shared so that Stop can cancel a call that may be finishing.
  const std::shared_ptr<grpc::ClientContext> context_;
  v1::SubscribeRequest first_;
  // Only the reaction thread of the outstanding read touches it.
  v1::SubscribeResponse response_;

  absl::Mutex mu_;
  v1::SubscribeRequest writing_;                      // owned by the outstanding write
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = true;  // the register message
  std::vector<v1::Verb> pending_ ABSL_GUARDED_BY(mu_);
  bool stop_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool close_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
};

// One Handle(): its registration, its current stream, the deliveries it
// holds and runs, lease extension and reconnects.
//
// Thread-safe. Lock order: mu_, then a SubscribeStream's mu_ (never the
// other way: streams call in without their lock held).
class HandlerRunner {
 public:
  struct Settings {
    v1::Register reg;
    HandlerFn fn;
    uint32_t max_in_flight;
  };

  HandlerRunner(Settings settings, Worker::Impl& worker);

  // Opens a stream now.
  void Connect() ABSL_LOCKS_EXCLUDED(mu_);
  // Lease extensions and a due reconnect.
  void Tick(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // From the stream.
  void OnRegistered(SubscribeStream* stream, const v1::Registered& registered)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnDeliveries(SubscribeStream* stream, v1::Deliveries deliveries) ABSL_LOCKS_EXCLUDED(mu_);
  void OnNotices(SubscribeStream* stream, const v1::Notices& notices) ABSL_LOCKS_EXCLUDED(mu_);
  void OnDrain(SubscribeStream* stream, const v1::Drain& drain) ABSL_LOCKS_EXCLUDED(mu_);
  void Detach(SubscribeStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStreamDone(SubscribeStream* stream, const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  // Stop, in steps (Worker::Stop).
  void BeginStop() ABSL_LOCKS_EXCLUDED(mu_);
  bool AwaitIdle(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  void CloseWrites() ABSL_LOCKS_EXCLUDED(mu_);
  bool AwaitStreamsDone(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  void CancelStreams() ABSL_LOCKS_EXCLUDED(mu_);

  bool ever_registered() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return ever_registered_;
  }
  absl::Status fatal() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return fatal_;
  }
  uint32_t max_in_flight() const { return settings_.max_in_flight; }

 private:
  struct Task {
    uint64_t generation;
    absl::Time received;
    v1::Delivery delivery;
  };

  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(Task task) ABSL_LOCKS_EXCLUDED(mu_);
  void Finished(uint64_t generation, uint64_t delivery_id, const Result& result)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SendLocked(v1::Verb verb) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DetachLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Log(absl::string_view line) const;
  std::string Name() const {
    return absl::StrCat(settings_.reg.channel(), "/", settings_.reg.handler_id());
  }

  const Settings settings_;
  Worker::Impl& worker_;

  mutable absl::Mutex mu_;
  // The stream verbs go to; null between streams.
  SubscribeStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Bumped per stream; tasks carry the generation they came on.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  bool ever_registered_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration lease_ ABSL_GUARDED_BY(mu_) = absl::Seconds(30);
  // Calls not yet OnDone (a stream outlives its detachment a little).
  std::map<SubscribeStream*, std::shared_ptr<grpc::ClientContext>> live_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  // Handler calls running, of every generation.
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  // Running calls of the current stream: delivery id → when the lease was
  // last renewed (delivery or EXTEND).
  absl::flat_hash_map<uint64_t, absl::Time> renewed_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time reconnect_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};
};

class Worker::Impl {
 public:
  explicit Impl(WorkerOptions options)
      : options_(std::move(options)), client_(Client::Connect(options_.target, options_.client)) {
    if (!options_.log) {
      options_.log = [](absl::string_view line) {
        std::cerr << "redrive worker: " << line << "\n";
      };
    }
  }

  absl::Status Handle(std::string channel, std::string handler_id, HandlerFn fn,
                      HandlerOptions options) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WaitReady(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  void Stop(absl::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status status() const ABSL_LOCKS_EXCLUDED(mu_);

  void Log(absl::string_view line) const { options_.log(line); }
  client_internal::ThreadPool& pool() { return *pool_; }
  Client& client() { return *client_; }
  Counters& counters() { return counters_; }
  const WorkerOptions& options() const { return options_; }

 private:
  void TickLoop() ABSL_LOCKS_EXCLUDED(mu_);

  WorkerOptions options_;
  const std::unique_ptr<Client> client_;
  Counters counters_;

  mutable absl::Mutex mu_;
  enum class State { kNew, kRunning, kStopped };
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  // Fixed once Start() ran; the pool and ticker exist from Start() to Stop().
  std::vector<std::unique_ptr<HandlerRunner>> runners_;
  std::unique_ptr<client_internal::ThreadPool> pool_;
  std::thread ticker_;
  bool ticker_done_ ABSL_GUARDED_BY(mu_) = false;
};

// ------------------------------------------------------------------ SubscribeStream

void SubscribeStream::OnReadDone(bool ok) {
  if (!ok) {
    runner_.Detach(this);
    RemoveHold();
    return;
  }
  switch (response_.kind_case()) {
    case v1::SubscribeResponse::kRegistered:
      runner_.OnRegistered(this, response_.registered());
      break;
    case v1::SubscribeResponse::kDeliveries:
      runner_.OnDeliveries(this, std::move(*response_.mutable_deliveries()));
      break;
    case v1::SubscribeResponse::kNotices:
      runner_.OnNotices(this, response_.notices());
      break;
    case v1::SubscribeResponse::kDrain:
      runner_.OnDrain(this, response_.drain());
      break;
    default:
      break;
  }
  response_.Clear();
  StartRead(&response_);
}

void SubscribeStream::OnDone(const grpc::Status& status) {
  runner_.OnStreamDone(this, status);
  delete this;
}

// ------------------------------------------------------------------ HandlerRunner

HandlerRunner::HandlerRunner(Settings settings, Worker::Impl& worker)
    : settings_(std::move(settings)), worker_(worker) {}

void HandlerRunner::Log(absl::string_view line) const {
  worker_.Log(absl::StrCat(Name(), ": ", line));
}

void HandlerRunner::Connect() {
  SubscribeStream* stream = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || stream_ != nullptr) return;
    stream = new SubscribeStream(*this, worker_.counters(), settings_.reg);
    ++generation_;
    stream_ = stream;
    registered_ = false;
    draining_ = false;
    reconnect_at_ = absl::InfiniteFuture();
    live_[stream] = stream->context();
  }
  // Held (AddHold in Start) until its read side ends, so `stream` is alive.
  stream->Start(worker_.client().broker(), worker_.client());
}

void HandlerRunner::OnRegistered(SubscribeStream* stream, const v1::Registered& registered) {
  absl::MutexLock lock(&mu_);
  if (stream != stream_) return;
  registered_ = true;
  ever_registered_ = true;
  failures_ = 0;
  if (registered.lease_ms() > 0) lease_ = absl::Milliseconds(registered.lease_ms());
  worker_.counters().registrations.fetch_add(1, std::memory_order_relaxed);
  Log(absl::StrCat("registered as consumer ", registered.names().consumer(), " (lease ",
                   registered.lease_ms(), " ms, max_in_flight ", registered.max_in_flight(), ")"));
}

void HandlerRunner::OnDeliveries(SubscribeStream* stream, v1::Deliveries deliveries) {
  absl::MutexLock lock(&mu_);
  if (stream != stream_) return;
  const absl::Time now = absl::Now();
  worker_.counters().deliveries.fetch_add(deliveries.deliveries_size(), std::memory_order_relaxed);
  for (v1::Delivery& d : *deliveries.mutable_deliveries()) {
    if (stopping_) {
      // Sent before the daemon saw our stop: give it back at once.
      SendLocked(VerbFor(d.delivery_id(), Result::Retry("released: the worker is stopping",
                                                        absl::ZeroDuration(), "STOPPING")));
    } else if (!draining_) {
      queue_.push_back(Task{generation_, now, std::move(d)});
    }
    // Draining: not run; the daemon hands it to the next owner.
  }
  DispatchLocked();
}

void HandlerRunner::OnNotices(SubscribeStream* stream, const v1::Notices& notices) {
  absl::MutexLock lock(&mu_);
  if (stream != stream_) return;
  for (const v1::Notice& n : notices.notices()) {
    Log(absl::StrCat("notice for delivery ", n.delivery_id(), ": ", v1::Notice::Code_Name(n.code()),
                     " ", n.message()));
  }
}

void HandlerRunner::OnDrain(SubscribeStream* stream, const v1::Drain& drain) {
  absl::MutexLock lock(&mu_);
  if (stream != stream_) return;
  Log(absl::StrCat("daemon draining (", drain.reason(), ", grace ", drain.grace_ms(),
                   " ms): finishing ", renewed_.size(), " running, not starting ", queue_.size()));
  draining_ = true;
  queue_.clear();
  if (renewed_.empty()) stream_->CloseWrites();
}

void HandlerRunner::DetachLocked() {
  if (stream_ == nullptr) return;
  stream_ = nullptr;
  registered_ = false;
  draining_ = false;
  // Queued deliveries are the daemon's again; running ones finish, and
  // their verbs are dropped (Finished).
  queue_.clear();
  renewed_.clear();
}

void HandlerRunner::Detach(SubscribeStream* stream) {
  absl::MutexLock lock(&mu_);
  if (stream == stream_) DetachLocked();
}

void HandlerRunner::OnStreamDone(SubscribeStream* stream, const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (stream == stream_) DetachLocked();
  live_.erase(stream);
  if (stopping_) return;
  if (Fatal(status.error_code())) {
    if (fatal_.ok()) fatal_ = FromGrpcStatus(status);
    Log(absl::StrCat("stream failed for good: ", fatal_.ToString()));
    return;
  }
  const absl::Duration delay =
      ReconnectDelay(worker_.options().reconnect_initial, worker_.options().reconnect_max,
                     failures_++, std::uniform_real_distribution<double>(0.0, 1.0)(rng_));
  reconnect_at_ = absl::Now() + delay;
  Log(absl::StrCat("stream ended (", FromGrpcStatus(status).ToString(), "); reconnecting in ",
                   absl::FormatDuration(delay)));
}

void HandlerRunner::DispatchLocked() {
  while (!queue_.empty() && running_ < static_cast<int>(settings_.max_in_flight) && !stopping_) {
    Task task = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    renewed_[task.delivery.delivery_id()] = task.received;
    worker_.pool().Schedule([this, task = std::move(task)]() mutable { Run(std::move(task)); });
  }
}

void HandlerRunner::Run(Task task) {
  const uint64_t id = task.delivery.delivery_id();
  const Message message(std::move(task.delivery));
  Result result = Result::Ack();
  try {
    result = settings_.fn(message);
  } catch (const std::exception& e) {
    result = Result::Retry(e.what(), std::nullopt, "EXCEPTION");
  } catch (...) {
    result = Result::Retry("unknown exception", std::nullopt, "EXCEPTION");
  }
  Finished(task.generation, id, result);
}

void HandlerRunner::SendLocked(v1::Verb verb) {
  Counters& c = worker_.counters();
  switch (verb.action_case()) {
    case v1::Verb::kAck:
      c.acks.fetch_add(1, std::memory_order_relaxed);
      break;
    case v1::Verb::kNack:
      c.nacks.fetch_add(1, std::memory_order_relaxed);
      break;
    case v1::Verb::kExtend:
      c.extends.fetch_add(1, std::memory_order_relaxed);
      break;
    default:
      c.terminates.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  stream_->Enqueue(std::move(verb));
}

void HandlerRunner::Finished(uint64_t generation, uint64_t delivery_id, const Result& result) {
  absl::MutexLock lock(&mu_);
  --running_;
  v1::Verb verb = VerbFor(delivery_id, result);
  if (generation == generation_ && stream_ != nullptr) {
    renewed_.erase(delivery_id);
    SendLocked(std::move(verb));
    if (draining_ && renewed_.empty()) stream_->CloseWrites();
  } else {
    worker_.counters().dropped_verbs.fetch_add(1, std::memory_order_relaxed);
    Log(absl::StrCat("dropping ", VerbName(verb), " of delivery ", delivery_id,
                     ": its stream has ended (the daemon redelivers it)"));
  }
  DispatchLocked();
}

void HandlerRunner::Tick(absl::Time now) {
  bool connect = false;
  {
    absl::MutexLock lock(&mu_);
    if (stream_ == nullptr) {
      connect = !stopping_ && fatal_.ok() && now >= reconnect_at_;
    } else if (registered_ && !renewed_.empty()) {
      const absl::Duration half = lease_ / 2;
      for (auto& [id, renewed] : renewed_) {
        if (now - renewed < half) continue;
        renewed = now;
        v1::Verb verb;
        verb.set_delivery_id(id);
        verb.mutable_extend();  // 0: the registration's lease
        SendLocked(std::move(verb));
      }
    }
  }
  if (connect) Connect();
}

void HandlerRunner::BeginStop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  reconnect_at_ = absl::InfiniteFuture();
  if (stream_ == nullptr) return;
  for (const Task& t : queue_) {
    SendLocked(VerbFor(t.delivery.delivery_id(), Result::Retry("released: the worker is stopping",
                                                               absl::ZeroDuration(), "STOPPING")));
  }
  queue_.clear();
  stream_->SendStop();
}

bool HandlerRunner::AwaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      absl::Condition(
          +[](HandlerRunner* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) { return r->running_ == 0; },
          this),
      deadline);
}

void HandlerRunner::CloseWrites() {
  absl::MutexLock lock(&mu_);
  if (stream_ != nullptr) stream_->CloseWrites();
}

bool HandlerRunner::AwaitStreamsDone(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      absl::Condition(
          +[](HandlerRunner* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) { return r->live_.empty(); },
          this),
      deadline);
}

void HandlerRunner::CancelStreams() {
  std::vector<std::shared_ptr<grpc::ClientContext>> contexts;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [stream, context] : live_) contexts.push_back(context);
  }
  // Outside mu_: cancelling may run the stream's reactions inline. The
  // context outlives its call's end, so cancelling a finished call is safe.
  for (const auto& context : contexts) context->TryCancel();
}

// ------------------------------------------------------------------ Worker::Impl

absl::Status Worker::Impl::Handle(std::string channel, std::string handler_id, HandlerFn fn,
                                  HandlerOptions options) {
  if (channel.empty()) return absl::InvalidArgumentError("Handle: empty channel");
  if (handler_id.empty()) return absl::InvalidArgumentError("Handle: empty handler id");
  if (!fn) return absl::InvalidArgumentError("Handle: no handler function");
  if (options.max_in_flight < 1 || options.max_in_flight > 10000) {
    return absl::InvalidArgumentError(
        absl::StrCat("Handle: max_in_flight ", options.max_in_flight, " is not in 1..10000"));
  }
  absl::MutexLock lock(&mu_);
  if (state_ != State::kNew) return absl::FailedPreconditionError("Handle: after Start()");
  HandlerRunner::Settings s;
  s.reg.set_channel(std::move(channel));
  s.reg.set_handler_id(std::move(handler_id));
  if (options.retry_policy.has_value()) *s.reg.mutable_retry_policy() = *options.retry_policy;
  if (options.dead_letter_policy.has_value()) {
    *s.reg.mutable_dead_letter_policy() = *options.dead_letter_policy;
  }
  s.reg.set_max_in_flight(options.max_in_flight);
  s.reg.set_lease_ms(static_cast<uint32_t>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(options.lease), 0, kMaxDelayMs)));
  *s.reg.mutable_start() = options.start;
  s.reg.set_consumer_label(options.consumer_label);
  s.fn = std::move(fn);
  s.max_in_flight = options.max_in_flight;
  runners_.push_back(std::make_unique<HandlerRunner>(std::move(s), *this));
  return absl::OkStatus();
}

absl::Status Worker::Impl::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kNew) return absl::FailedPreconditionError("Start: called twice");
    if (runners_.empty()) return absl::FailedPreconditionError("Start: no handler");
    state_ = State::kRunning;
  }
  int threads = options_.threads;
  if (threads <= 0) {
    int64_t sum = 0;
    for (const auto& r : runners_) sum += r->max_in_flight();
    threads = static_cast<int>(std::min<int64_t>(sum, 256));
  }
  pool_ = std::make_unique<client_internal::ThreadPool>(threads);
  for (const auto& r : runners_) r->Connect();
  ticker_ = std::thread([this] { TickLoop(); });
  return absl::OkStatus();
}

void Worker::Impl::TickLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&ticker_done_), kTick);
      if (ticker_done_) return;
    }
    const absl::Time now = absl::Now();
    for (const auto& r : runners_) r->Tick(now);
  }
}

absl::Status Worker::Impl::WaitReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    bool all = true;
    for (const auto& r : runners_) {
      absl::Status fatal = r->fatal();
      if (!fatal.ok()) return fatal;
      all = all && r->ever_registered();
    }
    if (all) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("not every handler registered within ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

void Worker::Impl::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kRunning) {
      state_ = State::kStopped;
      return;
    }
    state_ = State::kStopped;
  }
  const absl::Time deadline = absl::Now() + grace;
  for (const auto& r : runners_) r->BeginStop();
  bool idle = true;
  for (const auto& r : runners_) idle = r->AwaitIdle(deadline) && idle;
  if (!idle) Log("stop: handlers still running after the grace; their verbs will be dropped");
  for (const auto& r : runners_) r->CloseWrites();
  // The daemon ends a half-closed stream once it has read the verbs.
  const absl::Time close_deadline = std::max(deadline, absl::Now() + absl::Seconds(2));
  for (const auto& r : runners_) {
    if (!r->AwaitStreamsDone(close_deadline)) r->CancelStreams();
  }
  for (const auto& r : runners_) r->AwaitStreamsDone(absl::InfiniteFuture());
  {
    absl::MutexLock lock(&mu_);
    ticker_done_ = true;
  }
  ticker_.join();
  pool_.reset();  // waits for handlers still running
}

absl::Status Worker::Impl::status() const {
  for (const auto& r : runners_) {
    absl::Status fatal = r->fatal();
    if (!fatal.ok()) return fatal;
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ Worker

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Worker::~Worker() { impl_->Stop(absl::ZeroDuration()); }

absl::Status Worker::Handle(std::string channel, std::string handler_id, HandlerFn fn,
                            HandlerOptions options) {
  return impl_->Handle(std::move(channel), std::move(handler_id), std::move(fn),
                       std::move(options));
}

absl::Status Worker::Start() { return impl_->Start(); }

absl::Status Worker::WaitReady(absl::Duration timeout) { return impl_->WaitReady(timeout); }

void Worker::Stop(absl::Duration grace) { impl_->Stop(grace); }

absl::Status Worker::status() const { return impl_->status(); }

WorkerStats Worker::stats() const {
  Counters& c = impl_->counters();
  WorkerStats s;
  s.deliveries = c.deliveries.load();
  s.acks = c.acks.load();
  s.nacks = c.nacks.load();
  s.terminates = c.terminates.load();
  s.extends = c.extends.load();
  s.registrations = c.registrations.load();
  s.dropped_verbs = c.dropped_verbs.load();
  s.verb_writes = c.verb_writes.load();
  return s;
}

}  // namespace redrive
