#include "daemon/tail_stream.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/grpc_status.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/streams.h"
#include "daemon/stream_entry.h"

namespace redrive {

TailStream::TailStream(const v1::TailRequest& request, RedisExecutor& executor, Options options)
    : open_(options.open_streams), options_(options), executor_(executor) {
  absl::Status valid = ValidateChannel(request.channel());
  if (valid.ok() && !request.after_id().empty()) {
    if (request.from_start()) {
      valid = absl::InvalidArgumentError("from_start and after_id exclude each other");
    } else if (!IsValidEntryId(request.after_id())) {
      valid = absl::InvalidArgumentError(
          absl::StrCat("after_id '", request.after_id().substr(0, 64), "' is not an entry id"));
    }
  }
  if (!valid.ok()) {
    Finish(ToGrpcStatus(valid));
    return;
  }
  watch_.channel = request.channel();
  watch_.stream = StreamKey(watch_.channel, options_.key_style);
  watch_.max_entries = request.max_entries();
  watch_.from_start = request.from_start();
  step_.last_id = request.after_id();
  Poll();
}

void TailStream::OnDone() { delete this; }

grpc::Status TailStream::NotAStream() const {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("key '", watch_.stream, "' exists and is not a stream"));
}

grpc::Status TailStream::CommandFailure(const absl::Status& status) const {
  return RedisErrorOf(status) == RedisError::kWrongType ? NotAStream() : ToGrpcStatus(status);
}

bool TailStream::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void TailStream::OnCancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (alarm_ != nullptr) alarm_->Cancel();  // its callback ends the call
}

void TailStream::End(grpc::Status status) { Finish(std::move(status)); }

void TailStream::Poll() {
  if (!executor_.Submit([this](RedisCommander& redis) { Read(redis); })) {
    End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     "redrived is overloaded or shutting down; retry later"));
  }
}

void TailStream::PollLater() {
  {
    absl::MutexLock lock(&mu_);
    if (!cancelled_) {
      // A fresh alarm per wait; the one it replaces has fired.
      alarm_ = std::make_unique<grpc::Alarm>();
      alarm_->Set(absl::ToChronoTime(absl::Now() + options_.poll_interval), [this](bool fired) {
        if (!fired || cancelled()) {
          End(grpc::Status::CANCELLED);
          return;
        }
        Poll();
      });
      return;
    }
  }
  End(grpc::Status::CANCELLED);
}

void TailStream::Read(RedisCommander& redis) {
  if (cancelled()) {
    End(grpc::Status::CANCELLED);
    return;
  }
  if (step_.last_id.empty()) {
    if (watch_.from_start) {
      step_.last_id = "0-0";
    } else {
      // Entries added from now on: after the current last entry.
      absl::StatusOr<std::vector<StreamEntry>> last = XRevRange(redis, watch_.stream, "+", "-", 1);
      if (!last.ok()) {
        End(CommandFailure(last.status()));
        return;
      }
      step_.last_id = last->empty() ? "0-0" : last->front().id;
    }
  }
  if (!step_.started) {
    step_.started = true;
    v1::TailResponse r;
    r.mutable_started()->set_after_id(step_.last_id);
    step_.buffer.push_back(std::move(r));
  }
  uint64_t want = options_.read_batch;
  if (watch_.max_entries > 0) want = std::min<uint64_t>(want, watch_.max_entries - step_.read);
  if (want == 0) {  // every wanted entry was read (never reached: writes end first)
    End(grpc::Status::OK);
    return;
  }
  absl::StatusOr<std::vector<StreamEntry>> entries =
      XRead(redis, watch_.stream, step_.last_id, want);
  if (!entries.ok()) {
    End(CommandFailure(entries.status()));
    return;
  }
  step_.more = entries->size() == want;
  for (const StreamEntry& e : *entries) {
    v1::TailResponse r;
    v1::Delivery* d = r.mutable_delivery();
    // A corrupt envelope still shows, as its raw bytes.
    (void)FillMessage(e, *d);
    d->set_channel(watch_.channel);
    d->set_stream(watch_.stream);
    d->set_entry_id(e.id);
    d->set_original_entry_id(e.id);
    d->set_attempt(1);
    step_.buffer.push_back(std::move(r));
    step_.last_id = e.id;
    ++step_.read;
  }
  WriteNext();
}

void TailStream::WriteNext() {
  if (cancelled()) {
    End(grpc::Status::CANCELLED);
    return;
  }
  if (!step_.buffer.empty()) {
    StartWrite(&step_.buffer.front());
    return;
  }
  if (step_.more) {
    Poll();
  } else {
    PollLater();
  }
}

void TailStream::OnWriteDone(bool ok) {
  if (step_.buffer.front().has_delivery()) ++step_.sent;
  step_.buffer.pop_front();
  if (!ok) {
    End(grpc::Status::CANCELLED);
    return;
  }
  if (watch_.max_entries > 0 && step_.sent >= watch_.max_entries) {
    End(grpc::Status::OK);
    return;
  }
  WriteNext();
}

}  // namespace redrive
