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
#include "google/protobuf/arena.h"
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
// Deliveries one pool task runs before it yields its thread to the other
// handlers' tasks.
constexpr size_t kRunsPerTask = 64;
// The write arena's own block: a Verbs message of a few hundred verbs fits
// without a heap allocation.
constexpr size_t kWriteBlockBytes = 32 << 10;

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

// A verb waiting for the next write: plain fields, turned into a v1::Verb
// on the write's arena.
struct PendingVerb {
  enum class Kind : uint8_t { kAck, kNack, kExtend, kTerminate };
  uint64_t delivery_id = 0;
  Kind kind = Kind::kAck;
  std::optional<uint32_t> delay_ms;  // kNack
  std::string reason;                // kNack, kTerminate
  std::string error_code;            // kNack, kTerminate
};

PendingVerb VerbFor(uint64_t delivery_id, const Result& result) {
  PendingVerb verb;
  verb.delivery_id = delivery_id;
  switch (result.kind()) {
    case Result::Kind::kAck:
      verb.kind = PendingVerb::Kind::kAck;
      break;
    case Result::Kind::kRetry:
      verb.kind = PendingVerb::Kind::kNack;
      verb.reason = Truncated(result.reason(), kMaxReasonBytes);
      verb.error_code = Truncated(result.error_code(), kMaxErrorCodeBytes);
      if (result.delay().has_value()) {
        verb.delay_ms = static_cast<uint32_t>(
            std::clamp<int64_t>(absl::ToInt64Milliseconds(*result.delay()), 0, kMaxDelayMs));
      }
      break;
    case Result::Kind::kTerminate:
      verb.kind = PendingVerb::Kind::kTerminate;
      verb.reason = Truncated(result.reason(), kMaxReasonBytes);
      verb.error_code = Truncated(result.error_code(), kMaxErrorCodeBytes);
      break;
  }
  return verb;
}

void Fill(const PendingVerb& from, v1::Verb& to) {
  to.set_delivery_id(from.delivery_id);
  switch (from.kind) {
    case PendingVerb::Kind::kAck:
      to.mutable_ack();
      break;
    case PendingVerb::Kind::kNack: {
      v1::Nack* nack = to.mutable_nack();
      nack->set_reason(from.reason);
      nack->set_error_code(from.error_code);
      if (from.delay_ms.has_value()) nack->set_delay_ms(*from.delay_ms);
      break;
    }
    case PendingVerb::Kind::kExtend:
      to.mutable_extend();  // 0: the registration's lease
      break;
    case PendingVerb::Kind::kTerminate:
      to.mutable_terminate()->set_reason(from.reason);
      to.mutable_terminate()->set_error_code(from.error_code);
      break;
  }
}

const char* VerbName(const PendingVerb& verb) {
  switch (verb.kind) {
    case PendingVerb::Kind::kAck:
      return "ACK";
    case PendingVerb::Kind::kNack:
      return "NACK";
    case PendingVerb::Kind::kExtend:
      return "EXTEND";
    case PendingVerb::Kind::kTerminate:
      return "TERMINATE";
  }
  return "verb";
}

// A read arena's own block: a Deliveries message of a few hundred small
// deliveries fits; larger ones take more blocks, freed on Reset().
constexpr size_t kReadBlockBytes = 64 << 10;
// Read arenas a worker keeps for reuse (shared by its handlers).
constexpr size_t kPooledReadBatches = 16;

google::protobuf::ArenaOptions ReadArenaOptions(char* block) {
  google::protobuf::ArenaOptions o;
  o.initial_block = block;
  o.initial_block_size = kReadBlockBytes;
  o.start_block_size = 16 << 10;
  o.max_block_size = 256 << 10;
  return o;
}

}  // namespace

// One message read from a Subscribe stream, parsed into its own arena: the
// deliveries in it are handed to handlers in place, and the batch goes back
// to its pool when the last of them is done (tasks and Messages share it).
struct ReadBatch {
  ReadBatch()
      : block(new char[kReadBlockBytes]),
        arena(ReadArenaOptions(block.get())),
        response(google::protobuf::Arena::CreateMessage<v1::SubscribeResponse>(&arena)) {}
  ReadBatch(const ReadBatch&) = delete;
  ReadBatch& operator=(const ReadBatch&) = delete;

  // Empties the arena (its first block stays) for the next read.
  void Reset() {
    arena.Reset();
    response = google::protobuf::Arena::CreateMessage<v1::SubscribeResponse>(&arena);
  }

  const std::unique_ptr<char[]> block;
  google::protobuf::Arena arena;
  v1::SubscribeResponse* response;
};

// Read batches for reuse: a batch released by its last holder is reset and
// kept (up to kPooledReadBatches for the whole worker), so steady reading
// allocates no arena blocks. A batch released after its pool is gone is
// deleted.
//
// Thread-safe.
class ReadBatchPool : public std::enable_shared_from_this<ReadBatchPool> {
 public:
  std::shared_ptr<ReadBatch> Acquire() ABSL_LOCKS_EXCLUDED(mu_) {
    std::unique_ptr<ReadBatch> batch;
    {
      absl::MutexLock lock(&mu_);
      if (!free_.empty()) {
        batch = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (batch == nullptr) batch = std::make_unique<ReadBatch>();
    return std::shared_ptr<ReadBatch>(batch.release(),
                                      [pool = weak_from_this()](ReadBatch* released) {
                                        std::unique_ptr<ReadBatch> owned(released);
                                        if (std::shared_ptr<ReadBatchPool> p = pool.lock()) {
                                          p->Release(std::move(owned));
                                        }
                                      });
  }

 private:
  void Release(std::unique_ptr<ReadBatch> batch) ABSL_LOCKS_EXCLUDED(mu_) {
    batch->Reset();  // outside mu_: it runs the arena's destructors
    absl::MutexLock lock(&mu_);
    if (free_.size() < kPooledReadBatches) free_.push_back(std::move(batch));
  }

  absl::Mutex mu_;
  std::vector<std::unique_ptr<ReadBatch>> free_ ABSL_GUARDED_BY(mu_);
};

// ------------------------------------------------------------------ Message

std::vector<std::pair<std::string, std::string>> Message::headers() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(d_->headers_size());
  for (const v1::Header& h : d_->headers()) out.emplace_back(h.key(), h.value());
  return out;
}

std::optional<std::string> Message::header(absl::string_view key) const {
  for (const v1::Header& h : d_->headers()) {
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
  SubscribeStream(HandlerRunner& runner, Counters& counters, const v1::Register& reg,
                  std::shared_ptr<ReadBatchPool> batches)
      : runner_(runner),
        counters_(counters),
        context_(std::make_shared<grpc::ClientContext>()),
        batches_(std::move(batches)),
        read_(batches_->Acquire()),
        write_arena_(WriteArenaOptions(write_block_.get())) {
    *first_.mutable_register_() = reg;
  }

  // Starts the call; the register message is its first write.
  void Start(v1::Broker::Stub& stub, const Client& client) {
    client.AddCallCredentials(*context_);
    stub.async()->Subscribe(context_.get(), this);
    StartWrite(&first_);
    StartRead(read_->response);
    AddHold();
    StartCall();
  }

  const std::shared_ptr<grpc::ClientContext>& context() const { return context_; }

  void Enqueue(PendingVerb verb) ABSL_LOCKS_EXCLUDED(mu_) {
    What what;
    {
      absl::MutexLock lock(&mu_);
      pending_.push_back(std::move(verb));
      what = NextWriteLocked();
    }
    Write(what);
  }
  // Queues every verb of `verbs` (moved from; the vector keeps its capacity).
  void Enqueue(std::vector<PendingVerb>& verbs) ABSL_LOCKS_EXCLUDED(mu_) {
    What what;
    {
      absl::MutexLock lock(&mu_);
      for (PendingVerb& v : verbs) pending_.push_back(std::move(v));
      what = NextWriteLocked();
    }
    Write(what);
  }
  // Sends `stop` after the verbs queued before it.
  void SendStop() ABSL_LOCKS_EXCLUDED(mu_) {
    What what;
    {
      absl::MutexLock lock(&mu_);
      stop_wanted_ = true;
      what = NextWriteLocked();
    }
    Write(what);
  }
  // Half-closes after everything queued has been written.
  void CloseWrites() ABSL_LOCKS_EXCLUDED(mu_) {
    What what;
    {
      absl::MutexLock lock(&mu_);
      close_wanted_ = true;
      what = NextWriteLocked();
    }
    Write(what);
  }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override {
    What what;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) broken_ = true;
      what = NextWriteLocked();
    }
    Write(what);
  }
  void OnDone(const grpc::Status& status) override;

 private:
  enum class What { kNone, kWrite, kWritesDone };

  static google::protobuf::ArenaOptions WriteArenaOptions(char* block) {
    google::protobuf::ArenaOptions o;
    o.initial_block = block;
    o.initial_block_size = kWriteBlockBytes;
    return o;
  }

  // Prepares the next write (verbs, then stop, then the half-close) when
  // none is outstanding.
  What NextWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (write_in_flight_ || broken_ || writes_done_) return What::kNone;
    if (!pending_.empty()) {
      // The previous write is done with its message: its arena starts over.
      write_arena_.Reset();
      writing_ = google::protobuf::Arena::CreateMessage<v1::SubscribeRequest>(&write_arena_);
      auto* verbs = writing_->mutable_verbs()->mutable_verbs();
      const size_t n = std::min<size_t>(pending_.size(), kMaxVerbsPerMessage);
      verbs->Reserve(static_cast<int>(n));
      for (size_t i = 0; i < n; ++i) Fill(pending_[i], *verbs->Add());
      if (n == pending_.size()) {
        pending_.clear();
      } else {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
      }
      counters_.verb_writes.fetch_add(1, std::memory_order_relaxed);
      write_in_flight_ = true;
      return What::kWrite;
    }
    if (stop_wanted_ && !stop_sent_) {
      write_arena_.Reset();
      writing_ = google::protobuf::Arena::CreateMessage<v1::SubscribeRequest>(&write_arena_);
      writing_->mutable_stop();
      stop_sent_ = true;
      write_in_flight_ = true;
      return What::kWrite;
    }
    if (close_wanted_) {
      writes_done_ = true;
      return What::kWritesDone;
    }
    return What::kNone;
  }

  // gRPC may run a reaction inline from a Start* call, so those are made
  // without mu_ held. writing_ is not touched again until OnWriteDone
  // clears write_in_flight_.
  void Write(What what) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (what == What::kWrite) StartWrite(writing_);
    if (what == What::kWritesDone) StartWritesDone();
  }

  HandlerRunner& runner_;
  Counters& counters_;
  // Shared so that Stop can cancel a call that may be finishing.
  const std::shared_ptr<grpc::ClientContext> context_;
  v1::SubscribeRequest first_;
  const std::shared_ptr<ReadBatchPool> batches_;
  // The outstanding read's batch; only its reaction thread touches it.
  std::shared_ptr<ReadBatch> read_;

  absl::Mutex mu_;
  // The write arena's first block, kept across Reset().
  const std::unique_ptr<char[]> write_block_{new char[kWriteBlockBytes]};
  google::protobuf::Arena write_arena_ ABSL_GUARDED_BY(mu_);
  // On write_arena_; owned by the outstanding write.
  v1::SubscribeRequest* writing_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = true;  // the register message
  std::vector<PendingVerb> pending_ ABSL_GUARDED_BY(mu_);
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
  void OnDeliveries(SubscribeStream* stream, const std::shared_ptr<ReadBatch>& batch)
      ABSL_LOCKS_EXCLUDED(mu_);
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
  // A delivery received and not yet started; it lives in `batch`.
  struct Task {
    uint64_t generation;
    const v1::Delivery* delivery;
    std::shared_ptr<ReadBatch> batch;
  };

  // Starts pool tasks for queued deliveries, up to the concurrency limit.
  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A pool task: runs queued deliveries one after another (at most
  // kRunsPerTask, then hands its thread back to the pool).
  void RunQueued() ABSL_LOCKS_EXCLUDED(mu_);
  Result Call(const Task& task) const;
  // A handler call's result: its verb joins `verbs` (sent together), or is
  // dropped when its stream has ended.
  void FinishedLocked(uint64_t generation, uint64_t delivery_id, const Result& result,
                      std::vector<PendingVerb>& verbs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands queued deliveries back (NACK, no delay) and forgets them.
  void ReleaseQueuedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets queued deliveries without a verb (the daemon takes them back).
  void DropQueuedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendLocked(PendingVerb verb) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Count(const PendingVerb& verb);
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
  // Pool tasks of this handler (RunQueued) scheduled or running, and those
  // of them not yet started.
  int tasks_ ABSL_GUARDED_BY(mu_) = 0;
  int tasks_starting_ ABSL_GUARDED_BY(mu_) = 0;
  // Handler calls running, of every generation.
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  // Deliveries of the current stream held (queued or running): delivery id
  // → when the lease was last renewed (delivery or EXTEND).
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
  // The pool's threads (fixed at Start()).
  int pool_threads() const { return pool_threads_; }
  Client& client() { return *client_; }
  Counters& counters() { return counters_; }
  const std::shared_ptr<ReadBatchPool>& read_batches() const { return read_batches_; }
  const WorkerOptions& options() const { return options_; }

 private:
  void TickLoop() ABSL_LOCKS_EXCLUDED(mu_);

  WorkerOptions options_;
  const std::unique_ptr<Client> client_;
  Counters counters_;
  const std::shared_ptr<ReadBatchPool> read_batches_ = std::make_shared<ReadBatchPool>();

  mutable absl::Mutex mu_;
  enum class State { kNew, kRunning, kStopped };
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  // Fixed once Start() ran; the pool and ticker exist from Start() to Stop().
  std::vector<std::unique_ptr<HandlerRunner>> runners_;
  std::unique_ptr<client_internal::ThreadPool> pool_;
  int pool_threads_ = 0;
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
  // Each read parses into a fresh arena (an arena only grows): the runner
  // keeps a deliveries batch while its deliveries are queued or run.
  std::shared_ptr<ReadBatch> batch = std::exchange(read_, batches_->Acquire());
  const v1::SubscribeResponse& response = *batch->response;
  switch (response.kind_case()) {
    case v1::SubscribeResponse::kRegistered:
      runner_.OnRegistered(this, response.registered());
      break;
    case v1::SubscribeResponse::kDeliveries:
      runner_.OnDeliveries(this, batch);
      break;
    case v1::SubscribeResponse::kNotices:
      runner_.OnNotices(this, response.notices());
      break;
    case v1::SubscribeResponse::kDrain:
      runner_.OnDrain(this, response.drain());
      break;
    default:
      break;
  }
  StartRead(read_->response);
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
    stream = new SubscribeStream(*this, worker_.counters(), settings_.reg, worker_.read_batches());
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

void HandlerRunner::OnDeliveries(SubscribeStream* stream, const std::shared_ptr<ReadBatch>& batch) {
  absl::MutexLock lock(&mu_);
  if (stream != stream_) return;
  const absl::Time now = absl::Now();
  const auto& deliveries = batch->response->deliveries().deliveries();
  worker_.counters().deliveries.fetch_add(deliveries.size(), std::memory_order_relaxed);
  for (const v1::Delivery& d : deliveries) {
    if (stopping_) {
      // Sent before the daemon saw our stop: give it back at once.
      SendLocked(VerbFor(d.delivery_id(), Result::Retry("released: the worker is stopping",
                                                        absl::ZeroDuration(), "STOPPING")));
    } else if (!draining_) {
      renewed_[d.delivery_id()] = now;
      queue_.push_back(Task{generation_, &d, batch});
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
                   " ms): finishing ", renewed_.size() - queue_.size(), " running, not starting ",
                   queue_.size()));
  draining_ = true;
  DropQueuedLocked();
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
  if (stopping_) return;
  // One pool task runs queued deliveries one after another, so the running
  // handler calls are at most the tasks: max_in_flight, and no more than
  // the pool has threads.
  const int limit =
      std::min<int>(static_cast<int>(settings_.max_in_flight), worker_.pool_threads());
  while (tasks_ < limit && static_cast<size_t>(tasks_starting_) < queue_.size()) {
    ++tasks_;
    ++tasks_starting_;
    worker_.pool().Schedule([this] { RunQueued(); });
  }
}

void HandlerRunner::RunQueued() {
  // One lock hold per delivery: it settles the previous call (its verb goes
  // to the stream at once) and takes the next delivery.
  std::vector<PendingVerb> verbs;
  size_t runs = 0;
  mu_.Lock();
  --tasks_starting_;
  while (!queue_.empty() && !stopping_) {
    if (runs == kRunsPerTask) {
      // Yield the thread to other handlers' tasks; a new task goes on here.
      ++tasks_starting_;
      mu_.Unlock();
      worker_.pool().Schedule([this] { RunQueued(); });
      return;
    }
    ++runs;
    Task task = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    mu_.Unlock();
    const uint64_t id = task.delivery->delivery_id();
    const Result result = Call(task);
    task.batch.reset();  // a batch's last delivery returns it to the pool outside mu_
    mu_.Lock();
    --running_;
    FinishedLocked(task.generation, id, result, verbs);
    if (!verbs.empty()) {
      stream_->Enqueue(verbs);  // FinishedLocked keeps none without a stream
      verbs.clear();
      if (draining_ && renewed_.empty()) stream_->CloseWrites();
    }
  }
  --tasks_;
  mu_.Unlock();
}

Result HandlerRunner::Call(const Task& task) const {
  const Message message(*task.delivery, task.batch);
  try {
    return settings_.fn(message);
  } catch (const std::exception& e) {
    return Result::Retry(e.what(), std::nullopt, "EXCEPTION");
  } catch (...) {
    return Result::Retry("unknown exception", std::nullopt, "EXCEPTION");
  }
}

void HandlerRunner::Count(const PendingVerb& verb) {
  Counters& c = worker_.counters();
  switch (verb.kind) {
    case PendingVerb::Kind::kAck:
      c.acks.fetch_add(1, std::memory_order_relaxed);
      break;
    case PendingVerb::Kind::kNack:
      c.nacks.fetch_add(1, std::memory_order_relaxed);
      break;
    case PendingVerb::Kind::kExtend:
      c.extends.fetch_add(1, std::memory_order_relaxed);
      break;
    case PendingVerb::Kind::kTerminate:
      c.terminates.fetch_add(1, std::memory_order_relaxed);
      break;
  }
}

void HandlerRunner::SendLocked(PendingVerb verb) {
  Count(verb);
  stream_->Enqueue(std::move(verb));
}

void HandlerRunner::FinishedLocked(uint64_t generation, uint64_t delivery_id, const Result& result,
                                   std::vector<PendingVerb>& verbs) {
  PendingVerb verb = VerbFor(delivery_id, result);
  if (generation == generation_ && stream_ != nullptr) {
    renewed_.erase(delivery_id);
    Count(verb);
    verbs.push_back(std::move(verb));
  } else {
    worker_.counters().dropped_verbs.fetch_add(1, std::memory_order_relaxed);
    Log(absl::StrCat("dropping ", VerbName(verb), " of delivery ", delivery_id,
                     ": its stream has ended (the daemon redelivers it)"));
  }
}

void HandlerRunner::ReleaseQueuedLocked() {
  for (const Task& t : queue_) {
    renewed_.erase(t.delivery->delivery_id());
    SendLocked(VerbFor(t.delivery->delivery_id(), Result::Retry("released: the worker is stopping",
                                                                absl::ZeroDuration(), "STOPPING")));
  }
  queue_.clear();
}

void HandlerRunner::DropQueuedLocked() {
  for (const Task& t : queue_) renewed_.erase(t.delivery->delivery_id());
  queue_.clear();
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
        PendingVerb verb;
        verb.delivery_id = id;
        verb.kind = PendingVerb::Kind::kExtend;
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
  ReleaseQueuedLocked();
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
  pool_threads_ = threads;
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
