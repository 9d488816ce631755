// An in-memory SwarmStore: the fake for unit tests of code above the store. It honours the
// same contract as the SQLite store (atomic updates, group commit, the same errors) except
// durability. FailCommitsWith() lets tests see what a failed batch (a full disk) does, and
// RequireFences() what a write under a lost lease does.
#ifndef WXP_SERVER_STORE_MEMORY_STORE_H_
#define WXP_SERVER_STORE_MEMORY_STORE_H_

#include <functional>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/store/swarm_store.h"
#include "server/store/update_pipeline.h"

namespace wxp::store {

class MemoryStore : public SwarmStore {
 public:
  absl::Status CreateSwarm(const SwarmRecord& swarm, const AuditRecord& audit) override;
  MemoryStore();
  Ticket Enqueue(SwarmUpdate update) override { return pipeline_.Enqueue(std::move(update)); }
  absl::Status WaitDurable(Ticket ticket) override { return pipeline_.WaitDurable(ticket); }
  void WhenDurable(Ticket ticket, absl::AnyInvocable<void(absl::Status) &&> done) override {
    pipeline_.WhenDurable(ticket, std::move(done));
  }
  void ResumeAfterFailure() override { pipeline_.Reset(); }
  uint64_t Failures() override { return pipeline_.failures(); }
  absl::StatusOr<SwarmRecord> GetSwarm(const std::string& name) override;
  absl::StatusOr<std::vector<SwarmRecord>> ListSwarms() override;
  absl::StatusOr<std::vector<ParticleRow>> ListParticles(const std::string& swarm) override;
  absl::StatusOr<std::vector<ExpertRecord>> ListExperts(const std::string& swarm) override;
  absl::StatusOr<EvaluationRecord> GetEvaluation(const std::string& swarm, int32_t particle_id,
                                                 int32_t iteration) override;
  absl::StatusOr<std::vector<EvaluationRecord>> ListEvaluations(const std::string& swarm) override;
  absl::StatusOr<std::vector<EvaluationRecord>> ListEvaluationsOfBlob(
      const std::string& swarm, const std::string& blob_id) override;
  absl::StatusOr<std::vector<HistoryRecord>> ListHistory(const std::string& swarm) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(const std::string& swarm) override;
  absl::StatusOr<std::vector<AuditClaim>> ListAuditClaims(const std::string& swarm) override;
  absl::Status TouchClient(const Identity& client, int64_t now_ms) override;
  absl::StatusOr<ClientRecord> GetClient(const std::string& identity) override;
  absl::StatusOr<std::vector<ClientRecord>> ListClients() override;
  absl::Status SetRevoked(const std::string& identity, bool revoked,
                          const AuditRecord& audit) override;
  absl::Status LiftQuarantine(const std::string& identity, const AuditRecord& audit) override;
  absl::StatusOr<std::vector<BlobRecord>> ListBlobs() override;
  absl::StatusOr<std::string> IntegrityCheck() override { return std::string("ok"); }

  // Every batch committed from now on fails with `s` (OK: they succeed again), like a
  // SQLite store whose disk is full.
  void FailCommitsWith(absl::Status s);
  // From now on, like PostgresStore with require_fence (several replicas, lease.h): an
  // update is refused with LeaseLostError unless its fence is the token `lease_token` gives
  // for its swarm now (a lease table's). Without this call fences are ignored.
  void RequireFences(std::function<int64_t(const std::string& swarm)> lease_token);

 private:
  struct Swarm {
    SwarmRecord row;
    std::map<int32_t, ParticleRow> particles;
    std::map<int32_t, ExpertRecord> experts;
    std::map<std::pair<int32_t, int32_t>, EvaluationRecord> evaluations;  // (iteration, particle)
    std::map<std::pair<int32_t, int32_t>, HistoryRecord> history;         // (version, iteration)
    std::map<std::pair<int32_t, int32_t>, AuditClaim> audits;             // (iteration, particle)
  };
  struct State {
    std::map<std::string, Swarm> swarms;
    std::map<std::string, ClientRecord> clients;
    std::map<std::string, BlobRecord> blobs;
    std::vector<AuditRecord> audit;
  };
  static absl::Status ApplyTo(State& state, const SwarmUpdate& update);
  absl::Status CommitBatch(const std::vector<const SwarmUpdate*>& batch,
                           std::vector<absl::Status>& refused);
  absl::StatusOr<const Swarm*> Find(const std::string& name) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);
  absl::Status commit_failure_ ABSL_GUARDED_BY(mu_);
  std::function<int64_t(const std::string&)> lease_token_ ABSL_GUARDED_BY(mu_);
  UpdatePipeline pipeline_;
};

}  // namespace wxp::store

#endif  // WXP_SERVER_STORE_MEMORY_STORE_H_
