// A Clock for tests: time moves only when the test (or a sleeper) moves it, so code that
// waits runs without real time passing.
#ifndef WXP_COMMON_TESTING_FAKE_CLOCK_H_
#define WXP_COMMON_TESTING_FAKE_CLOCK_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace wxp {

// Thread-safe. SleepUntil never blocks: it moves the time forward to the deadline (never
// backwards) and records how long the caller asked to sleep, so a test can check a retry
// loop's waits exactly and in no time.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void SleepUntil(absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    sleeps_.push_back(deadline > now_ ? deadline - now_ : absl::ZeroDuration());
    if (deadline > now_) now_ = deadline;
  }
  // Cancelled (false, time unchanged) if `cancel` is notified on entry; else as SleepUntil.
  bool SleepUntil(absl::Time deadline, absl::Notification& cancel) override {
    if (cancel.HasBeenNotified()) return false;
    SleepUntil(deadline);
    return true;
  }

  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }
  // How long each SleepUntil call slept, in call order.
  std::vector<absl::Duration> sleeps() const {
    absl::MutexLock lock(&mu_);
    return sleeps_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> sleeps_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wxp

#endif  // WXP_COMMON_TESTING_FAKE_CLOCK_H_
