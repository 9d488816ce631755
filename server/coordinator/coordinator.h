// The Weight eXchange Point's swarm logic (SPEC 5.2, 5.4, 6), independent of gRPC: swarm
// creation, expert joins, pool construction, particle assignment, targets, reports, sync and
// async rounds with deadlines, pause / resume / stop, and the status views.
//
// Decisions come from common/swarm_engine (the same engine the in-process runner uses);
// this class only sequences them, validates requests, and persists every change through the
// SwarmStore before acknowledging it. A request that is refused changes nothing.
//
// Writes are group-committed: under the mutex a request changes the live state and queues
// its update (so the store's order is the order of the changes), then it waits for the
// commit without the mutex, sharing it with concurrent requests (the *Async calls wait without
// a thread: the store hands the answer on once the commit is done). No answer, and no event
// log line, goes out before every update it depends on is durable, reads included. If a
// queued update fails (a full disk), the requests that depended on it fail with its error,
// and the live state is reloaded from the store before anything else is served, so what a
// failed request changed is forgotten.
//
// Callers are already authenticated (server/auth); the coordinator checks ownership (an
// agent acts only on its own particles) and records who did what.
//
// Several replicas (SPEC 6.1; Options::leases): the coordinator then drives only the swarms
// whose lease it holds (MaintainLeases acquires, renews and drops them, leases.cc has the
// rule that spreads swarms over replicas), loads a swarm's state from the store when it
// takes the lease and forgets it when it loses it; every update it queues carries the
// lease's fencing token. A call about a swarm another replica leads is refused with
// UNAVAILABLE and a LeaderRedirect (common/leader_redirect.h).
//
// Thread-safety: all methods are thread-safe (one mutex around the live state).
#ifndef WXP_SERVER_COORDINATOR_COORDINATOR_H_
#define WXP_SERVER_COORDINATOR_COORDINATOR_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/identity.h"
#include "common/schema.h"
#include "common/swarm_engine.h"
#include "common/utility.h"
#include "proto/wxp.pb.h"
#include "server/coordinator/position_blobs.h"
#include "server/spec/swarm_spec.h"
#include "server/store/lease.h"
#include "server/store/swarm_store.h"

namespace wxp::server {

// An authenticated client, admitted for its role (server/service/gatekeeper.h).
using Caller = Identity;

class Coordinator {
 public:
  struct Options {
    store::SwarmStore* store = nullptr;  // not owned; must outlive the coordinator
    PositionBlobs* blobs = nullptr;      // not owned
    Clock* clock = Clock::Real();
    int max_particles_per_agent = 64;
    // One structured line per state transition (swarm created, pool built, round closed,
    // new global best, swarm finished). Defaults to stderr.
    std::function<void(const std::string&)> log;
    // Round deadline of sync swarms whose spec sets none; 0 keeps the spec's default (600).
    double default_round_deadline_seconds = 0;
    // An agent counts as online in SwarmStatus.agents_online while its last call for the
    // swarm (Join, GetAssignment, GetTargets, Report or Heartbeat) is at most this old on
    // `clock`. The default is two of the agent's default heartbeat intervals (30 s).
    absl::Duration online_window = absl::Seconds(60);
    // Optional (metrics): told when a round closes, with how long it was open on `clock`
    // (iteration 0: from the pool's construction). Runs under the coordinator's lock, so
    // it must be quick and must not call the coordinator. A round whose write then fails
    // is reloaded and may close, and be told, again.
    std::function<void(const std::string& swarm, int iteration, double seconds)> on_round_closed;
    // Several replicas: the lease table this replica competes in (not owned). Null: this
    // coordinator leads every swarm of the store (one server).
    store::SwarmLeases* leases = nullptr;
    // How long a lease lasts unrenewed; MaintainLeases should run every third of it.
    absl::Duration lease_duration = absl::Seconds(5);
  };

  // Loads every swarm from the store and rebuilds its engine (restart path).
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(Options options);
  ~Coordinator();

  // ---- admin ----
  absl::StatusOr<wxp::v1::CreateSwarmResponse> CreateSwarm(const Caller& caller,
                                                           const wxp::v1::SwarmSpec& spec);
  absl::StatusOr<wxp::v1::SwarmStatus> GetSwarmStatus(const std::string& swarm);
  absl::StatusOr<wxp::v1::ListSwarmsResponse> ListSwarms();
  absl::StatusOr<wxp::v1::ListParticlesResponse> ListParticles(const std::string& swarm);
  absl::StatusOr<wxp::v1::GetHistoryResponse> GetHistory(const std::string& swarm);
  absl::StatusOr<wxp::v1::UtilityWeights> GetUtilityWeights(const std::string& swarm);
  // Dynamic utility (SPEC 4.2): a new weight version. Every stored evaluation is re-weighted
  // from its component scores (nothing is re-evaluated); p_i, g and g_w are re-chosen among
  // the positions the server holds; the history gains a reading under the new version next
  // to the old one; later reports compete under the new weights. With after_iteration > 0
  // the change is stored and happens when that iteration closes, before any target of the
  // next one is handed out (proto/wxp.proto, SetUtilityWeightsRequest).
  absl::StatusOr<wxp::v1::UtilityWeights> SetUtilityWeights(
      const Caller& caller, const std::string& swarm, const std::map<std::string, double>& weights,
      int after_iteration = 0);
  // Pause: targets answer WAIT (reports are still taken). Resume undoes it. Stop is final.
  absl::StatusOr<wxp::v1::SwarmStatus> Pause(const Caller& caller, const std::string& swarm,
                                             const std::string& reason);
  absl::StatusOr<wxp::v1::SwarmStatus> Resume(const Caller& caller, const std::string& swarm,
                                              const std::string& reason);
  absl::StatusOr<wxp::v1::SwarmStatus> Stop(const Caller& caller, const std::string& swarm,
                                            const std::string& reason);
  // The blob id of g and the adapter config to export with it.
  struct BestPosition {
    std::string blob_id;  // the adapter's weights (the decoded g in coefficient spaces)
    double utility = 0;
    std::string config_json;  // adapter_config.json of the expert that is particle 0
    // g's position blob: blob_id in WEIGHTS, the α blob it was decoded from otherwise.
    std::string position_blob_id;
    // Empty: blob_id is an adapter, exported as a PEFT directory. Else the one file the
    // export is, by this name, with blob_id its bytes (TOKEN_MIXTURE: kTokenManifestFile).
    std::string export_file;
  };
  absl::StatusOr<BestPosition> Best(const std::string& swarm);
  // How many of the swarm's evaluations are kept in memory: only recent ones, a few per
  // particle, however long the swarm runs (the store has all of them).
  absl::StatusOr<size_t> EvaluationsInMemory(const std::string& swarm);

  // ---- agents ----
  absl::StatusOr<wxp::v1::JoinResponse> Join(const Caller& caller,
                                             const wxp::v1::JoinRequest& request);
  absl::StatusOr<wxp::v1::GetAssignmentResponse> GetAssignment(const Caller& caller,
                                                               const std::string& swarm);
  absl::StatusOr<wxp::v1::GetTargetsResponse> GetTargets(const Caller& caller,
                                                         const wxp::v1::GetTargetsRequest& request);
  absl::StatusOr<wxp::v1::ReportResponse> Report(const Caller& caller,
                                                 const wxp::v1::ReportRequest& request);
  // The two calls every iteration of every particle makes, for an asynchronous server: the
  // answer goes to `done` once it may be sent (everything it depends on is durable), on this
  // thread or on the store's; no thread waits for the commit meanwhile. The arguments are
  // not used after these return. GetTargets() and Report() are these, waited for.
  template <typename T>
  using Done = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;
  void GetTargetsAsync(const Caller& caller, const wxp::v1::GetTargetsRequest& request,
                       Done<wxp::v1::GetTargetsResponse> done);
  void ReportAsync(const Caller& caller, const wxp::v1::ReportRequest& request,
                   Done<wxp::v1::ReportResponse> done);
  // "Still alive": marks the agent as heard from (see Options::online_window) and answers
  // the swarm's status.
  absl::StatusOr<wxp::v1::SwarmStatus> Heartbeat(const Caller& caller, const std::string& swarm);
  // A position blob finished uploading: evaluations that named it are now held.
  absl::Status OnBlobStored(const std::string& blob_id);

  // ---- auditors (SPEC 12; swarm_spec.proto AuditPolicy) ----
  // The oldest pending claim, by (iteration, particle), whose position the server holds,
  // of the named swarm or of any swarm (by name); NONE if there is none.
  absl::StatusOr<wxp::v1::PullAuditTaskResponse> PullAuditTask(
      const Caller& caller, const wxp::v1::PullAuditTaskRequest& request);
  // Decides a pending claim from the auditor's scores: confirmed when every utility
  // component is within its tolerance of the claim, disputed otherwise. A confirmed
  // candidate counts from now on (p_i, g, g_w, the round), as its report would have without
  // audits; a disputed one never counts as g (swarm_spec.proto). The verdict, the
  // reporter's standing (and quarantine), the engine's change and an audit-log line are
  // one durable update. NotFound for a claim never audited; InvalidArgument for scores
  // missing a component, non-finite or outside the component's range.
  absl::StatusOr<wxp::v1::ReportAuditResponse> ReportAudit(
      const Caller& caller, const wxp::v1::ReportAuditRequest& request);

  // Closes sync rounds whose deadline passed with quorum met. Call periodically.
  absl::Status Tick();

  // ---- replicas (Options::leases; a no-op without) ----
  // Announces this replica, renews the leases it holds (a swarm whose lease was lost is
  // dropped from memory), takes free or expired leases up to its fair share (loading each
  // swarm from the store), and gives one lease back when it holds more than its share while
  // others are alive. Then, for the swarms it leads, records positions whose bytes reached
  // the blob store without an upload this replica recorded (a predecessor died in between,
  // or the reconcile on load failed): nothing waits on them for ever. Call every
  // lease_duration / 3 (the server does, on its Clock). An error (PostgreSQL unreachable)
  // changes nothing; a swarm whose lease then runs out is refused with UNAVAILABLE until
  // renewed.
  absl::Status MaintainLeases();
  // OK if this replica may take writes for `swarm` (it leads it, there are no replicas, or
  // no such swarm exists); UNAVAILABLE, with a LeaderRedirect when the leader is known,
  // otherwise. For calls that do not go through the coordinator (blob uploads).
  absl::Status CheckLeads(const std::string& swarm);
  // Gives every lease back (after flushing), so that the others take the swarms over at
  // once instead of after the leases expire: a graceful shutdown. Serves nothing after.
  void ReleaseLeases();
  // The swarms this replica leads now, by name (all of them without replicas).
  std::vector<std::string> LedSwarms();

 private:
  struct Swarm;
  explicit Coordinator(Options options);
  // A join's expert checks, done without mu_ on the swarm as it was (Join re-checks under
  // mu_ whatever changed since): each new expert blob's schema or refusal, and in
  // coefficient swarms whether the experts, in the order of space_key, make one space.
  struct JoinPrecheck {
    std::map<std::string, absl::StatusOr<Schema>> experts;       // by blob id
    std::vector<std::pair<std::string, std::string>> space_key;  // (blob id, config); empty: none
    absl::Status space;
  };
  JoinPrecheck PrecheckJoin(const Caller& caller, const wxp::v1::JoinRequest& request,
                            const std::vector<std::string>& configs) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Swarm*> Find(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Builds the pool into `next` (crossover children stored as blobs, particles assigned,
  // engine created) when there is capacity for every particle; otherwise leaves it pending.
  absl::Status BuildPool(store::SwarmUpdate& update, Swarm& next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MaybeCloseRounds(Swarm& next, store::SwarmUpdate& update, bool deadline_only)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A new weight version for `s` now (SetUtilityWeights' work; `who` and `why` go to the
  // audit and server logs). `keep_scheduled`: whether a scheduled change stays pending.
  absl::Status ChangeWeightsLocked(Swarm& s, const std::map<std::string, double>& weights,
                                   const std::string& who, const std::string& why,
                                   bool keep_scheduled) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the scheduled weight change of `s` once its iteration has closed and g and g_w
  // are held (a no-op otherwise). Called wherever a round can close or a blob become held,
  // and before targets are handed out.
  absl::Status ApplyDueWeightsLocked(Swarm& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The stored utility column: the weights plus the scheduled change, if any.
  static std::string UtilityRowBytes(
      const UtilityFunction& utility,
      const std::optional<wxp::v1::ScheduledUtilityWeights>& scheduled);
  static wxp::v1::UtilityWeights WeightsView(const Swarm& s);
  // The status views' message; g's and g_w's alpha are read from their blobs in
  // EXPERT_COEFFICIENTS swarms (an error reading one fails it).
  absl::StatusOr<wxp::v1::SwarmStatus> StatusOf(const Swarm& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<wxp::v1::SwarmStatus> SetState(const Caller& caller, const std::string& swarm,
                                                store::SwarmState state, const std::string& action,
                                                const std::string& reason);
  wxp::v1::PositionRef Ref(const Swarm& s, const PositionRef& ref, double utility);
  // Whether a report's position is wanted whatever its utility (policy ALWAYS, or drawn
  // for the audit sample): decided the same way for a first report and its retries.
  static bool UploadAlwaysOrAudited(const Swarm& s, int particle, int iteration);
  int64_t NowMs() const;
  // Records that `agent` called about `s` now (memory only; see Options::online_window).
  void SeenLocked(Swarm& s, const std::string& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a line for the log, written once what it reports is durable.
  void Log(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLog(const std::string& line) const;

  // Every swarm as the store has it (start, and reload after a failed write); with
  // replicas, only those this replica leads. `at_start`: a failure of the reconcile write
  // fails the load.
  absl::StatusOr<std::map<std::string, std::unique_ptr<Swarm>>> LoadLocked(bool at_start)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::unique_ptr<Swarm>> LoadSwarmLocked(store::SwarmRecord row, bool at_start)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The update that marks held those of `keys` (evaluations of `s` in memory) whose
  // position is not marked held although its bytes are in the blob store, whole and valid;
  // none if there are none. What an upload nobody recorded leaves: a server killed between
  // storing the bytes and recording them, or, with replicas, bytes a replica stored after
  // the swarm was loaded elsewhere; the agent, finding them complete, uploads them no more.
  store::SwarmUpdate UnrecordedUploadsLocked(const Swarm& s,
                                             const std::vector<std::pair<int, int>>& keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With replicas, each lease round: records the unrecorded uploads (above) of the led
  // swarms' g and g_w, which every target waits for, and of every evaluation of a swarm
  // whose reconcile on load failed. Without it such a swarm would answer WAIT for ever.
  void RecordUnrecordedUploads() ABSL_LOCKS_EXCLUDED(mu_);
  // Why this replica does not serve `swarm`, which it does not lead: a redirect to the
  // leader, UNAVAILABLE while no live replica leads it, NotFound if it does not exist.
  absl::Status NotLedLocked(const std::string& swarm) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a swarm whose lease this replica lost or gives up (after flushing its writes).
  void DropLocked(const std::string& swarm, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A durable-wait failure as the caller sees it: a write refused for a lost lease drops
  // the swarm and becomes a plain UNAVAILABLE (the client retries, and is redirected).
  absl::Status OnWriteFailed(const absl::Status& s) ABSL_LOCKS_EXCLUDED(mu_);
  // Reloads the live state if a queued update failed since it was last loaded.
  absl::Status ReloadIfNeededLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `update`, whose change is already in the live state.
  void EnqueueLocked(store::SwarmUpdate update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits, holding mu_, until the store has every queued update: before reading the store
  // for what memory does not hold.
  absl::Status FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `locked` under mu_ (after a reload if one is due), then waits without mu_ until
  // everything it may have seen or changed is durable, then writes its log lines. Each
  // `locked` starts with mu_.AssertHeld(): clang's thread-safety analysis cannot follow the
  // lock into a lambda, and without it every guarded access there is a warning.
  template <typename T>
  absl::StatusOr<T> Serve(absl::FunctionRef<absl::StatusOr<T>()> locked) ABSL_LOCKS_EXCLUDED(mu_);
  // Serve, with the answer handed to `done` (see ReportAsync) instead of returned.
  template <typename T>
  void ServeAsync(Done<T> done, absl::FunctionRef<absl::StatusOr<T>()> locked)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The two halves of Serve: `locked` run under mu_, with what its answer waits for; and
  // the answer once that wait is over.
  template <typename T>
  struct Served {
    absl::StatusOr<T> out = absl::UnknownError("not served");
    store::SwarmStore::Ticket seen = 0;
    std::vector<std::string> logs;
  };
  template <typename T>
  Served<T> RunLocked(absl::FunctionRef<absl::StatusOr<T>()> locked) ABSL_LOCKS_EXCLUDED(mu_);
  template <typename T>
  absl::StatusOr<T> Answer(Served<T> served, const absl::Status& durable) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ServeStatus(absl::FunctionRef<absl::Status()> locked) ABSL_LOCKS_EXCLUDED(mu_);

  Options options_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Swarm>> swarms_ ABSL_GUARDED_BY(mu_);
  // The last update queued: what the live state reflects (0: nothing beyond the store).
  store::SwarmStore::Ticket last_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failures_seen_ ABSL_GUARDED_BY(mu_) = 0;  // store->Failures() at the last load
  std::vector<std::string> pending_logs_ ABSL_GUARDED_BY(mu_);
  // With replicas: the leases this replica holds (swarm -> token, and until when on
  // options_.clock), and the live leases of the others, as of the last MaintainLeases (for
  // redirects).
  struct HeldLease {
    int64_t token = 0;
    int64_t expires_ms = 0;
  };
  std::map<std::string, HeldLease> leased_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, store::LeaseHolder> others_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wxp::server

#endif  // WXP_SERVER_COORDINATOR_COORDINATOR_H_
