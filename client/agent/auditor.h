// wxp-agent as an auditor (SPEC 12; proto/swarm_spec.proto AuditPolicy): run with role
// auditor (its certificate's, or the plaintext role), it hosts no particles. It pulls the
// claims the server wants checked, fetches each position (a blob in WEIGHTS; alpha, decoded
// over the swarm's experts, in EXPERT_COEFFICIENTS; alpha over whole models in
// TOKEN_MIXTURE), evaluates it with this site's own evaluator (the vendor's data) exactly
// as an agent evaluates a candidate, and reports the scores. The server decides; a failed
// evaluation is reported as such and decides nothing (the claim stays pending).
//
// It keeps no state beyond its blob cache: a restarted auditor pulls again, and a verdict
// whose answer was lost is answered again as already decided.
#ifndef WXP_CLIENT_AGENT_AUDITOR_H_
#define WXP_CLIENT_AGENT_AUDITOR_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/agent/candidate_evaluator.h"
#include "client/net/connection.h"
#include "common/clock.h"

namespace wxp::agent {

struct AuditorOptions {
  // The swarm whose claims to audit. Run() returns once it is FINISHED or STOPPED and has
  // nothing left to audit.
  std::string swarm;
  // The blob cache and scratch files; created if missing.
  std::string work_dir;
  absl::Duration backoff_initial = absl::Milliseconds(500);
  absl::Duration backoff_max = absl::Seconds(30);
  Clock* clock = Clock::Real();
  // One line per event; defaults to stderr.
  std::function<void(const std::string&)> log;
};

struct AuditorSummary {
  int confirmed = 0;
  int disputed = 0;
  int failed = 0;           // evaluations that failed (reported, deciding nothing)
  bool swarm_done = false;  // false: stopped by Stop()
};

class Auditor {
 public:
  // `connection` (not owned) must carry role auditor.
  static absl::StatusOr<std::unique_ptr<Auditor>> Create(
      AuditorOptions options, client::Connection* connection,
      std::unique_ptr<CandidateEvaluator> evaluator);
  ~Auditor();

  // Audits until the swarm is over or Stop(). Errors are permanent ones (the server refused
  // the auditor: wrong role, unknown swarm) or an unusable work directory.
  absl::StatusOr<AuditorSummary> Run();
  // Returns Run() at the next task boundary. Thread-safe.
  void Stop();

 private:
  struct Impl;
  explicit Auditor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_AUDITOR_H_
