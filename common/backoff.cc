#include "common/backoff.h"

#include <algorithm>

#include "common/retry.h"

namespace wxp {

absl::Duration Backoff::Next() {
  const double factor = 1.0 + options_.jitter * (2.0 * rng_.NextUniform() - 1.0);
  const absl::Duration wait = nominal_ * factor;
  nominal_ = std::min(nominal_ * options_.multiplier, options_.max);
  return wait;
}

absl::Status RetryWithBackoff(const RetryOptions& options,
                              const std::function<absl::Status()>& call) {
  Backoff backoff(options.backoff);
  for (int attempt = 1;; ++attempt) {
    absl::Status s = call();
    if (s.ok() || !IsRetryable(s)) return s;
    if (options.max_attempts > 0 && attempt >= options.max_attempts) return s;
    const absl::Duration wait = backoff.Next();
    if (options.on_retry) options.on_retry(attempt, wait, s);
    const absl::Time deadline = options.clock->Now() + wait;
    if (options.cancel == nullptr) {
      options.clock->SleepUntil(deadline);
    } else if (!options.clock->SleepUntil(deadline, *options.cancel)) {
      return absl::CancelledError("stopping");
    }
  }
}

}  // namespace wxp
