#include "common/backoff.h"

#include <vector>

#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(BackoffTest, GrowsExponentiallyUpToTheCap) {
  BackoffOptions o;
  o.initial = absl::Seconds(1);
  o.max = absl::Seconds(5);
  o.jitter = 0;
  Backoff b(o);
  std::vector<absl::Duration> waits;
  for (int i = 0; i < 5; ++i) waits.push_back(b.Next());
  EXPECT_EQ(waits,
            (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                                         absl::Seconds(5), absl::Seconds(5)}));
  b.Reset();
  EXPECT_EQ(b.Next(), absl::Seconds(1));
}

TEST(BackoffTest, JitterStaysInItsBandAndFollowsTheSeed) {
  BackoffOptions o;
  o.initial = absl::Seconds(10);
  o.max = absl::Seconds(10);
  o.jitter = 0.2;
  o.seed = 7;
  Backoff a(o), same(o);
  o.seed = 8;
  Backoff other(o);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const absl::Duration w = a.Next();
    EXPECT_GE(w, absl::Seconds(8));
    EXPECT_LE(w, absl::Seconds(12));
    EXPECT_EQ(w, same.Next());
    differs = differs || w != other.Next();
  }
  EXPECT_TRUE(differs);
}

RetryOptions Fake(FakeClock& clock) {
  RetryOptions r;
  r.clock = &clock;
  r.backoff.initial = absl::Seconds(1);
  r.backoff.max = absl::Seconds(4);
  r.backoff.jitter = 0;
  return r;
}

TEST(RetryWithBackoffTest, RetriesTransientFailuresWaitingOnTheClock) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  int calls = 0;
  std::vector<int> retried;
  RetryOptions r = Fake(clock);
  r.on_retry = [&](int attempt, absl::Duration, const absl::Status&) {
    retried.push_back(attempt);
  };
  const absl::Status s = RetryWithBackoff(
      r, [&] { return ++calls < 5 ? absl::UnavailableError("restarting") : absl::OkStatus(); });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(retried, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(clock.sleeps(), (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(2),
                                                         absl::Seconds(4), absl::Seconds(4)}));
  EXPECT_EQ(clock.Now() - start, absl::Seconds(11));
}

TEST(RetryWithBackoffTest, PermanentErrorsReturnAtOnce) {
  FakeClock clock;
  int calls = 0;
  const absl::Status s = RetryWithBackoff(Fake(clock), [&] {
    ++calls;
    return absl::ResourceExhaustedError("blob over the limit");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(RetryWithBackoffTest, StopsAfterMaxAttemptsOrWhenCancelled) {
  FakeClock clock;
  int calls = 0;
  RetryOptions r = Fake(clock);
  r.max_attempts = 3;
  absl::Status s = RetryWithBackoff(r, [&] {
    ++calls;
    return absl::DeadlineExceededError("slow");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(calls, 3);

  absl::Notification stop;
  r.max_attempts = 0;
  r.cancel = &stop;
  calls = 0;
  s = RetryWithBackoff(r, [&] {
    if (++calls == 2) stop.Notify();
    return absl::UnavailableError("down");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace wxp
