// Group commit for SwarmStore implementations (SwarmStore::Enqueue / WaitDurable): an
// ordered queue of updates and a leader that commits whatever is queued as one batch.
//
// Enqueue() only appends. The first WaitDurable() caller that finds no commit running becomes
// the leader: it takes every queued update and hands them to the store's commit function at
// once (one transaction, one fsync); updates enqueued meanwhile form the next batch. So under
// load many updates share a commit, and an idle store commits each update alone.
//
// Outcomes, per ticket:
//  - OK: the update and every earlier one that was not refused are committed.
//  - Refused (NotFound, AlreadyExists, InvalidArgument, or a LeaseLostError, as the commit
//    function reports for that update alone): only that update is rolled back; the rest of
//    its batch commits.
//  - Batch failure (anything else the commit function returns, e.g. a full disk): nothing of
//    the batch is committed, every ticket of it and every ticket queued behind it fails with
//    that status, and so does every ticket enqueued afterwards until Reset(). Callers that
//    enqueue updates computed on top of earlier, not yet durable ones rely on this: nothing
//    built on a lost update can commit.
//
// Thread-safety: all methods are thread-safe. The commit function runs on the leader's thread
// (or the committer's) without the pipeline's lock held, never concurrently with itself.
#ifndef WXP_SERVER_STORE_UPDATE_PIPELINE_H_
#define WXP_SERVER_STORE_UPDATE_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store/swarm_store.h"

namespace wxp::store {

class UpdatePipeline {
 public:
  // Commits `batch` in one transaction. Sets refused[i] for an update refused alone (its
  // effects rolled back, the others kept); returns non-OK if nothing was committed at all.
  using CommitFn = std::function<absl::Status(const std::vector<const SwarmUpdate*>& batch,
                                              std::vector<absl::Status>& refused)>;

  explicit UpdatePipeline(CommitFn commit) : commit_(std::move(commit)) {}

  // Commits whatever is still awaited, runs the pending callbacks, stops its threads.
  ~UpdatePipeline();

  uint64_t Enqueue(SwarmUpdate update);
  absl::Status WaitDurable(uint64_t ticket);
  // `done` receives the outcome WaitDurable(ticket) would return: at once, on this thread, if
  // it is known; otherwise on the pipeline's answering thread, with no lock of the pipeline held,
  // after the batch holding `ticket` is resolved. It must not block on this pipeline.
  void WhenDurable(uint64_t ticket, absl::AnyInvocable<void(absl::Status) &&> done);
  void Reset();
  // How many tickets have failed so far (refused or in a failed batch).
  uint64_t failures() const { return failures_.load(std::memory_order_acquire); }

  // A refusal concerns one update; any other error concerns the whole batch.
  static bool IsRefusal(const absl::Status& s);

  // Watching every pipeline's commits (the server's metrics): after each call of a commit
  // function, on the leader's thread with no lock of the pipeline held, every observer sees
  // the batch's size, how long the commit took and whether it committed. Observers are
  // process-wide, like the metrics they feed; they must be quick and must not call back
  // into a pipeline. RemoveCommitObserver waits for no call in progress: an observer's
  // state must outlive any commit that may be running when it is removed.
  struct CommitStats {
    size_t updates = 0;
    double seconds = 0;
    bool committed = false;  // false: the whole batch failed
  };
  using CommitObserver = std::function<void(const CommitStats&)>;
  static uint64_t AddCommitObserver(CommitObserver observer);  // returns its id
  static void RemoveCommitObserver(uint64_t id);

 private:
  struct Entry {
    uint64_t ticket;
    SwarmUpdate update;
  };
  absl::Status OutcomeLocked(uint64_t ticket) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Commits everything queued as one batch (the caller saw no commit running and a
  // non-empty queue) and resolves its tickets; drops mu_ while the commit function runs.
  void CommitQueuedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The loops of the two threads behind WhenDurable: one commits while a callback waits on
  // the queue, the other runs the callbacks of resolved tickets, so that answering one
  // batch's callers overlaps with committing the next.
  void RunCommitter();
  void RunAnswerer();
  // Whether each has something to do (or may stop: nothing left for it, and told to).
  bool CommitterHasWork() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool AnswererHasWork() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void FailLocked(uint64_t ticket, const absl::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CommitFn commit_;
  mutable absl::Mutex mu_;
  absl::CondVar done_;  // signalled when a batch finishes
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t last_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  bool committing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status poison_ ABSL_GUARDED_BY(mu_);  // the failed batch's error until Reset()
  // Failed tickets and why; the oldest are forgotten past kFailuresKept.
  std::map<uint64_t, absl::Status> failed_ ABSL_GUARDED_BY(mu_);
  uint64_t forgotten_through_ ABSL_GUARDED_BY(mu_) = 0;  // newest failure no longer in failed_
  // Mirrors for the lock-free fast path of WaitDurable.
  std::atomic<uint64_t> resolved_through_{0};  // every ticket <= this has its outcome
  std::atomic<uint64_t> last_failed_{0};
  std::atomic<uint64_t> failures_{0};
  // WhenDurable's callbacks by ticket, and the threads that serve them (started lazily).
  std::multimap<uint64_t, absl::AnyInvocable<void(absl::Status) &&>> callbacks_
      ABSL_GUARDED_BY(mu_);
  std::thread committer_ ABSL_GUARDED_BY(mu_);
  std::thread answerer_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// The body of a SQL store's batch commit, inside its open transaction: applies each update
// with `apply`; a refusal (IsRefusal) is recorded in `refused` and undone alone, any other
// error fails the batch. With several updates each runs in its own savepoint, issued through
// `execute` (SQL both SQLite and PostgreSQL accept); alone, the transaction is its savepoint
// and a refusal leaves nothing to commit. Returns whether the caller must commit.
absl::StatusOr<bool> ApplyBatchInSavepoints(
    const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>& refused,
    const std::function<absl::Status(const SwarmUpdate&)>& apply,
    const std::function<absl::Status(const char* sql)>& execute);

// For a store where each statement is a round trip (PostgreSQL), the savepoints above double
// the cost of a batch. This applies the batch inside the caller's open transaction with none:
// true if every update applied (the caller commits); false at the first refusal, after which
// the caller must roll back and apply the batch again with ApplyBatchInSavepoints. Refusals
// are rare (a retried report, a lost lease), so batches mostly commit on the first pass.
absl::StatusOr<bool> ApplyBatchWhole(const std::vector<const SwarmUpdate*>& batch,
                                     const std::function<absl::Status(const SwarmUpdate&)>& apply);

}  // namespace wxp::store

#endif  // WXP_SERVER_STORE_UPDATE_PIPELINE_H_
