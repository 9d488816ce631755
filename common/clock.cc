#include "common/clock.h"

namespace wxp {
namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();  // never destroyed: usable during shutdown
  return clock;
}

}  // namespace wxp
