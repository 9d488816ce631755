#include "common/clock.h"

namespace wxp {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void SleepUntil(absl::Time deadline) override { absl::SleepFor(deadline - absl::Now()); }
  bool SleepUntil(absl::Time deadline, absl::Notification& cancel) override {
    return !cancel.WaitForNotificationWithDeadline(deadline);
  }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();  // never destroyed: usable during shutdown
  return clock;
}

}  // namespace wxp
