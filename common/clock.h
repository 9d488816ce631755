// The time seam: code that reads the time or waits takes a Clock, so tests drive a fake
// clock (common/testing/fake_clock.h) instead of sleeping.
#ifndef WXP_COMMON_CLOCK_H_
#define WXP_COMMON_CLOCK_H_

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace wxp {

// All methods are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // Returns once Now() >= `deadline` (at once if it already is).
  virtual void SleepUntil(absl::Time deadline) = 0;

  // As SleepUntil, but gives up as soon as `cancel` is notified: true if the deadline came,
  // false if cancelled (also when it already was on entry).
  virtual bool SleepUntil(absl::Time deadline, absl::Notification& cancel) = 0;

  // The process-wide wall clock (absl::Now, absl::SleepFor); never null, never destroyed.
  static Clock* Real();
};

}  // namespace wxp

#endif  // WXP_COMMON_CLOCK_H_
