// SwarmLeases in memory, for tests of what a replica does with its leases (the coordinator's
// MaintainLeases) under a fake clock: one MemoryLeaseTable stands for the database, each
// MemoryLeases for one replica process. Same rules as PostgresLeases (lease.h). Fencing is
// the store's: MemoryStore::RequireFences with MemoryLeaseTable::Token checks it as
// PostgresStore does (lease_test.cc proves it on PostgreSQL).
#ifndef WXP_SERVER_STORE_TESTING_MEMORY_LEASES_H_
#define WXP_SERVER_STORE_TESTING_MEMORY_LEASES_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "server/store/lease.h"

namespace wxp::store::testing {

struct MemoryLeaseTable {
  struct Row {
    LeaseHolder holder;
    int64_t incarnation = 0;
  };
  absl::Mutex mu;
  std::map<std::string, Row> leases ABSL_GUARDED_BY(mu);
  std::map<std::string, int64_t> replicas ABSL_GUARDED_BY(mu);  // id -> announced until
  int64_t incarnations ABSL_GUARDED_BY(mu) = 0;

  // The token the lease of `swarm` has now (0: never leased): the fence a write must carry.
  int64_t Token(const std::string& swarm) {
    absl::MutexLock lock(&mu);
    auto it = leases.find(swarm);
    return it == leases.end() ? 0 : it->second.holder.token;
  }
};

class MemoryLeases : public SwarmLeases {
 public:
  MemoryLeases(MemoryLeaseTable* table, std::string replica_id, std::string address)
      : table_(table), id_(std::move(replica_id)), address_(std::move(address)) {
    absl::MutexLock lock(&table_->mu);
    incarnation_ = ++table_->incarnations;
  }
  const std::string& replica_id() const override { return id_; }
  const std::string& address() const override { return address_; }

  absl::StatusOr<int> Heartbeat(int64_t now_ms, int64_t ttl_ms) override {
    absl::MutexLock lock(&table_->mu);
    table_->replicas[id_] = now_ms + ttl_ms;
    int alive = 0;
    for (const auto& [id, until] : table_->replicas) alive += until > now_ms;
    return alive;
  }
  absl::StatusOr<std::map<std::string, LeaseHolder>> List() override {
    absl::MutexLock lock(&table_->mu);
    std::map<std::string, LeaseHolder> out;
    for (const auto& [swarm, row] : table_->leases) out[swarm] = View(row);
    return out;
  }
  absl::StatusOr<LeaseHolder> TryAcquire(const std::string& swarm, int64_t now_ms,
                                         int64_t ttl_ms) override {
    absl::MutexLock lock(&table_->mu);
    MemoryLeaseTable::Row& row = table_->leases[swarm];
    const bool ours = row.holder.replica_id == id_ && row.incarnation == incarnation_;
    if (ours || row.holder.expires_ms <= now_ms) {
      if (!ours) ++row.holder.token;
      row.holder.replica_id = id_;
      row.holder.address = address_;
      row.holder.expires_ms = now_ms + ttl_ms;
      row.incarnation = incarnation_;
    }
    return View(row);
  }
  absl::Status Release(const std::string& swarm, int64_t token) override {
    absl::MutexLock lock(&table_->mu);
    auto it = table_->leases.find(swarm);
    if (it != table_->leases.end() && it->second.holder.token == token &&
        it->second.incarnation == incarnation_) {
      it->second.holder.expires_ms = 0;
    }
    return absl::OkStatus();
  }

 private:
  LeaseHolder View(const MemoryLeaseTable::Row& row) const {
    LeaseHolder h = row.holder;
    h.mine = h.replica_id == id_ && row.incarnation == incarnation_;
    return h;
  }

  MemoryLeaseTable* table_;
  std::string id_, address_;
  int64_t incarnation_ = 0;
};

}  // namespace wxp::store::testing

#endif  // WXP_SERVER_STORE_TESTING_MEMORY_LEASES_H_
