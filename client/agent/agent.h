// wxp-agent's engine (SPEC 5.2 step 3): contributes this site's experts to a swarm, then
// runs the particles the server assigns: targets -> fetch missing blobs (content-addressed
// cache) -> move locally -> evaluate locally -> report -> upload when asked, until the
// swarm is done.
//
// Local training (SPEC 4.4): when the swarm's spec asks for it
// (GetAssignmentResponse.local_training), a particle moved in a due iteration is trained by
// the evaluator (CandidateEvaluator::Train) before it is evaluated, with the seed and the
// velocity rule of common/swarm_engine.h, exactly as the in-process runner trains it (or by
// the site's train_command, client/agent/train_command.h). A failed training keeps the
// moved position, which is evaluated and reported as usual; it is logged
// (event=local_training_failed) and the report tells the server
// (ReportRequest.training_failed); it is never fatal. An agent whose evaluator cannot train
// (CanTrain() false: an external command without train_command) refuses such a swarm from
// Run() with FailedPrecondition before any particle work, rather than silently running
// another search than the spec asks for. Training is part of the move: a crash
// mid-training recomputes move and training alike.
//
// Crash safety: every particle's state (x, v, p, last acknowledged iteration, and the move
// in flight with its scores once known) lives in the work directory and is replaced
// atomically at each step, so a killed agent resumes where it stopped: a report whose
// answer was lost is resent verbatim (the server acknowledges it as a duplicate), a move
// is never recomputed after it was reported, and an iteration is never skipped.
//
// Connection loss: calls that fail with a retryable code (common/retry.h: server restarting,
// network, full disk) are retried with exponential backoff and jitter; the agent never
// busy-loops.
#ifndef WXP_CLIENT_AGENT_AGENT_H_
#define WXP_CLIENT_AGENT_AGENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/agent/agent_observer.h"
#include "client/agent/candidate_evaluator.h"
#include "client/net/connection.h"
#include "common/clock.h"

namespace wxp::agent {

struct AgentOptions {
  std::string swarm;
  // PEFT directories or .safetensors files, in the order they join.
  std::vector<std::string> expert_paths;
  int capacity = 1;
  // Crash-safe state and blob cache; locked while the agent runs.
  std::string work_dir;
  // Waits between retries of a retryable failure (common/backoff.h): from initial, doubling,
  // up to max, jittered by +-20% from `backoff_seed` (0: a random seed, so agents that lost
  // the server together do not return in lockstep).
  absl::Duration backoff_initial = absl::Milliseconds(500);
  absl::Duration backoff_max = absl::Seconds(30);
  uint64_t backoff_seed = 0;
  // Retry waits, WAIT answers and evaluation timing go through it; the heartbeat keeps
  // real time (it is a timer of its own thread).
  Clock* clock = Clock::Real();
  absl::Duration heartbeat_interval = absl::Seconds(30);
  std::string agent_version = "wxp-agent";
  // One line per event; defaults to stderr with a timestamp.
  std::function<void(const std::string&)> log;
  // Optional, not owned (must outlive Run()): hears of evaluations, blob bytes, retries and
  // acknowledged reports (wxp-agent's metrics).
  AgentObserver* observer = nullptr;
  // SPEC 12 (AgentConfig.require_private_experts): Create refuses experts without a valid
  // DP record (common/dp_record.h) or with ε above max_expert_epsilon (0: any), and Run
  // refuses a swarm that asks for local training.
  bool require_private_experts = false;
  double max_expert_epsilon = 0;
};

struct AgentSummary {
  int iterations_reported = 0;  // acknowledged reports, initial ones included
  int evaluations_failed = 0;
  int trainings = 0;            // local trainings applied (SPEC 4.4), in this Run()
  int trainings_failed = 0;     // local trainings that failed (the moved position was kept)
  uint64_t bytes_uploaded = 0;  // payload bytes on the wire, experts included
  uint64_t bytes_downloaded = 0;
  uint64_t expert_bytes_uploaded = 0;
  bool swarm_done = false;  // false: stopped by Stop()
};

class Agent {
 public:
  // Checks the options and the experts (readable safetensors; with require_private_experts,
  // a DP record within the budget: FailedPrecondition naming the expert otherwise), creates
  // and locks the work directory (FailedPrecondition if another agent holds it).
  static absl::StatusOr<std::unique_ptr<Agent>> Create(
      AgentOptions options, client::Connection* connection,
      std::unique_ptr<CandidateEvaluator> evaluator);
  ~Agent();

  // Joins and runs until every hosted particle is done (the swarm finished or was stopped)
  // or Stop() is called. Errors are permanent ones only: the server refused the join or a
  // report for a reason a retry cannot cure (the message says which), or local state is
  // unusable.
  absl::StatusOr<AgentSummary> Run();

  // Asks Run() to return at the next step boundary (state stays consistent); interrupts
  // backoff waits. Thread-safe.
  void Stop();

 private:
  struct Impl;
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_AGENT_H_
