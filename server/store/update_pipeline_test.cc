#include "server/store/update_pipeline.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace wxp::store {
namespace {

SwarmUpdate Named(const std::string& swarm) {
  SwarmUpdate u;
  u.swarm = swarm;
  return u;
}

// Records what each commit received; fails batches while `fail` is set.
struct FakeCommits {
  absl::Mutex mu;
  std::vector<std::vector<std::string>> batches;
  absl::Status fail;
  UpdatePipeline::CommitFn Fn() {
    return
        [this](const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>& refused) {
          absl::MutexLock lock(&mu);
          if (!fail.ok()) return fail;
          std::vector<std::string> names;
          for (size_t i = 0; i < batch.size(); ++i) {
            if (batch[i]->swarm == "refuse") {
              refused[i] = absl::AlreadyExistsError("refused");
            } else {
              names.push_back(batch[i]->swarm);
            }
          }
          batches.push_back(names);
          return absl::OkStatus();
        };
  }
};

TEST(UpdatePipelineTest, QueuedUpdatesShareOneCommitInOrder) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  const uint64_t a = p.Enqueue(Named("a"));
  const uint64_t b = p.Enqueue(Named("b"));
  const uint64_t c = p.Enqueue(Named("c"));
  EXPECT_TRUE(p.WaitDurable(b).ok());
  EXPECT_TRUE(p.WaitDurable(a).ok());
  EXPECT_TRUE(p.WaitDurable(c).ok());
  EXPECT_TRUE(p.WaitDurable(0).ok());
  ASSERT_EQ(commits.batches.size(), 1u);
  EXPECT_EQ(commits.batches[0], (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(p.WaitDurable(c + 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(UpdatePipelineTest, ARefusalConcernsItsUpdateAlone) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  const uint64_t a = p.Enqueue(Named("a"));
  const uint64_t r = p.Enqueue(Named("refuse"));
  const uint64_t b = p.Enqueue(Named("b"));
  EXPECT_TRUE(p.WaitDurable(b).ok());
  EXPECT_TRUE(p.WaitDurable(a).ok());
  EXPECT_EQ(p.WaitDurable(r).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(p.failures(), 1u);
  EXPECT_TRUE(p.WaitDurable(p.Enqueue(Named("c"))).ok());
}

TEST(UpdatePipelineTest, AFailedBatchFailsEverythingAfterItUntilReset) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  ASSERT_TRUE(p.WaitDurable(p.Enqueue(Named("before"))).ok());
  commits.fail = absl::ResourceExhaustedError("disk full");
  const uint64_t a = p.Enqueue(Named("a"));
  const uint64_t b = p.Enqueue(Named("b"));
  EXPECT_EQ(p.WaitDurable(a).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(p.WaitDurable(b).code(), absl::StatusCode::kResourceExhausted);
  // The disk has room again, but c may build on a or b: it fails too until Reset().
  commits.fail = absl::OkStatus();
  const uint64_t c = p.Enqueue(Named("c"));
  EXPECT_EQ(p.WaitDurable(c).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(p.WaitDurable(c).message(), "disk full");
  EXPECT_EQ(p.failures(), 3u);
  p.Reset();
  EXPECT_TRUE(p.WaitDurable(p.Enqueue(Named("d"))).ok());
  EXPECT_EQ(commits.batches, (std::vector<std::vector<std::string>>{{"before"}, {"d"}}));
}

TEST(UpdatePipelineTest, AForgottenFailureIsNeverReportedAsDurable) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  commits.fail = absl::ResourceExhaustedError("disk full");
  const uint64_t first = p.Enqueue(Named("a"));
  EXPECT_EQ(p.WaitDurable(first).code(), absl::StatusCode::kResourceExhausted);
  // A long outage: far more failures than the pipeline keeps (each resolved at Enqueue).
  uint64_t last = first;
  for (int i = 0; i < (1 << 16) + 10; ++i) last = p.Enqueue(Named("b"));
  EXPECT_EQ(p.WaitDurable(last).code(), absl::StatusCode::kResourceExhausted);
  // The first failure's status is gone; its waiter must not hear "durable".
  EXPECT_EQ(p.WaitDurable(first).code(), absl::StatusCode::kUnavailable);
  commits.fail = absl::OkStatus();
  p.Reset();
  EXPECT_TRUE(p.WaitDurable(p.Enqueue(Named("c"))).ok());
}

TEST(UpdatePipelineTest, ConcurrentWritersAreAllCommittedInTicketOrder) {
  FakeCommits commits;
  absl::Mutex order_mu;
  std::vector<std::string> enqueued;  // in ticket order
  UpdatePipeline p(commits.Fn());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        uint64_t ticket;
        {
          absl::MutexLock lock(&order_mu);
          const std::string name = std::to_string(t) + "/" + std::to_string(i);
          ticket = p.Enqueue(Named(name));
          enqueued.push_back(name);
        }
        if (t % 2 == 0) {
          EXPECT_TRUE(p.WaitDurable(ticket).ok());
        } else {  // half the writers wait through the committer thread, as the server's calls do
          absl::Notification done;
          p.WhenDurable(ticket, [&](absl::Status s) {
            EXPECT_TRUE(s.ok()) << s;
            done.Notify();
          });
          done.WaitForNotification();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::string> committed;
  for (const auto& b : commits.batches) committed.insert(committed.end(), b.begin(), b.end());
  EXPECT_EQ(committed, enqueued);
}

TEST(UpdatePipelineTest, CommitObserversSeeEveryBatchUntilRemoved) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  std::vector<UpdatePipeline::CommitStats> seen;
  const uint64_t id =
      UpdatePipeline::AddCommitObserver([&](const auto& stats) { seen.push_back(stats); });
  p.Enqueue(Named("a"));
  EXPECT_TRUE(p.WaitDurable(p.Enqueue(Named("b"))).ok());
  commits.fail = absl::UnavailableError("disk full");
  EXPECT_FALSE(p.WaitDurable(p.Enqueue(Named("c"))).ok());
  UpdatePipeline::RemoveCommitObserver(id);
  p.Reset();
  commits.fail = absl::OkStatus();
  EXPECT_TRUE(p.WaitDurable(p.Enqueue(Named("d"))).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].updates, 2u);
  EXPECT_TRUE(seen[0].committed);
  EXPECT_GE(seen[0].seconds, 0);
  EXPECT_EQ(seen[1].updates, 1u);
  EXPECT_FALSE(seen[1].committed);
}

TEST(UpdatePipelineTest, ApplyBatchWholeStopsAtTheFirstRefusalAndPassesErrorsOn) {
  const SwarmUpdate a = Named("a"), r = Named("refuse"), b = Named("b"), bad = Named("bad");
  std::vector<std::string> applied;
  auto apply = [&](const SwarmUpdate& u) -> absl::Status {
    if (u.swarm == "refuse") return absl::AlreadyExistsError("refused");
    if (u.swarm == "bad") return absl::ResourceExhaustedError("disk full");
    applied.push_back(u.swarm);
    return absl::OkStatus();
  };
  EXPECT_TRUE(*ApplyBatchWhole({&a, &b}, apply));
  EXPECT_EQ(applied, (std::vector<std::string>{"a", "b"}));
  applied.clear();
  EXPECT_FALSE(*ApplyBatchWhole({&a, &r, &b}, apply));  // the caller redoes it with savepoints
  EXPECT_EQ(applied, (std::vector<std::string>{"a"}));
  EXPECT_EQ(ApplyBatchWhole({&a, &bad, &b}, apply).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// What WhenDurable() handed a callback, and on which thread.
struct Outcome {
  absl::Notification called;
  absl::Status status = absl::UnknownError("not called");
  std::thread::id thread;
  absl::AnyInvocable<void(absl::Status) &&> Callback() {
    return [this](absl::Status s) {
      status = std::move(s);
      thread = std::this_thread::get_id();
      called.Notify();
    };
  }
};

TEST(UpdatePipelineTest, WhenDurableAnswersEachCallbackOnceItsBatchIsResolved) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  const uint64_t a = p.Enqueue(Named("a"));
  const uint64_t r = p.Enqueue(Named("refuse"));
  const uint64_t b = p.Enqueue(Named("b"));
  Outcome oa, orf, ob;
  p.WhenDurable(b, ob.Callback());
  p.WhenDurable(r, orf.Callback());
  p.WhenDurable(a, oa.Callback());
  for (Outcome* o : {&oa, &orf, &ob}) o->called.WaitForNotification();
  EXPECT_TRUE(oa.status.ok()) << oa.status;
  EXPECT_EQ(orf.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(ob.status.ok()) << ob.status;
  // Committed by the pipeline's thread, not the caller's, in one batch.
  EXPECT_NE(ob.thread, std::this_thread::get_id());
  absl::MutexLock lock(&commits.mu);
  ASSERT_EQ(commits.batches.size(), 1u);
  EXPECT_EQ(commits.batches[0], (std::vector<std::string>{"a", "b"}));
}

TEST(UpdatePipelineTest, WhenDurableAnswersAKnownOutcomeAtOnceOnTheCallersThread) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  const uint64_t a = p.Enqueue(Named("a"));
  ASSERT_TRUE(p.WaitDurable(a).ok());
  Outcome none, durable, unknown;
  p.WhenDurable(0, none.Callback());
  p.WhenDurable(a, durable.Callback());
  p.WhenDurable(a + 1, unknown.Callback());
  for (Outcome* o : {&none, &durable, &unknown}) {
    ASSERT_TRUE(o->called.HasBeenNotified());
    EXPECT_EQ(o->thread, std::this_thread::get_id());
  }
  EXPECT_TRUE(none.status.ok());
  EXPECT_TRUE(durable.status.ok());
  EXPECT_EQ(unknown.status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(UpdatePipelineTest, WhenDurableHearsOfAFailedBatchAndOfThePoisonAfterIt) {
  FakeCommits commits;
  UpdatePipeline p(commits.Fn());
  commits.fail = absl::ResourceExhaustedError("disk full");
  Outcome failed;
  p.WhenDurable(p.Enqueue(Named("a")), failed.Callback());
  failed.called.WaitForNotification();
  EXPECT_EQ(failed.status.code(), absl::StatusCode::kResourceExhausted);
  commits.fail = absl::OkStatus();
  Outcome poisoned;  // built on a lost update: refused at once, as WaitDurable would
  p.WhenDurable(p.Enqueue(Named("b")), poisoned.Callback());
  ASSERT_TRUE(poisoned.called.HasBeenNotified());
  EXPECT_EQ(poisoned.status.code(), absl::StatusCode::kResourceExhausted);
  p.Reset();
  Outcome after;
  p.WhenDurable(p.Enqueue(Named("c")), after.Callback());
  after.called.WaitForNotification();
  EXPECT_TRUE(after.status.ok()) << after.status;
}

TEST(UpdatePipelineTest, DestroyingThePipelineCommitsAndAnswersEveryWaitingCallback) {
  absl::Notification first_commit_started, release;
  std::vector<std::string> committed;
  auto p = std::make_unique<UpdatePipeline>(
      [&](const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>&) {
        if (!first_commit_started.HasBeenNotified()) {
          first_commit_started.Notify();
          release.WaitForNotification();
        }
        for (const SwarmUpdate* u : batch) committed.push_back(u->swarm);
        return absl::OkStatus();
      });
  Outcome a, b;
  p->WhenDurable(p->Enqueue(Named("a")), a.Callback());
  first_commit_started.WaitForNotification();  // a's batch is in the commit function
  p->WhenDurable(p->Enqueue(Named("b")), b.Callback());
  std::thread destroy([&] { p.reset(); });
  release.Notify();
  destroy.join();
  ASSERT_TRUE(a.called.HasBeenNotified());
  ASSERT_TRUE(b.called.HasBeenNotified());
  EXPECT_TRUE(a.status.ok());
  EXPECT_TRUE(b.status.ok());
  EXPECT_EQ(committed, (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace wxp::store
