// The time seam: code that reads the time or waits on deadlines takes a Clock, so tests
// advance a fake clock (common/testing/fake_clock.h) instead of sleeping.
#ifndef WXP_COMMON_CLOCK_H_
#define WXP_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace wxp {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The process-wide wall clock; never null, never destroyed. Thread-safe.
  static Clock* Real();
};

}  // namespace wxp

#endif  // WXP_COMMON_CLOCK_H_
