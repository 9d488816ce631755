#include "server/store/lease.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/db/postgres.h"

namespace wxp::store {
namespace {

using db::pg::Params;
using db::pg::Result;

constexpr char kLeaseColumns[] = "replica_id, address, token, expires_ms, incarnation";

LeaseHolder ReadHolder(const Result& r, int row, int64_t incarnation,
                       const std::string& replica_id) {
  LeaseHolder h{r.Text(row, 0), r.Text(row, 1), r.Int(row, 2), r.Int(row, 3), false};
  h.mine = h.replica_id == replica_id && r.Int(row, 4) == incarnation;
  return h;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresLeases>> PostgresLeases::Open(const Options& options) {
  if (options.replica_id.empty() || options.address.empty()) {
    return absl::InvalidArgumentError("a replica needs a replica_id and an advertise_address");
  }
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<db::pg::Connection> conn,
                       db::pg::Connection::Open(options.conninfo, "SET lock_timeout = 1000"));
  // Unique per process in practice; only ever compared for equality.
  std::random_device rd;
  const int64_t incarnation =
      static_cast<int64_t>((static_cast<uint64_t>(rd()) << 31) ^ rd()) & 0x7fffffffffffffff;
  return std::unique_ptr<PostgresLeases>(new PostgresLeases(options, std::move(conn), incarnation));
}

PostgresLeases::PostgresLeases(Options options, std::unique_ptr<db::pg::Connection> conn,
                               int64_t incarnation)
    : options_(std::move(options)), incarnation_(incarnation), conn_(std::move(conn)) {}

PostgresLeases::~PostgresLeases() = default;

absl::Status PostgresLeases::Ready() {
  return conn_->Broken() ? conn_->Reconnect() : absl::OkStatus();
}

absl::StatusOr<int> PostgresLeases::Heartbeat(int64_t now_ms, int64_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  WXP_RETURN_IF_ERROR(Ready());
  WXP_RETURN_IF_ERROR(
      conn_
          ->Query("INSERT INTO replicas (replica_id, address, expires_ms) VALUES "
                  "($1, $2, $3) ON CONFLICT (replica_id) DO UPDATE SET "
                  "address = excluded.address, expires_ms = excluded.expires_ms",
                  Params().Text(options_.replica_id).Text(options_.address).Int(now_ms + ttl_ms))
          .status());
  WXP_ASSIGN_OR_RETURN(Result r, conn_->Query("SELECT count(*) FROM replicas WHERE expires_ms > $1",
                                              Params().Int(now_ms)));
  return static_cast<int>(r.Int(0, 0));
}

absl::StatusOr<std::map<std::string, LeaseHolder>> PostgresLeases::List() {
  absl::MutexLock lock(&mu_);
  WXP_RETURN_IF_ERROR(Ready());
  WXP_ASSIGN_OR_RETURN(Result r, conn_->Query(absl::StrCat("SELECT swarm, ", kLeaseColumns,
                                                           " FROM swarm_leases ORDER BY swarm")));
  std::map<std::string, LeaseHolder> out;
  for (int i = 0; i < r.rows(); ++i) {
    LeaseHolder h{r.Text(i, 1), r.Text(i, 2), r.Int(i, 3), r.Int(i, 4), false};
    h.mine = h.replica_id == options_.replica_id && r.Int(i, 5) == incarnation_;
    out[r.Text(i, 0)] = h;
  }
  return out;
}

absl::StatusOr<LeaseHolder> PostgresLeases::TryAcquire(const std::string& swarm, int64_t now_ms,
                                                       int64_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  WXP_RETURN_IF_ERROR(Ready());
  // One statement: take a free or expired lease (token + 1) or renew our own (token kept).
  // The right-hand sides read the row as it was.
  WXP_ASSIGN_OR_RETURN(
      Result r,
      conn_->Query(
          absl::StrCat(
              "INSERT INTO swarm_leases AS l (swarm, replica_id, incarnation, address, token, "
              "expires_ms) VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (swarm) DO UPDATE SET "
              "token = CASE WHEN l.replica_id = excluded.replica_id AND l.incarnation = "
              "excluded.incarnation THEN l.token ELSE l.token + 1 END, "
              "replica_id = excluded.replica_id, incarnation = excluded.incarnation, "
              "address = excluded.address, expires_ms = excluded.expires_ms "
              "WHERE (l.replica_id = excluded.replica_id AND l.incarnation = excluded.incarnation) "
              "OR l.expires_ms <= $6 RETURNING ",
              kLeaseColumns),
          Params()
              .Text(swarm)
              .Text(options_.replica_id)
              .Int(incarnation_)
              .Text(options_.address)
              .Int(now_ms + ttl_ms)
              .Int(now_ms)));
  if (r.rows() == 1) return ReadHolder(r, 0, incarnation_, options_.replica_id);
  WXP_ASSIGN_OR_RETURN(
      Result held,
      conn_->Query(absl::StrCat("SELECT ", kLeaseColumns, " FROM swarm_leases WHERE swarm = $1"),
                   Params().Text(swarm)));
  if (held.rows() == 0) return LeaseHolder{};
  return ReadHolder(held, 0, incarnation_, options_.replica_id);
}

absl::Status PostgresLeases::Release(const std::string& swarm, int64_t token) {
  absl::MutexLock lock(&mu_);
  WXP_RETURN_IF_ERROR(Ready());
  return conn_
      ->Query(
          "UPDATE swarm_leases SET expires_ms = 0 WHERE swarm = $1 AND token = $2 AND "
          "replica_id = $3 AND incarnation = $4",
          Params().Text(swarm).Int(token).Text(options_.replica_id).Int(incarnation_))
      .status();
}

}  // namespace wxp::store
