// A SwarmStore on PostgreSQL (SPEC 6.1), for deployments that outgrow one machine; SQLite
// (sqlite_store.h) stays the embedded default. Same contract and durability: each batch of
// queued updates (group commit, swarm_store.h) is one transaction, and the session runs with
// synchronous_commit=on, so an acknowledged update survives kill -9 of the server and a crash
// or restart of PostgreSQL. Within a batch each update has its own savepoint, so a refused
// one is rolled back alone. The schema is versioned in a `meta` table and migrated at open.
//
// One connection, serialised by the store. If PostgreSQL closes it (a restart), the next call
// reconnects; a call that failed because the connection broke before its transaction could
// have committed is run once more on the new connection, so a restart between calls is not
// seen by callers. A COMMIT whose answer was lost fails with Unavailable (its batch may or may
// not have committed: the pipeline fails what follows until ResumeAfterFailure()).
//
// Blobs' bytes stay in the server's blob store; only their refcounts live here.
#ifndef WXP_SERVER_STORE_POSTGRES_STORE_H_
#define WXP_SERVER_STORE_POSTGRES_STORE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/db/postgres.h"
#include "server/store/swarm_store.h"
#include "server/store/update_pipeline.h"

namespace wxp::store {

class PostgresStore : public SwarmStore {
 public:
  struct Options {
    // A libpq connection string: "host=... port=... dbname=... user=..." or
    // "postgresql://user@host:port/dbname". A password in it never appears in messages.
    std::string conninfo;
    // Several replicas (SPEC 6.1; lease.h): every swarm update must carry the fencing token
    // of the swarm's lease (SwarmUpdate::fence), checked in its own transaction; one
    // without a token, or with one the lease no longer has, is refused with
    // LeaseLostError. Off: fences are checked only when given (one server).
    bool require_fence = false;
    // With require_fence: PostgreSQL ends this store's session if it stays idle inside a
    // transaction this long (a replica paused mid-commit), so that the row locks it holds
    // cannot keep the swarm's next leader from taking over; and a lock is waited for at
    // most this long. 0: PostgreSQL's settings.
    int64_t session_timeout_ms = 0;
  };
  // Connects and migrates the schema. Unavailable naming host:port if PostgreSQL cannot be
  // reached; FailedPrecondition if the database was written by a newer, incompatible server.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const Options& options);

  absl::Status CreateSwarm(const SwarmRecord& swarm, const AuditRecord& audit) override;
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
  absl::Status LiftQuarantine(const std::string& identity, const AuditRecord& audit) override;
  absl::Status TouchClient(const Identity& client, int64_t now_ms) override;
  absl::StatusOr<ClientRecord> GetClient(const std::string& identity) override;
  absl::StatusOr<std::vector<ClientRecord>> ListClients() override;
  absl::Status SetRevoked(const std::string& identity, bool revoked,
                          const AuditRecord& audit) override;
  absl::StatusOr<std::vector<BlobRecord>> ListBlobs() override;
  // PostgreSQL keeps its own files consistent (WAL recovery); "ok" here means the server is
  // reachable, the schema is this binary's and the store's invariants hold.
  absl::StatusOr<std::string> IntegrityCheck() override;

 private:
  PostgresStore(std::unique_ptr<db::pg::Connection> conn,
                std::unique_ptr<db::pg::Connection> reader, bool require_fence);
  // Refuses `u` with LeaseLostError unless its fence is the swarm's lease token (and locks
  // the lease row until the transaction ends, so a takeover waits for this commit).
  absl::Status CheckFence(const SwarmUpdate& u) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitBatch(const std::vector<const SwarmUpdate*>& batch,
                           std::vector<absl::Status>& refused);
  absl::Status CommitBatchOnce(const std::vector<const SwarmUpdate*>& batch,
                               std::vector<absl::Status>& refused)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> SwarmId(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyLocked(const SwarmUpdate& update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteSwarmRow(int64_t id, const SwarmRecord& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertAudit(const AuditRecord& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits, noting whether a failure leaves the outcome unknown.
  absl::Status Commit(db::pg::Transaction& txn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Runs `op` (one read, or one whole transaction) on a live connection; if it failed
  // because the connection broke and nothing can have committed, runs it once more after
  // reconnecting.
  template <typename Op>
  auto Retrying(Op op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> decltype(op()) {
    if (conn_->Broken()) {
      absl::Status s = conn_->Reconnect();
      if (!s.ok()) return s;
    }
    commit_in_doubt_ = false;
    auto result = op();
    if (result.ok() || !conn_->Broken() || commit_in_doubt_) return result;
    absl::Status s = conn_->Reconnect();
    if (!s.ok()) return s;
    return op();
  }

  absl::Mutex mu_;
  std::unique_ptr<db::pg::Connection> conn_ ABSL_GUARDED_BY(mu_);
  bool commit_in_doubt_ ABSL_GUARDED_BY(mu_) = false;
  // A second connection for the read every call makes (GetClient, from the gatekeeper), so
  // that it does not wait behind a group commit holding mu_ for its round trips and fsync.
  // It sees what is committed; when it fails, the read goes through conn_ as before.
  absl::Mutex reader_mu_;
  std::unique_ptr<db::pg::Connection> reader_ ABSL_GUARDED_BY(reader_mu_);
  const bool require_fence_;
  UpdatePipeline pipeline_;
};

}  // namespace wxp::store

#endif  // WXP_SERVER_STORE_POSTGRES_STORE_H_
