// The WXP server as a library: opens the state (SQLite in a data directory, or PostgreSQL)
// and the blob store (in the data directory), serves the agent and admin services plus gRPC
// health checking, closes rounds on deadlines in the background, and shuts down gracefully.
// wxp-server's main() only builds Options.
#ifndef WXP_SERVER_APP_WXP_SERVER_H_
#define WXP_SERVER_APP_WXP_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics_http.h"
#include "common/tls_credentials.h"
#include "grpcpp/grpcpp.h"
#include "server/app/server_metrics.h"
#include "server/blobs/disk_blobs.h"
#include "server/coordinator/coordinator.h"
#include "server/dashboard/dashboard.h"
#include "server/service/admin_service.h"
#include "server/service/agent_service.h"
#include "server/service/gatekeeper.h"
#include "server/service/stream_limiter.h"
#include "server/store/lease.h"
#include "server/store/swarm_store.h"

namespace wxp::server {

class WxpServer {
 public:
  struct Options {
    std::string listen = "127.0.0.1:7443";  // host:port; port 0 picks a free one
    std::string data_dir;                   // required: blobs/ (and wxp.db with SQLite) live here
    // "" for SQLite in data_dir, or a postgresql:// URI (ServerConfig.store).
    std::string store;
    std::shared_ptr<grpc::ServerCredentials> credentials;  // required (TLS in production)
    Authenticator authenticate;                            // required
    uint64_t max_blob_bytes = 4ull << 30;
    size_t max_chunk_bytes = 4 << 20;
    int max_particles_per_agent = 64;
    // Blob streams (UploadBlob, DownloadBlob, ExportBest) open at once, over the whole
    // server; more are refused with RESOURCE_EXHAUSTED.
    int max_concurrent_streams = 64;
    double default_round_deadline_seconds = 0;  // 0: the swarm spec's default
    absl::Duration blob_gc_grace = absl::Hours(1);
    absl::Duration tick_interval = absl::Seconds(1);
    Clock* clock = Clock::Real();
    // GET /metrics (Prometheus text format) on this host:port; empty: no metrics. A
    // non-loopback address is refused unless metrics_allow_remote (metrics_http.h).
    std::string metrics_address;
    bool metrics_allow_remote = false;
    // The read-only web dashboard (server/dashboard/dashboard.h) on metrics_address, beside
    // /metrics; requires metrics_address (InvalidArgument otherwise). On a non-loopback
    // metrics_address the listener is HTTPS with tls_files instead (FailedPrecondition
    // without them): the handshake requires a client certificate from tls_files.ca_file,
    // the dashboard answers only role admin, /metrics admin or auditor, and a revoked
    // identity is refused (403) as on the RPCs.
    bool dashboard = false;
    // The server's mutual-TLS files (credentials.h's UseSecurity sets them); empty in
    // plaintext mode.
    TlsFiles tls_files;
    // The blob store's directory; empty: data_dir/blobs.
    std::string blob_dir;
    // Several replicas on one PostgreSQL `store` (SPEC 6.1; ServerConfig.replica): this
    // replica's unique name (empty: not replicated), the host:port clients are redirected
    // to, and how long a swarm's lease lasts unrenewed (renewed every third of it). A
    // replica needs a PostgreSQL store, an advertise_address and a blob_dir
    // (InvalidArgument otherwise).
    std::string replica_id;
    std::string advertise_address;
    absl::Duration lease_duration = absl::Seconds(5);
  };

  // Opens the data directory (creating it), recovers the blob store (stray temporaries and
  // corrupt blobs are removed; unreferenced blobs and abandoned partial uploads older than
  // blob_gc_grace are collected), loads every swarm, binds and starts serving.
  static absl::StatusOr<std::unique_ptr<WxpServer>> Start(Options options);
  ~WxpServer();  // Shutdown() with a short grace period if still running

  int port() const { return port_; }
  // The metrics endpoint's port; 0 without metrics.
  int metrics_port() const { return metrics_http_ ? metrics_http_->port() : 0; }
  // Stops accepting calls, lets in-flight calls finish for up to `grace` (then cancels
  // them), stops the deadline ticker, gives its swarms' leases back (replicas) and closes
  // the database. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));
  // Blocks until Shutdown() has completed.
  void Wait();

 private:
  WxpServer() = default;

  Options options_;
  std::unique_ptr<store::SwarmStore> store_;
  std::unique_ptr<store::SwarmLeases> leases_;  // replicas only
  std::unique_ptr<DiskBlobs> blobs_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Gatekeeper> gate_;
  std::unique_ptr<StreamLimiter> streams_;  // shared by both services: server-wide
  // Before the services and the gRPC server, which use it: destroyed after them.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<Dashboard> dashboard_;  // read by metrics_http_'s threads
  std::unique_ptr<metrics::MetricsHttpServer> metrics_http_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<AgentServiceImpl> agent_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Notification stop_ticker_;
  absl::Notification shut_down_;
  std::thread ticker_;
  std::thread lease_keeper_;  // replicas only: MaintainLeases every lease_duration / 3
  absl::Mutex shutdown_mu_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_APP_WXP_SERVER_H_
