#include "daemon/delivery_engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "daemon/cluster_stream_notifier.h"
#include "daemon/redis/connect.h"
#include "daemon/redis/scripts.h"

namespace redrive {

DeliveryEngine::DeliveryEngine(Options options) : loop_(std::make_unique<EventLoop>()) {
  loop_->RunSync([&] {
    RedisConnectionOptions commands = options.redis;
    RedisConnectionOptions blocking = options.redis;
    if (!commands.client_name.empty()) {
      absl::StrAppend(&commands.client_name, "-deliver");
      absl::StrAppend(&blocking.client_name, "-notify");
    }
    if (IsCluster(options.redis)) {
      StartCluster(commands, blocking);
    } else {
      StartSingle(commands, blocking);
    }
    ops_ = std::make_unique<RedisStreamOps>(*commands_);
    dispatcher_ = std::make_unique<Dispatcher>(*loop_, *ops_, *notifier_, options.dispatcher);
    if (blocking_ != nullptr && blocking_->connected()) {
      single_notifier_->OnBlockingConnected(blocking_->client_id());
    }
  });
}

void DeliveryEngine::OnActivity(const std::string& stream) {
  if (dispatcher_ != nullptr) {
    kLoopThread.AssertHeld();

    dispatcher_->OnStreamActivity(stream);
  }
}

void DeliveryEngine::StartSingle(const RedisConnectionOptions& commands,
                                 const RedisConnectionOptions& blocking) {
  auto connection =
      std::make_unique<HiredisAsync>(*loop_, commands, [this] { LoadScripts(*commands_); });
  HiredisAsync& command_connection = *connection;
  commands_ = std::move(connection);
  blocking_ = std::make_unique<HiredisAsync>(*loop_, blocking, [this] {
    if (single_notifier_ != nullptr) single_notifier_->OnBlockingConnected(blocking_->client_id());
  });
  watch_ops_ = std::make_unique<RedisStreamWatchOps>(*blocking_, command_connection);
  auto notifier = std::make_unique<StreamNotifier>(
      *watch_ops_, [this](const std::string& stream) { OnActivity(stream); });
  single_notifier_ = notifier.get();
  notifier_ = std::move(notifier);
}

void DeliveryEngine::StartCluster(const RedisConnectionOptions& commands,
                                  const RedisConnectionOptions& blocking) {
  auto cluster = std::make_unique<ClusterAsync>(*loop_, ClusterOptionsFor(commands));
  ClusterAsync& routed = *cluster;
  commands_ = std::move(cluster);
  // SCRIPT LOAD reaches every master; a master that appears later (a
  // failover, a new shard) gets them when the topology names it (until
  // then, or if it restarts empty, the EVAL fallback covers NOSCRIPT).
  routed.AddTopologyListener([this, &routed] {
    std::vector<RedisAddress> masters = routed.Masters();
    auto same = [](const RedisAddress& a, const RedisAddress& b) {
      return a.host == b.host && a.port == b.port;
    };
    if (std::equal(masters.begin(), masters.end(), scripts_on_.begin(), scripts_on_.end(), same)) {
      return;
    }
    scripts_on_ = std::move(masters);
    LoadScripts(routed);
  });
  notifier_ = std::make_unique<ClusterStreamNotifier>(
      *loop_, routed, blocking, [this](const std::string& stream) { OnActivity(stream); });
}

DeliveryEngine::~DeliveryEngine() {
  loop_->RunSync([this] {
    dispatcher_.reset();
    single_notifier_ = nullptr;
    notifier_.reset();
    watch_ops_.reset();
    ops_.reset();
    blocking_.reset();
    commands_.reset();
  });
  loop_.reset();
}

void DeliveryEngine::Register(uint64_t session, SubscriptionSpec spec,
                              const std::shared_ptr<SessionSink>& sink) {
  auto shared_spec = std::make_shared<SubscriptionSpec>(std::move(spec));
  if (!loop_->Post([this, session, shared_spec, sink] {
        if (dispatcher_ != nullptr) {
          kLoopThread.AssertHeld();

          dispatcher_->Register(session, std::move(*shared_spec), sink);
        }
      })) {
    sink->Finish(absl::UnavailableError("redrived is shutting down"));
  }
}

void DeliveryEngine::Verbs(uint64_t session, std::shared_ptr<const v1::Verbs> verbs) {
  loop_->Post([this, session, verbs = std::move(verbs)] {
    if (dispatcher_ != nullptr) {
      kLoopThread.AssertHeld();

      dispatcher_->Verbs(session, *verbs);
    }
  });
}

void DeliveryEngine::Stop(uint64_t session) {
  loop_->Post([this, session] {
    if (dispatcher_ != nullptr) {
      kLoopThread.AssertHeld();

      dispatcher_->Stop(session);
    }
  });
}

void DeliveryEngine::Disconnect(uint64_t session) {
  loop_->Post([this, session] {
    if (dispatcher_ != nullptr) {
      kLoopThread.AssertHeld();

      dispatcher_->Disconnect(session);
    }
  });
}

void DeliveryEngine::Drain(absl::Duration grace) {
  auto done = std::make_shared<absl::Notification>();
  if (!loop_->Post([this, grace, done] {
        kLoopThread.AssertHeld();
        dispatcher_->Drain(grace, [done] { done->Notify(); });
      })) {
    return;
  }
  done->WaitForNotificationWithTimeout(grace + absl::Seconds(2));
}

DispatcherStats DeliveryEngine::Stats() {
  DispatcherStats stats;
  loop_->RunSync([&] {
    kLoopThread.AssertHeld();
    stats = dispatcher_->stats();
  });
  return stats;
}

void DeliveryEngine::SetPaused(const std::string& channel, const std::string& handler_id,
                               bool paused) {
  loop_->RunSync([&] {
    kLoopThread.AssertHeld();
    dispatcher_->SetPaused(channel, handler_id, paused);
  });
}

std::vector<Dispatcher::HandlerSnapshot> DeliveryEngine::Snapshot() {
  std::vector<Dispatcher::HandlerSnapshot> out;
  loop_->RunSync([&] {
    kLoopThread.AssertHeld();
    out = dispatcher_->Snapshot();
  });
  return out;
}

}  // namespace redrive
