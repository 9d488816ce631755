// The coordinator's live model of a swarm, and what its files share: the stage / commit
// machinery (Serve) and small helpers. Internal to server/coordinator; nothing outside it
// includes this.
//
// Where things are:
//   coordinator.cc  the live model: load / reload from the store, queueing updates, Serve
//   admin.cc        operator actions and status views (create, status, lists, history,
//                   utility weights, pause / resume / stop, best)
//   join.cc         expert joins
//   pool.cc         building the pool once enough experts (and capacity) are there
//   particles.cc    the particle protocol: assignment, targets, reports, closing rounds,
//                   uploaded positions, deadlines
//   leases.cc       several replicas: which swarms this one leads (acquire, renew, drop,
//                   spread), and redirects for the others
//
// Every request runs the same way: Serve takes mu_, the request stages its change on a
// copy of what it touches, queues one store::SwarmUpdate (EnqueueLocked), swaps the copy
// into the live Swarm, and Serve answers once that update is durable.
#ifndef WXP_SERVER_COORDINATOR_INTERNAL_SWARM_STATE_H_
#define WXP_SERVER_COORDINATOR_INTERNAL_SWARM_STATE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/particle_space.h"
#include "common/schema.h"
#include "common/status_macros.h"
#include "common/swarm_engine.h"
#include "common/utility.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/position_blobs.h"
#include "server/spec/swarm_spec.h"
#include "server/store/swarm_store.h"

namespace wxp::server {
namespace coordinator_internal {

inline constexpr size_t kMaxConfigBytes = 64 << 10;
inline constexpr int64_t kRetryAfterMs = 500;

// One evaluation as memory holds it.
struct EvalInfo {
  std::string blob_id;
  bool held = false;
  double utility = 0;
  std::map<std::string, double> scores;
  bool failed = false;
};

EvalInfo InfoOf(const store::EvaluationRecord& e);

// Counters of an iteration that has not closed yet.
struct RoundStats {
  int reports = 0;
  int failed = 0;
  int restarts = 0;
};

// Reports needed before a deadline may close a round of `n` particles.
int QuorumOf(const wxp::v1::SwarmSpec& spec, int n);

google::protobuf::Timestamp ToTimestamp(int64_t ms);

// A position others will move toward must be a well-formed adapter of the swarm's schema
// with finite values. Its size in bytes when it is; InvalidArgument naming the blob if not.
absl::StatusOr<int64_t> CheckPositionBlob(PositionBlobs& blobs, const std::optional<Schema>& schema,
                                          const std::string& blob_id);

absl::Status NotOwner(const Caller& caller, int particle, const std::string& owner);

// The one copy between the engine's state and the store's rows. The swarm row holds the
// engine's globals (g, g_w, closed iterations, last improvement, stopped); each particle's
// engine record lives in its ParticleRow. GlobalsToRow overwrites exactly those fields of
// `row`; EngineStateFromRows is the state they (with `particles`, in particle order) hold.
void GlobalsToRow(const SwarmEngineState& state, store::SwarmRecord& row);
SwarmEngineState EngineStateFromRows(const store::SwarmRecord& row,
                                     const std::vector<store::ParticleRow>& particles);

}  // namespace coordinator_internal

// The live state of one swarm: the store's rows plus the engine rebuilt from them.
struct Coordinator::Swarm {
  store::SwarmRecord row;
  ResolvedSpec resolved;
  UtilityFunction utility;
  std::optional<Schema> schema;
  std::string config_json;
  std::vector<store::ExpertRecord> experts;
  std::vector<store::ParticleRow> particles;  // meta; engine fields are refreshed when persisting
  std::optional<SwarmEngine> engine;
  // (particle, iteration) -> evaluation, for the recent ones only: each particle's latest
  // and those g, g_w, the round's g / g_w and every p_i point at (PruneEvals). The store
  // holds them all; keeping every one made the server's memory grow with every report.
  std::map<std::pair<int, int>, coordinator_internal::EvalInfo> evals;
  std::map<int, coordinator_internal::RoundStats> rounds;  // iteration -> stats of open iterations
  // Audits (SPEC 12): the claims waiting for an auditor, by (particle, iteration). A
  // candidate's evaluation is in `evals` but not in the engine nor in `rounds` until it is
  // decided; PruneEvals keeps every one.
  std::map<std::pair<int, int>, store::AuditClaim> pending_audits;
  // Agent -> when it was last heard from about this swarm (Unix ms). Not persisted: after a
  // load it starts from the stored times of the agent's joins and reports.
  std::map<std::string, int64_t> last_seen_ms;
  // The weight change SetUtilityWeights scheduled for when an iteration closes (stored with
  // the weights, in row.utility).
  std::optional<wxp::v1::ScheduledUtilityWeights> scheduled;
  // The reconcile of unrecorded uploads on load failed (Coordinator::UnrecordedUploadsLocked):
  // the next lease round tries again.
  bool reconcile_due = false;
  // EXPERT_COEFFICIENTS (SPEC 4.3), once the pool exists: the length of every alpha, and
  // the space over the experts (built when first needed: export decodes with it).
  int64_t alpha_dim = 0;
  std::shared_ptr<const ParticleSpace> space;

  bool sync() const { return resolved.spec.mode() == wxp::v1::SYNC; }
  bool audited() const { return resolved.spec.audit().enabled(); }
  // A candidate for g held back until an auditor decides it.
  bool HeldBack(int particle, int iteration) const {
    auto it = pending_audits.find({particle, iteration});
    return it != pending_audits.end() && it->second.candidate;
  }
  bool coefficients() const {
    return resolved.spec.space() == wxp::v1::EXPERT_COEFFICIENTS ||
           resolved.spec.space() == wxp::v1::TOKEN_MIXTURE;
  }
  int pool_size() const {
    return engine ? engine->num_particles() : static_cast<int>(particles.size());
  }

  // Engine globals copied into the row, ready to persist.
  void SyncRow() {
    if (engine) coordinator_internal::GlobalsToRow(engine->state(), row);
  }
  store::ParticleRow RowOf(int i) const {
    store::ParticleRow p = particles[i];
    if (engine) p.engine = engine->particle(i);
    return p;
  }

  // The latest iteration of `particle` held in `evals` (-1 if none).
  int LatestEval(int particle) const;

  // Drops the evaluations nothing in memory refers to any more. Runs once they outnumber
  // the pool a few times over, so its cost per report stays constant.
  void PruneEvals();
};

// Defined here because every file of the coordinator serves its requests through them.
template <typename T>
Coordinator::Served<T> Coordinator::RunLocked(absl::FunctionRef<absl::StatusOr<T>()> locked) {
  Served<T> served;
  absl::MutexLock lock(&mu_);
  if (absl::Status reloaded = ReloadIfNeededLocked(); !reloaded.ok()) {
    served.out = reloaded;  // nothing seen: answered at once
    return served;
  }
  served.out = locked();
  served.seen = last_ticket_;
  served.logs.swap(pending_logs_);
  return served;
}

template <typename T>
absl::StatusOr<T> Coordinator::Answer(Served<T> served, const absl::Status& durable) {
  if (!durable.ok()) return OnWriteFailed(durable);
  for (const std::string& line : served.logs) EmitLog(line);
  return std::move(served.out);
}

// Whatever the answer says, changed or read, may depend on queued updates: it goes out only
// once they are durable (the commit happens without mu_, shared with other requests).
template <typename T>
absl::StatusOr<T> Coordinator::Serve(absl::FunctionRef<absl::StatusOr<T>()> locked) {
  Served<T> served = RunLocked(locked);
  const absl::Status durable = options_.store->WaitDurable(served.seen);
  return Answer(std::move(served), durable);
}

template <typename T>
void Coordinator::ServeAsync(Done<T> done, absl::FunctionRef<absl::StatusOr<T>()> locked) {
  Served<T> served = RunLocked(locked);
  const store::SwarmStore::Ticket seen = served.seen;
  options_.store->WhenDurable(
      seen, [this, served = std::move(served), done = std::move(done)](absl::Status d) mutable {
        std::move(done)(Answer(std::move(served), d));
      });
}

}  // namespace wxp::server

#endif  // WXP_SERVER_COORDINATOR_INTERNAL_SWARM_STATE_H_
