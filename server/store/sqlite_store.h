// The production SwarmStore: one SQLite database file in WAL mode with foreign keys on and a
// versioned schema migrated at open (SPEC 6). Each batch of queued updates (group commit,
// swarm_store.h) is one transaction, BEGIN IMMEDIATE ... COMMIT with synchronous=FULL by
// default, so an acknowledged update survives kill -9 and power loss alike. Within a batch
// each update has its own savepoint, so a refused one is rolled back alone.
#ifndef WXP_SERVER_STORE_SQLITE_STORE_H_
#define WXP_SERVER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/db/sqlite.h"
#include "server/store/swarm_store.h"
#include "server/store/update_pipeline.h"

namespace wxp::store {

class SqliteStore : public SwarmStore {
 public:
  struct Options {
    std::string path;  // database file, or ":memory:" (tests)
    // kFull: durable against power loss; kNormal: against process crashes only, faster.
    db::Database::Synchronous synchronous = db::Database::Synchronous::kFull;
  };
  // Opens or creates the database and migrates it. FailedPrecondition if it was written by
  // a newer, incompatible server.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const Options& options);

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
  absl::StatusOr<std::string> IntegrityCheck() override;

 private:
  SqliteStore(std::unique_ptr<db::Database> db, std::unique_ptr<db::Database> reader);
  absl::Status CommitBatch(const std::vector<const SwarmUpdate*>& batch,
                           std::vector<absl::Status>& refused);
  absl::StatusOr<int64_t> SwarmId(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyLocked(const SwarmUpdate& update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteSwarmRow(int64_t id, const SwarmRecord& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertAudit(const AuditRecord& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<db::Database> db_ ABSL_GUARDED_BY(mu_);
  // A second connection to the same file for the reads every call makes (GetClient, from
  // the gatekeeper): in WAL mode it sees the last committed state without waiting for a
  // commit in progress on db_, whose fsync holds mu_ for milliseconds. Null for ":memory:"
  // (a second connection would be another database): then db_ serves those reads too.
  absl::Mutex reader_mu_;
  std::unique_ptr<db::Database> reader_ ABSL_GUARDED_BY(reader_mu_);
  UpdatePipeline pipeline_;
};

}  // namespace wxp::store

#endif  // WXP_SERVER_STORE_SQLITE_STORE_H_
