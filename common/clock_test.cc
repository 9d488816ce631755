#include "common/clock.h"

#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
  clock.Set(absl::FromUnixSeconds(7));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(7));
}

TEST(ClockTest, FakeSleepsMoveTimeForwardOnly) {
  FakeClock clock(absl::FromUnixSeconds(100));
  clock.SleepUntil(absl::FromUnixSeconds(103));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(103));
  clock.SleepUntil(absl::FromUnixSeconds(50));  // already past: returns at once
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(103));
  absl::Notification cancel;
  EXPECT_TRUE(clock.SleepUntil(absl::FromUnixSeconds(104), cancel));
  cancel.Notify();
  EXPECT_FALSE(clock.SleepUntil(absl::FromUnixSeconds(200), cancel));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(104));
  EXPECT_EQ(clock.sleeps(), (std::vector<absl::Duration>{absl::Seconds(3), absl::ZeroDuration(),
                                                         absl::Seconds(1)}));
}

TEST(ClockTest, RealClockIsNearNow) {
  EXPECT_LT(absl::AbsDuration(Clock::Real()->Now() - absl::Now()), absl::Seconds(5));
}

TEST(ClockTest, RealSleepEndsAtOnceForAPastDeadlineOrACancel) {
  Clock* clock = Clock::Real();
  clock->SleepUntil(clock->Now() - absl::Seconds(1));
  absl::Notification cancel;
  cancel.Notify();
  EXPECT_FALSE(clock->SleepUntil(clock->Now() + absl::Hours(1), cancel));
  absl::Notification never;
  EXPECT_TRUE(clock->SleepUntil(clock->Now(), never));
}

}  // namespace
}  // namespace wxp
