#include "server/store/update_pipeline.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace wxp::store {
namespace {

// Enough for any waiter that asks about its ticket soon after enqueueing it.
constexpr size_t kFailuresKept = 1 << 16;

struct Observers {
  absl::Mutex mu;
  uint64_t next_id ABSL_GUARDED_BY(mu) = 0;
  std::map<uint64_t, std::shared_ptr<const UpdatePipeline::CommitObserver>> by_id
      ABSL_GUARDED_BY(mu);
};

Observers& CommitObservers() {
  static Observers* observers = new Observers();
  return *observers;
}

void NotifyCommitObservers(const UpdatePipeline::CommitStats& stats) {
  std::vector<std::shared_ptr<const UpdatePipeline::CommitObserver>> observers;
  {
    Observers& o = CommitObservers();
    absl::MutexLock lock(&o.mu);
    for (const auto& [id, observer] : o.by_id) observers.push_back(observer);
  }
  for (const auto& observer : observers) (*observer)(stats);
}

}  // namespace

uint64_t UpdatePipeline::AddCommitObserver(CommitObserver observer) {
  Observers& o = CommitObservers();
  absl::MutexLock lock(&o.mu);
  const uint64_t id = ++o.next_id;
  o.by_id[id] = std::make_shared<const CommitObserver>(std::move(observer));
  return id;
}

void UpdatePipeline::RemoveCommitObserver(uint64_t id) {
  Observers& o = CommitObservers();
  absl::MutexLock lock(&o.mu);
  o.by_id.erase(id);
}

bool UpdatePipeline::IsRefusal(const absl::Status& s) {
  // A lost lease concerns one swarm: the other swarms' updates in the batch still commit.
  return absl::IsNotFound(s) || absl::IsAlreadyExists(s) || absl::IsInvalidArgument(s) ||
         LeaseLostSwarm(s).has_value();
}

void UpdatePipeline::FailLocked(uint64_t ticket, const absl::Status& s) {
  failed_[ticket] = s;
  if (failed_.size() > kFailuresKept) {
    forgotten_through_ = std::max(forgotten_through_, failed_.begin()->first);
    failed_.erase(failed_.begin());
  }
  if (ticket > last_failed_.load(std::memory_order_relaxed)) {
    last_failed_.store(ticket, std::memory_order_release);
  }
  failures_.fetch_add(1, std::memory_order_acq_rel);
}

uint64_t UpdatePipeline::Enqueue(SwarmUpdate update) {
  absl::MutexLock lock(&mu_);
  const uint64_t ticket = ++last_ticket_;
  if (!poison_.ok()) {
    // Nothing is queued or committing while poisoned (the failed batch took the queue with
    // it), so this ticket is resolved at once without breaking the order of outcomes.
    FailLocked(ticket, poison_);
    resolved_through_.store(ticket, std::memory_order_release);
    return ticket;
  }
  queue_.push_back({ticket, std::move(update)});
  return ticket;
}

absl::Status UpdatePipeline::OutcomeLocked(uint64_t ticket) const {
  auto it = failed_.find(ticket);
  if (it != failed_.end()) return it->second;
  // Past the window, "not failed" may mean "failure forgotten": never claim durability on
  // a guess. The caller's retry is idempotent.
  if (ticket > 0 && ticket <= forgotten_through_) {  // 0: "no update", never failed
    return absl::UnavailableError(
        absl::StrCat("the outcome of store update ", ticket, " is no longer known; retry"));
  }
  return absl::OkStatus();
}

absl::Status UpdatePipeline::WaitDurable(uint64_t ticket) {
  if (ticket <= resolved_through_.load(std::memory_order_acquire) &&
      ticket > last_failed_.load(std::memory_order_acquire)) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  if (ticket > last_ticket_) {
    return absl::InvalidArgumentError(absl::StrCat("ticket ", ticket, " was never issued"));
  }
  for (;;) {
    if (ticket <= resolved_through_.load(std::memory_order_relaxed)) return OutcomeLocked(ticket);
    if (committing_) {
      done_.Wait(&mu_);
      continue;
    }
    if (queue_.empty()) {
      return absl::InternalError(
          absl::StrCat("ticket ", ticket, " is neither queued nor resolved"));
    }
    // Lead: commit everything queued so far, ours included.
    CommitQueuedLocked();
  }
}

void UpdatePipeline::CommitQueuedLocked() {
  std::deque<Entry> batch;
  batch.swap(queue_);
  committing_ = true;
  std::vector<const SwarmUpdate*> updates;
  updates.reserve(batch.size());
  for (const Entry& e : batch) updates.push_back(&e.update);
  std::vector<absl::Status> refused(batch.size());
  mu_.Unlock();
  const auto started = std::chrono::steady_clock::now();
  const absl::Status s = commit_(updates, refused);
  NotifyCommitObservers(
      {updates.size(),
       std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), s.ok()});
  mu_.Lock();
  committing_ = false;
  uint64_t through = batch.back().ticket;
  if (s.ok()) {
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!refused[i].ok()) FailLocked(batch[i].ticket, refused[i]);
    }
  } else {
    // Those queued meanwhile may build on this batch: they fail with it.
    poison_ = s;
    for (const Entry& e : batch) FailLocked(e.ticket, s);
    for (const Entry& e : queue_) FailLocked(e.ticket, s);
    if (!queue_.empty()) through = queue_.back().ticket;
    queue_.clear();
  }
  resolved_through_.store(through, std::memory_order_release);
  done_.SignalAll();
}

void UpdatePipeline::WhenDurable(uint64_t ticket, absl::AnyInvocable<void(absl::Status) &&> done) {
  if (ticket <= resolved_through_.load(std::memory_order_acquire) &&
      ticket > last_failed_.load(std::memory_order_acquire)) {
    std::move(done)(absl::OkStatus());
    return;
  }
  absl::Status known;
  {
    absl::MutexLock lock(&mu_);
    if (ticket > last_ticket_) {
      known = absl::InvalidArgumentError(absl::StrCat("ticket ", ticket, " was never issued"));
    } else if (ticket <= resolved_through_.load(std::memory_order_relaxed)) {
      known = OutcomeLocked(ticket);
    } else {
      callbacks_.emplace(ticket, std::move(done));
      if (!committer_.joinable()) {
        committer_ = std::thread([this] { RunCommitter(); });
        answerer_ = std::thread([this] { RunAnswerer(); });
      }
      return;
    }
  }
  std::move(done)(known);
}

bool UpdatePipeline::CommitterHasWork() const {
  const bool unresolved =
      !callbacks_.empty() &&
      callbacks_.rbegin()->first > resolved_through_.load(std::memory_order_relaxed);
  if (!unresolved) return stopping_;
  return !committing_ && !queue_.empty();
}

bool UpdatePipeline::AnswererHasWork() const {
  if (callbacks_.empty()) return stopping_;
  return callbacks_.begin()->first <= resolved_through_.load(std::memory_order_relaxed);
}

void UpdatePipeline::RunCommitter() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    mu_.Await(absl::Condition(this, &UpdatePipeline::CommitterHasWork));
    if (!committing_ && !queue_.empty()) {
      CommitQueuedLocked();
    } else {
      return;  // stopping, and no callback waits for a commit any more
    }
  }
}

void UpdatePipeline::RunAnswerer() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    mu_.Await(absl::Condition(this, &UpdatePipeline::AnswererHasWork));
    if (callbacks_.empty()) return;  // stopping
    const uint64_t resolved = resolved_through_.load(std::memory_order_relaxed);
    std::vector<std::pair<absl::AnyInvocable<void(absl::Status) &&>, absl::Status>> ready;
    while (!callbacks_.empty() && callbacks_.begin()->first <= resolved) {
      auto it = callbacks_.begin();
      ready.emplace_back(std::move(it->second), OutcomeLocked(it->first));
      callbacks_.erase(it);
    }
    mu_.Unlock();
    for (auto& [callback, outcome] : ready) std::move(callback)(outcome);
    mu_.Lock();
  }
}

UpdatePipeline::~UpdatePipeline() {
  std::thread committer, answerer;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    committer = std::move(committer_);
    answerer = std::move(answerer_);
  }
  // The committer resolves every waiting callback before it stops; the answerer runs them.
  if (committer.joinable()) committer.join();
  if (answerer.joinable()) answerer.join();
}

void UpdatePipeline::Reset() {
  absl::MutexLock lock(&mu_);
  poison_ = absl::OkStatus();
}

absl::StatusOr<bool> ApplyBatchInSavepoints(
    const std::vector<const SwarmUpdate*>& batch, std::vector<absl::Status>& refused,
    const std::function<absl::Status(const SwarmUpdate&)>& apply,
    const std::function<absl::Status(const char* sql)>& execute) {
  if (batch.size() == 1) {
    absl::Status s = apply(*batch[0]);
    if (UpdatePipeline::IsRefusal(s)) {
      refused[0] = s;
      return false;  // rolled back with the transaction
    }
    WXP_RETURN_IF_ERROR(s);
    return true;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    WXP_RETURN_IF_ERROR(execute("SAVEPOINT one_update"));
    absl::Status s = apply(*batch[i]);
    if (UpdatePipeline::IsRefusal(s)) {
      refused[i] = s;
      WXP_RETURN_IF_ERROR(execute("ROLLBACK TO SAVEPOINT one_update"));
    } else {
      WXP_RETURN_IF_ERROR(s);
    }
    WXP_RETURN_IF_ERROR(execute("RELEASE SAVEPOINT one_update"));
  }
  return true;
}

absl::StatusOr<bool> ApplyBatchWhole(const std::vector<const SwarmUpdate*>& batch,
                                     const std::function<absl::Status(const SwarmUpdate&)>& apply) {
  for (const SwarmUpdate* u : batch) {
    absl::Status s = apply(*u);
    if (UpdatePipeline::IsRefusal(s)) return false;
    WXP_RETURN_IF_ERROR(s);
  }
  return true;
}

}  // namespace wxp::store
