// ActivityNotifier: what the delivery engine (Reader, Dispatcher) needs of
// the object that tells it which watched streams received entries, so it
// issues non-blocking XREADGROUPs only where there is work. StreamNotifier
// implements it over one blocking XREAD (one Redis server);
// ClusterStreamNotifier over one StreamNotifier per cluster master.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ACTIVITY_NOTIFIER_H_
#define REDRIVE_DAEMON_ACTIVITY_NOTIFIER_H_

#include <cstddef>
#include <functional>
#include <string>

namespace redrive {

class ActivityNotifier {
 public:
  // Runs with the name of a watched stream that (may have) received
  // entries since it was last reported or became watched.
  using Callback = std::function<void(const std::string& stream)>;

  virtual ~ActivityNotifier() = default;

  // Starts watching `stream` (reference counted). `ready` runs once the
  // notifier covers it: entries added after that moment are reported.
  virtual void Watch(const std::string& stream, std::function<void()> ready) = 0;
  // Drops one reference taken by Watch; unknown streams are ignored.
  virtual void Unwatch(const std::string& stream) = 0;
  // Starts the blocking read(s) not running (after an error reply, say).
  virtual void Kick() = 0;
  // False while reads fail: the dispatcher then polls its sources.
  virtual bool healthy() const = 0;
  // Distinct streams watched.
  virtual size_t watched() const = 0;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ACTIVITY_NOTIFIER_H_
