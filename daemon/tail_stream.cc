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
    : options_(std::move(options)), executor_(executor) {
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
  channel_ = request.channel();
  stream_ = StreamKey(channel_, options_.key_style);
  max_entries_ = request.max_entries();
  from_start_ = request.from_start();
  last_id_ = request.after_id();
  Poll();
}

void TailStream::OnDone() { delete this; }

grpc::Status TailStream::NotAStream() const {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("key '", stream_, "' exists and is not a stream"));
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
  if (last_id_.empty()) {
    if (from_start_) {
      last_id_ = "0-0";
    } else {
      // Entries added from now on: after the current last entry.
      absl::StatusOr<std::vector<StreamEntry>> last = XRevRange(redis, stream_, "+", "-", 1);
      if (!last.ok()) {
        End(CommandFailure(last.status()));
        return;
      }
      last_id_ = last->empty() ? "0-0" : last->front().id;
    }
  }
  if (!started_) {
    started_ = true;
    v1::TailResponse r;
    r.mutable_started()->set_after_id(last_id_);
    buffer_.push_back(std::move(r));
  }
  uint64_t want = options_.read_batch;
  if (max_entries_ > 0) want = std::min<uint64_t>(want, max_entries_ - read_);
  if (want == 0) {  // every wanted entry was read (never reached: writes end first)
    End(grpc::Status::OK);
    return;
  }
  absl::StatusOr<std::vector<StreamEntry>> entries = XRead(redis, stream_, last_id_, want);
  if (!entries.ok()) {
    End(CommandFailure(entries.status()));
    return;
  }
  more_ = entries->size() == want;
  for (const StreamEntry& e : *entries) {
    v1::TailResponse r;
    v1::Delivery* d = r.mutable_delivery();
    // A corrupt envelope still shows, as its raw bytes.
    (void)FillMessage(e, *d);
    d->set_channel(channel_);
    d->set_stream(stream_);
    d->set_entry_id(e.id);
    d->set_original_entry_id(e.id);
    d->set_attempt(1);
    buffer_.push_back(std::move(r));
    last_id_ = e.id;
    ++read_;
  }
  WriteNext();
}

void TailStream::WriteNext() {
  if (cancelled()) {
    End(grpc::Status::CANCELLED);
    return;
  }
  if (!buffer_.empty()) {
    StartWrite(&buffer_.front());
    return;
  }
  if (more_) {
    Poll();
  } else {
    PollLater();
  }
}

void TailStream::OnWriteDone(bool ok) {
  if (buffer_.front().has_delivery()) ++sent_;
  buffer_.pop_front();
  if (!ok) {
    End(grpc::Status::CANCELLED);
    return;
  }
  if (max_entries_ > 0 && sent_ >= max_entries_) {
    End(grpc::Status::OK);
    return;
  }
  WriteNext();
}

}  // namespace redrive
