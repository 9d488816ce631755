// Ends a streaming call whose server has gone quiet. A stream that carries a whole blob
// gets a deadline of minutes, so that a large adapter can arrive; but a server that stops
// sending (a stopped or partitioned replica, whose kernel still holds the connection
// open) would then hold the caller for all of those minutes instead of letting it fail
// over. The watchdog cancels the call once `idle` passes with no message.
//
//   auto ctx = conn.NewContext(long_deadline);
//   StallWatchdog watchdog(ctx.get(), conn.options().rpc_deadline);
//   while (reader->Read(&msg)) { watchdog.Progress(); ... }
//   if (watchdog.stalled()) return absl::UnavailableError(...);
#ifndef WXP_CLIENT_NET_STALL_WATCHDOG_H_
#define WXP_CLIENT_NET_STALL_WATCHDOG_H_

#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "grpcpp/client_context.h"

namespace wxp::client {

// Thread-safe. Watches from its own thread until destroyed; `ctx` must outlive it.
class StallWatchdog {
 public:
  StallWatchdog(grpc::ClientContext* ctx, absl::Duration idle, Clock* clock = Clock::Real());
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

  // A message arrived: the quiet period starts again.
  void Progress();
  // True once the watchdog has cancelled the call.
  bool stalled() const { return stalled_.load(); }

 private:
  void Watch();

  grpc::ClientContext* const ctx_;
  const absl::Duration idle_;
  Clock* const clock_;
  absl::Mutex mu_;
  absl::Time last_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stalled_{false};
  absl::Notification done_;
  std::thread thread_;
};

}  // namespace wxp::client

#endif  // WXP_CLIENT_NET_STALL_WATCHDOG_H_
