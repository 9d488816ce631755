#include "client/net/stall_watchdog.h"

namespace wxp::client {

StallWatchdog::StallWatchdog(grpc::ClientContext* ctx, absl::Duration idle, Clock* clock)
    : ctx_(ctx), idle_(idle), clock_(clock), last_(clock->Now()) {
  thread_ = std::thread([this] { Watch(); });
}

StallWatchdog::~StallWatchdog() {
  done_.Notify();
  thread_.join();
}

void StallWatchdog::Progress() {
  absl::MutexLock lock(&mu_);
  last_ = clock_->Now();
}

void StallWatchdog::Watch() {
  for (;;) {
    absl::Time quiet_until;
    {
      absl::MutexLock lock(&mu_);
      quiet_until = last_ + idle_;
    }
    if (!clock_->SleepUntil(quiet_until, done_)) return;
    absl::MutexLock lock(&mu_);
    // A message came while we slept: wait out the new quiet period.
    if (last_ + idle_ > clock_->Now()) continue;
    stalled_.store(true);
    ctx_->TryCancel();
    return;
  }
}

}  // namespace wxp::client
