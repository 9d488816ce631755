// Who drives each swarm when several wxp-server replicas share one PostgreSQL (SPEC 6.1).
//
// A swarm's lease names one replica (and the process incarnation that took it) until an
// expiry time, under a fencing token. The token grows every time the lease changes hands and
// never otherwise; every state-changing write of the swarm carries the token it was computed
// under (SwarmUpdate::fence) and the store commits it only if the lease still has that
// token, checked in the write's own transaction (PostgresStore with require_fence). So a
// replica that was paused or cut off past its lease can never commit once another replica
// took the swarm over, whatever its clock says: safety rests on the token alone, and the
// expiry times (written from the replicas' clocks, which must roughly agree: NTP) only
// decide when a silent leader is given up.
//
// Replicas also announce themselves (Heartbeat), so that each can compute its fair share of
// the swarms (server/coordinator/leases.cc documents the rule).
//
// With one server (SQLite, or PostgreSQL without replica_id) there is no SwarmLeases at all:
// the server leads every swarm, trivially.
//
// Thread-safety: implementations are thread-safe.
#ifndef WXP_SERVER_STORE_LEASE_H_
#define WXP_SERVER_STORE_LEASE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace wxp::db::pg {
class Connection;
}

namespace wxp::store {

struct LeaseHolder {
  std::string replica_id;
  std::string address;  // where clients reach it (its --advertise_address)
  int64_t token = 0;    // 0: nobody ever held the lease
  int64_t expires_ms = 0;
  bool mine = false;  // held by the calling SwarmLeases (this replica, this incarnation)
};

class SwarmLeases {
 public:
  virtual ~SwarmLeases() = default;

  virtual const std::string& replica_id() const = 0;
  virtual const std::string& address() const = 0;

  // Announces this replica alive until now_ms + ttl_ms. Returns how many replicas are alive
  // at now_ms, this one included.
  virtual absl::StatusOr<int> Heartbeat(int64_t now_ms, int64_t ttl_ms) = 0;
  // Every lease there is, by swarm (a swarm never leased has none).
  virtual absl::StatusOr<std::map<std::string, LeaseHolder>> List() = 0;
  // Takes the lease of `swarm` until now_ms + ttl_ms if it is free, expired at now_ms, or
  // already this replica's (a renewal: the token stays). Returns the holder after the call:
  // `mine` tells whether this replica holds it, and a token other than the one it held
  // before means the swarm changed hands meanwhile (its state must be loaded anew).
  // FailedPrecondition if the swarm does not exist.
  virtual absl::StatusOr<LeaseHolder> TryAcquire(const std::string& swarm, int64_t now_ms,
                                                 int64_t ttl_ms) = 0;
  // Gives up this replica's lease of `swarm` held under `token` (it expires at once); a
  // no-op if the lease is not (or no longer) that.
  virtual absl::Status Release(const std::string& swarm, int64_t token) = 0;
};

// SwarmLeases in the PostgreSQL database of the PostgresStore (tables swarm_leases and
// replicas, created by its schema migration 2: open the store first). Has its own
// connection, so renewals never queue behind the store's commits; a lock is waited for at
// most a second (a takeover waiting on a paused leader's open transaction gives up and
// tries again later) and a broken connection is reopened on the next call.
class PostgresLeases : public SwarmLeases {
 public:
  struct Options {
    std::string conninfo;    // as PostgresStore::Options
    std::string replica_id;  // required
    std::string address;     // required: host:port clients are redirected to
  };
  static absl::StatusOr<std::unique_ptr<PostgresLeases>> Open(const Options& options);
  ~PostgresLeases() override;

  const std::string& replica_id() const override { return options_.replica_id; }
  const std::string& address() const override { return options_.address; }
  absl::StatusOr<int> Heartbeat(int64_t now_ms, int64_t ttl_ms) override;
  absl::StatusOr<std::map<std::string, LeaseHolder>> List() override;
  absl::StatusOr<LeaseHolder> TryAcquire(const std::string& swarm, int64_t now_ms,
                                         int64_t ttl_ms) override;
  absl::Status Release(const std::string& swarm, int64_t token) override;

 private:
  PostgresLeases(Options options, std::unique_ptr<db::pg::Connection> conn, int64_t incarnation);
  // Reconnects first if the connection broke.
  absl::Status Ready() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  // Tells this process's leases from those an earlier process with the same replica_id
  // held: a restarted replica takes its swarms anew (new token), never resumes them.
  const int64_t incarnation_;
  absl::Mutex mu_;
  std::unique_ptr<db::pg::Connection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wxp::store

#endif  // WXP_SERVER_STORE_LEASE_H_
