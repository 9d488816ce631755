// wxp-server: the Weight eXchange Point. Parses flags (or a text-format ServerConfig),
// builds the server's options and runs until SIGTERM / SIGINT, then shuts down gracefully.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "common/shutdown_signals.h"
#include "server/app/server_config.h"

ABSL_FLAG(std::string, config, "", "text-format wxp.v1.ServerConfig; flags override it");
ABSL_FLAG(std::string, listen, "", "host:port to listen on (default 127.0.0.1:7443)");
ABSL_FLAG(std::string, data_dir, "", "directory for the blob store (and the SQLite database)");
ABSL_FLAG(std::string, store, "",
          "where the swarm state lives: empty for SQLite in --data_dir, or a postgresql:// "
          "connection URI (ServerConfig.store)");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate");
ABSL_FLAG(std::string, tls_key, "", "PEM server private key");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signs client certificates");
ABSL_FLAG(bool, plaintext, false,
          "no TLS, for local experiments only; clients name themselves in metadata");
ABSL_FLAG(bool, plaintext_allow_remote, false, "allow --plaintext on a non-loopback address");
ABSL_FLAG(std::string, metrics_address, "",
          "host:port for GET /metrics (Prometheus text format); empty: no metrics; loopback "
          "only unless --metrics_allow_remote");
ABSL_FLAG(bool, metrics_allow_remote, false, "allow a non-loopback --metrics_address");
ABSL_FLAG(bool, dashboard, false,
          "serve the read-only web dashboard on --metrics_address (GET /, /api/swarms)");
ABSL_FLAG(std::string, blob_dir, "",
          "the blob store's directory (default --data_dir/blobs); with replicas, storage every "
          "replica mounts");
ABSL_FLAG(std::string, replica_id, "",
          "this replica's unique name among several on one PostgreSQL --store (SPEC 6.1); "
          "empty: one server leading every swarm");
ABSL_FLAG(std::string, advertise_address, "",
          "with --replica_id: host:port clients are redirected to for this replica's swarms");
ABSL_FLAG(double, lease_seconds, 0,
          "with --replica_id: how long a swarm's lease lasts unrenewed (default 5)");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving (for tests)");

int main(int argc, char** argv) {
  // First of all: gRPC and LibTorch start threads when first used (credentials, channels,
  // models), and a thread that does not block SIGTERM would take it with the default action,
  // killing the process instead of shutting it down gracefully.
  wxp::BlockShutdownSignals();
  wxp::IgnoreBrokenPipes();
  absl::SetProgramUsageMessage(
      "wxp-server --data_dir=DIR (--tls_cert/--tls_key/--tls_ca | --plaintext)");
  absl::ParseCommandLine(argc, argv);
  // Debian's absl checks every Mutex acquisition for lock-order cycles (as a debug build
  // would): ~2.5% of the server's CPU under load (perf on B3). Tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  wxp::server::ServerFlags flags{absl::GetFlag(FLAGS_config),
                                 absl::GetFlag(FLAGS_listen),
                                 absl::GetFlag(FLAGS_data_dir),
                                 absl::GetFlag(FLAGS_store),
                                 absl::GetFlag(FLAGS_tls_cert),
                                 absl::GetFlag(FLAGS_tls_key),
                                 absl::GetFlag(FLAGS_tls_ca),
                                 absl::GetFlag(FLAGS_plaintext),
                                 absl::GetFlag(FLAGS_plaintext_allow_remote)};
  flags.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  flags.metrics_allow_remote = absl::GetFlag(FLAGS_metrics_allow_remote);
  flags.dashboard = absl::GetFlag(FLAGS_dashboard);
  flags.blob_dir = absl::GetFlag(FLAGS_blob_dir);
  flags.replica_id = absl::GetFlag(FLAGS_replica_id);
  flags.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  flags.lease_seconds = absl::GetFlag(FLAGS_lease_seconds);
  absl::StatusOr<wxp::server::WxpServer::Options> options =
      wxp::server::ResolveServerOptions(flags);
  const absl::Status s = options.ok() ? wxp::server::RunServerUntilSignalled(
                                            *std::move(options), absl::GetFlag(FLAGS_port_file))
                                      : options.status();
  if (!s.ok()) {
    std::cerr << "wxp-server: " << s.message() << std::endl;
    return 1;
  }
  return 0;
}
