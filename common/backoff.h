// Waiting between retries: exponential backoff, capped, with jitter, on the Clock seam, so
// a fleet of clients that lost the server together does not come back in lockstep, and a
// test runs a retry loop under a fake clock in no time.
#ifndef WXP_COMMON_BACKOFF_H_
#define WXP_COMMON_BACKOFF_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/rng.h"

namespace wxp {

struct BackoffOptions {
  // The first wait; each further one is `multiplier` times longer, up to `max`.
  absl::Duration initial = absl::Milliseconds(500);
  absl::Duration max = absl::Seconds(30);
  double multiplier = 2.0;
  // Each wait is the nominal one times a factor drawn uniformly from [1 - jitter,
  // 1 + jitter] (so a capped wait may reach max * (1 + jitter)).
  double jitter = 0.2;
  // Seeds the jitter; equal seeds give equal waits.
  uint64_t seed = 0;
};

// The sequence of waits. Not thread-safe (one per retry loop).
class Backoff {
 public:
  explicit Backoff(const BackoffOptions& options)
      : options_(options), rng_(options.seed, RngStream::kBackoff), nominal_(options.initial) {}

  // The wait before the next attempt; advances the sequence.
  absl::Duration Next();
  // Back to the first wait (after a success).
  void Reset() { nominal_ = options_.initial; }

 private:
  BackoffOptions options_;
  CounterRng rng_;
  absl::Duration nominal_;
};

struct RetryOptions {
  Clock* clock = Clock::Real();
  BackoffOptions backoff;
  // Attempts in all, the first included; 0: no limit.
  int max_attempts = 0;
  // When notified, the loop stops waiting and returns Cancelled. May be null.
  absl::Notification* cancel = nullptr;
  // Called before each wait with the attempt that failed (1-based), the wait and the error.
  std::function<void(int attempt, absl::Duration wait, const absl::Status& error)> on_retry;
};

// Calls `call` until it returns OK or an error IsRetryable (common/retry.h) says not to
// retry, waiting on options.clock between attempts. Returns the last status, or
// Cancelled("stopping") if options.cancel was notified while waiting. Only for idempotent
// calls.
absl::Status RetryWithBackoff(const RetryOptions& options,
                              const std::function<absl::Status()>& call);

}  // namespace wxp

#endif  // WXP_COMMON_BACKOFF_H_
