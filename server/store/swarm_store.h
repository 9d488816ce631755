// The server's durable state (SPEC 6) behind one narrow interface: SQLite in production
// (sqlite_store.h), an in-memory fake for tests (memory_store.h); one contract test suite
// runs against both.
//
// Reads return copies and see only committed updates. A SwarmUpdate is applied atomically:
// after a crash either all of it is visible or none. Updates are committed in the order they
// were enqueued; once WaitDurable() (or Apply()) returns OK for one, it and every earlier
// one that was not refused is durable (what the server acknowledges is never lost).
//
// Group commit: Enqueue() queues an update without I/O and returns its ticket;
// WaitDurable(ticket) commits the queue in one transaction if no commit is running, or waits
// for the one that is, so concurrent writers share a transaction and its fsync (WhenDurable()
// is the same wait with a callback, for callers that must not park a thread). A
// refused update (NotFound, AlreadyExists, InvalidArgument, LeaseLostError) is rolled back alone.
// Any other failure (a full disk, an I/O error) fails its whole batch, everything queued behind it
// and everything enqueued later, until ResumeAfterFailure(): whoever enqueued updates computed from
// ones not yet durable must first rebuild its view from the store, then resume. (update_pipeline.h
// has the details.)
//
// Thread-safety: implementations are thread-safe; reads and writes are serialised
// internally, and WaitDurable() may be called from any thread, holding any caller lock that
// the store itself never takes.
#ifndef WXP_SERVER_STORE_SWARM_STORE_H_
#define WXP_SERVER_STORE_SWARM_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "common/identity.h"
#include "common/swarm_engine.h"

namespace wxp::store {

// A swarm's lifecycle state. Stored as its number, which is wxp.v1.SwarmState's for the same
// state (so a database stays readable, and the coordinator converts with a cast).
enum class SwarmState : int32_t {
  kUnspecified = 0,
  kPendingExperts = 1,
  kRunning = 2,
  kPaused = 3,
  kFinished = 4,
  kStopped = 5,
};

struct SwarmRecord {
  std::string name;
  std::string spec;  // serialized wxp.v1.SwarmSpec as created (seed filled in)
  SwarmState state = SwarmState::kUnspecified;
  std::string termination;  // "", "patience", "max_iterations", "stopped"
  int64_t created_ms = 0;
  int32_t utility_version = 1;
  std::string utility;  // serialized wxp.v1.UtilityWeights of utility_version
  // Engine globals (the particle part lives in ParticleRecord rows).
  PositionRef global_best;
  double global_best_utility = 0;
  PositionRef global_worst;
  double global_worst_utility = 0;
  int32_t closed_iterations = 0;
  int32_t last_global_improvement = 0;
  bool stopped = false;
  // Sync rounds: the iteration whose round is open, when it opened, and g / g_w as they
  // were then (every target of the round uses these, whatever reports arrive meanwhile).
  int32_t open_round = 0;
  int64_t round_opened_ms = 0;
  PositionRef round_best;
  double round_best_utility = 0;
  PositionRef round_worst;
  double round_worst_utility = 0;
};

// A particle: the engine's bookkeeping plus where it lives.
struct ParticleRow {
  int32_t particle_id = 0;
  std::string owner;  // client identity of the hosting agent ("" until assigned)
  std::string initial_blob_id;
  std::string velocity_partner_blob_id;  // RANDOM_PEER: v = x_partner - x
  std::string current_blob_id;           // position after its last report
  int64_t last_report_ms = 0;
  ParticleRecord engine;
};

struct EvaluationRecord {
  int32_t particle_id = 0;
  int32_t iteration = 0;
  std::string blob_id;     // the evaluated position's id (always reported)
  bool blob_held = false;  // the server has the bytes (uploaded)
  std::map<std::string, double> scores;
  double utility = 0;  // under utility_version
  int32_t utility_version = 1;
  bool failed = false;
  std::string failure_reason;
  double evaluation_seconds = 0;
  int64_t time_ms = 0;
};

struct HistoryRecord {
  int32_t iteration = 0;
  int32_t utility_version = 1;
  double global_best_utility = 0;
  double global_worst_utility = 0;
  double mean_utility = 0;
  double step_length = 0;
  int32_t restarts = 0;
  int32_t reports = 0;
  int64_t closed_ms = 0;
};

struct ExpertRecord {
  int32_t ordinal = 0;  // join order across agents (the pool orders experts by blob id)
  std::string agent;
  std::string blob_id;
  int64_t joined_ms = 0;
  int32_t capacity = 1;     // the agent's declared capacity when it joined
  std::string config_json;  // the expert's adapter_config.json, verbatim ("" if none)
};

struct ClientRecord {
  Identity client;
  int64_t first_seen_ms = 0;
  int64_t last_seen_ms = 0;
  bool revoked = false;
  // Audits of the client's claims (SPEC 12): counts, the disputes since its quarantine was
  // last lifted, and whether it is quarantined (refused like a revoked client).
  int32_t audits_confirmed = 0;
  int32_t audits_disputed = 0;
  int32_t strikes = 0;
  bool quarantined = false;
};

// An audited claim (SPEC 12): one evaluation an auditor is to check or has checked.
enum class AuditState : int32_t {
  // Stored as its number, which is wxp.v1.AuditVerdict's for the same state.
  kPending = 1,
  kConfirmed = 2,
  kDisputed = 3,
};

struct AuditClaim {
  int32_t particle_id = 0;
  int32_t iteration = 0;
  std::string reporter;  // client identity of the evaluation's reporter
  // Held back from g until decided (a candidate for g); else drawn for the sample and
  // counted at once.
  bool candidate = false;
  AuditState state = AuditState::kPending;
  std::map<std::string, double> audited_scores;  // empty while pending
  std::string auditor;                           // "" while pending
  int64_t decided_ms = 0;                        // 0 while pending
};

// A decided audit's effect on its reporter, applied with the verdict: +1 confirmed, or +1
// disputed and +1 strike, quarantining the client once strikes reach quarantine_after. A
// client not on record yet is created (role agent, seen now).
struct StandingChange {
  std::string client;
  bool disputed = false;
  int32_t quarantine_after = 0;
  int64_t now_ms = 0;
};

struct AuditRecord {
  int64_t time_ms = 0;
  std::string actor;
  std::string action;
  std::string swarm;
  std::string detail;
};

struct BlobRecord {
  std::string id;
  int64_t size = 0;
  int64_t refcount = 0;
};

// Field-wise equality, for tests and idempotency checks.
inline bool operator==(const SwarmRecord& a, const SwarmRecord& b) {
  return std::tie(a.name, a.spec, a.state, a.termination, a.created_ms, a.utility_version,
                  a.utility, a.global_best, a.global_best_utility, a.global_worst,
                  a.global_worst_utility, a.closed_iterations, a.last_global_improvement, a.stopped,
                  a.open_round, a.round_opened_ms, a.round_best, a.round_best_utility,
                  a.round_worst, a.round_worst_utility) ==
         std::tie(b.name, b.spec, b.state, b.termination, b.created_ms, b.utility_version,
                  b.utility, b.global_best, b.global_best_utility, b.global_worst,
                  b.global_worst_utility, b.closed_iterations, b.last_global_improvement, b.stopped,
                  b.open_round, b.round_opened_ms, b.round_best, b.round_best_utility,
                  b.round_worst, b.round_worst_utility);
}

inline bool operator==(const ParticleRow& a, const ParticleRow& b) {
  return std::tie(a.particle_id, a.owner, a.initial_blob_id, a.velocity_partner_blob_id,
                  a.current_blob_id, a.last_report_ms, a.engine) ==
         std::tie(b.particle_id, b.owner, b.initial_blob_id, b.velocity_partner_blob_id,
                  b.current_blob_id, b.last_report_ms, b.engine);
}

inline bool operator==(const EvaluationRecord& a, const EvaluationRecord& b) {
  return std::tie(a.particle_id, a.iteration, a.blob_id, a.blob_held, a.scores, a.utility,
                  a.utility_version, a.failed, a.failure_reason, a.evaluation_seconds, a.time_ms) ==
         std::tie(b.particle_id, b.iteration, b.blob_id, b.blob_held, b.scores, b.utility,
                  b.utility_version, b.failed, b.failure_reason, b.evaluation_seconds, b.time_ms);
}

inline bool operator==(const HistoryRecord& a, const HistoryRecord& b) {
  return std::tie(a.iteration, a.utility_version, a.global_best_utility, a.global_worst_utility,
                  a.mean_utility, a.step_length, a.restarts, a.reports, a.closed_ms) ==
         std::tie(b.iteration, b.utility_version, b.global_best_utility, b.global_worst_utility,
                  b.mean_utility, b.step_length, b.restarts, b.reports, b.closed_ms);
}

inline bool operator==(const ExpertRecord& a, const ExpertRecord& b) {
  return std::tie(a.ordinal, a.agent, a.blob_id, a.joined_ms, a.capacity, a.config_json) ==
         std::tie(b.ordinal, b.agent, b.blob_id, b.joined_ms, b.capacity, b.config_json);
}

inline bool operator==(const ClientRecord& a, const ClientRecord& b) {
  return std::tie(a.client, a.first_seen_ms, a.last_seen_ms, a.revoked, a.audits_confirmed,
                  a.audits_disputed, a.strikes, a.quarantined) ==
         std::tie(b.client, b.first_seen_ms, b.last_seen_ms, b.revoked, b.audits_confirmed,
                  b.audits_disputed, b.strikes, b.quarantined);
}

inline bool operator==(const AuditClaim& a, const AuditClaim& b) {
  return std::tie(a.particle_id, a.iteration, a.reporter, a.candidate, a.state, a.audited_scores,
                  a.auditor, a.decided_ms) == std::tie(b.particle_id, b.iteration, b.reporter,
                                                       b.candidate, b.state, b.audited_scores,
                                                       b.auditor, b.decided_ms);
}

inline bool operator==(const AuditRecord& a, const AuditRecord& b) {
  return std::tie(a.time_ms, a.actor, a.action, a.swarm, a.detail) ==
         std::tie(b.time_ms, b.actor, b.action, b.swarm, b.detail);
}

inline bool operator==(const BlobRecord& a, const BlobRecord& b) {
  return std::tie(a.id, a.size, a.refcount) == std::tie(b.id, b.size, b.refcount);
}

// One atomic change. Everything refers to `swarm` (which must exist) except client and
// blob changes. Applied in field order; any failure rolls the whole update back.
struct SwarmUpdate {
  std::string swarm;
  std::optional<SwarmRecord> swarm_row;  // replaces the row; its name must equal `swarm`
  std::vector<ParticleRow> particles;    // insert or replace by particle_id
  std::vector<ExpertRecord> experts;     // insert; AlreadyExists on a duplicate ordinal
  // Insert; AlreadyExists if (particle_id, iteration) is already recorded.
  std::optional<EvaluationRecord> evaluation;
  // Marks recorded evaluations' blobs as held: (particle_id, iteration).
  std::vector<std::pair<int32_t, int32_t>> blobs_now_held;
  std::vector<HistoryRecord> history;  // insert; replaces (iteration, utility_version)
  std::vector<AuditRecord> audit;
  std::vector<BlobRecord> blob_refs;     // +1 reference each (created with the given size)
  std::vector<std::string> blob_unrefs;  // -1 reference each; never below zero
  // Insert or replace by (particle_id, iteration); NotFound unless that evaluation is
  // recorded (in this update or before).
  std::vector<AuditClaim> audits;
  std::vector<StandingChange> standings;
  // Several replicas (SPEC 6.1; lease.h): the fencing token of the lease of `swarm` under
  // which this update was computed. A store that checks fences (PostgreSQL with
  // require_fence) commits the update only if that lease still has this token, checked in
  // the update's own transaction, and refuses it with LeaseLostError otherwise: a replica
  // that lost the lease (paused, partitioned) can never commit. 0: no lease (one server);
  // stores without replicas (SQLite, memory) ignore it.
  int64_t fence = 0;
};

// The refusal of an update whose fence is no longer the swarm's lease token: UNAVAILABLE
// (another replica leads the swarm now), carrying the swarm's name as a payload so that the
// writer can drop the swarm. A refusal of that update alone (UpdatePipeline::IsRefusal).
inline constexpr char kLeaseLostPayload[] = "wxp.store/lease_lost";
inline absl::Status LeaseLostError(const std::string& swarm) {
  absl::Status s = absl::UnavailableError("this replica no longer holds the lease of swarm '" +
                                          swarm + "'; another replica leads it now");
  s.SetPayload(kLeaseLostPayload, absl::Cord(swarm));
  return s;
}
// The swarm whose lease was lost, if `s` is a LeaseLostError.
inline std::optional<std::string> LeaseLostSwarm(const absl::Status& s) {
  auto swarm = s.GetPayload(kLeaseLostPayload);  // absl::optional
  if (!swarm) return std::nullopt;
  return std::string(*swarm);
}

class SwarmStore {
 public:
  virtual ~SwarmStore() = default;

  // Creates a swarm; AlreadyExists if the name is taken (nothing written then).
  virtual absl::Status CreateSwarm(const SwarmRecord& swarm, const AuditRecord& audit) = 0;
  // Identifies an enqueued update; 0 stands for "none" and is always durable.
  using Ticket = uint64_t;

  // Queues an update behind every earlier one; cheap, no I/O. Its outcome comes from
  // WaitDurable().
  virtual Ticket Enqueue(SwarmUpdate update) = 0;
  // Returns once `ticket` is committed durably, with the outcome of its update: OK;
  // NotFound for an unknown swarm, AlreadyExists for a duplicate evaluation or expert,
  // InvalidArgument for a malformed update (that update alone is rolled back); or the error
  // of the batch that failed at or before it (e.g. ResourceExhausted for a full disk).
  virtual absl::Status WaitDurable(Ticket ticket) = 0;
  // WaitDurable() without blocking: `done` gets the same outcome, at once on this thread if it
  // is known, else later on the store's own thread (which must not block on the store).
  virtual void WhenDurable(Ticket ticket, absl::AnyInvocable<void(absl::Status) &&> done) = 0;
  // After a batch failed, accepts updates again (see the header comment).
  virtual void ResumeAfterFailure() = 0;
  // How many updates have failed so far (refused or lost with a batch): a change tells a
  // caller holding state ahead of the store that it must reload.
  virtual uint64_t Failures() = 0;
  // Enqueue() + WaitDurable(): applies one update atomically and durably.
  absl::Status Apply(const SwarmUpdate& update) { return WaitDurable(Enqueue(update)); }

  virtual absl::StatusOr<SwarmRecord> GetSwarm(const std::string& name) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<SwarmRecord>> ListSwarms() = 0;          // by name
  virtual absl::StatusOr<std::vector<ParticleRow>> ListParticles(const std::string& swarm) = 0;
  virtual absl::StatusOr<std::vector<ExpertRecord>> ListExperts(const std::string& swarm) = 0;
  // NotFound if that evaluation was never recorded.
  virtual absl::StatusOr<EvaluationRecord> GetEvaluation(const std::string& swarm,
                                                         int32_t particle_id,
                                                         int32_t iteration) = 0;
  // Ordered by (iteration, particle_id).
  virtual absl::StatusOr<std::vector<EvaluationRecord>> ListEvaluations(
      const std::string& swarm) = 0;
  // The evaluations that named `blob_id` as their position (an upload of it makes them
  // held), ordered by (iteration, particle_id).
  virtual absl::StatusOr<std::vector<EvaluationRecord>> ListEvaluationsOfBlob(
      const std::string& swarm, const std::string& blob_id) = 0;
  // Ordered by (utility_version, iteration).
  virtual absl::StatusOr<std::vector<HistoryRecord>> ListHistory(const std::string& swarm) = 0;
  virtual absl::StatusOr<std::vector<AuditRecord>> ListAudit(const std::string& swarm) = 0;
  // Every audited claim of the swarm, ordered by (iteration, particle_id).
  virtual absl::StatusOr<std::vector<AuditClaim>> ListAuditClaims(const std::string& swarm) = 0;

  // Records that a client connected (created on first sight, keyed by client.name; role
  // and last_seen updated).
  virtual absl::Status TouchClient(const Identity& client, int64_t now_ms) = 0;
  // NotFound for an unknown identity. A stored role that is not a Role (a database written
  // by something else) is DataLoss, here and in ListClients.
  virtual absl::StatusOr<ClientRecord> GetClient(const std::string& identity) = 0;
  virtual absl::StatusOr<std::vector<ClientRecord>> ListClients() = 0;  // by identity
  // NotFound for an unknown identity.
  virtual absl::Status SetRevoked(const std::string& identity, bool revoked,
                                  const AuditRecord& audit) = 0;
  // Lifts a quarantine (strikes back to 0); NotFound for an unknown identity.
  virtual absl::Status LiftQuarantine(const std::string& identity, const AuditRecord& audit) = 0;

  virtual absl::StatusOr<std::vector<BlobRecord>> ListBlobs() = 0;  // by id

  // "ok" when the store is consistent (PRAGMA integrity_check for SQLite).
  virtual absl::StatusOr<std::string> IntegrityCheck() = 0;
};

}  // namespace wxp::store

#endif  // WXP_SERVER_STORE_SWARM_STORE_H_
