#include "server/app/wxp_server.h"

#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/identity.h"
#include "common/status_macros.h"
#include "common/transfer_tuning.h"
#include "server/store/postgres_store.h"
#include "server/store/sqlite_store.h"

namespace wxp::server {
namespace {

// HTTP/2 streams a connection may use for unary calls on top of its blob streams.
constexpr int kUnaryStreamsPerConnection = 64;
// Threads of the synchronous gRPC server (every call but GetTargets and Report, which run on
// the callback API: agent_service.h) kept waiting for calls. gRPC's default (at most 2)
// ends every other worker once its call returns, so under concurrent calls the server
// started and ended a thread for most requests (perf on B3: 774 distinct worker threads in
// 15 s, thread creation and TLS set-up among the top server costs). Idle ones only sleep.
constexpr int kMinIdleServerThreads = 4;
constexpr int kMaxIdleServerThreads = 64;

bool IsPostgresUri(const std::string& store) {
  return absl::StartsWith(store, "postgresql://") || absl::StartsWith(store, "postgres://");
}

absl::StatusOr<std::unique_ptr<store::SwarmStore>> OpenStore(const WxpServer::Options& options) {
  if (options.store.empty()) {
    WXP_ASSIGN_OR_RETURN(std::unique_ptr<store::SqliteStore> sqlite,
                         store::SqliteStore::Open({options.data_dir + "/wxp.db"}));
    return std::unique_ptr<store::SwarmStore>(std::move(sqlite));
  }
  // Anything else is refused rather than guessed at: the value may hold a password, so it
  // is not echoed.
  if (!IsPostgresUri(options.store)) {
    return absl::InvalidArgumentError(
        "--store must be empty (SQLite in --data_dir) or a postgresql:// connection URI");
  }
  store::PostgresStore::Options pg_options{options.store};
  if (!options.replica_id.empty()) {
    pg_options.require_fence = true;
    pg_options.session_timeout_ms = absl::ToInt64Milliseconds(options.lease_duration);
  }
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<store::PostgresStore> pg,
                       store::PostgresStore::Open(pg_options));
  return std::unique_ptr<store::SwarmStore>(std::move(pg));
}

// Who may use the metrics listener when it serves the dashboard beyond loopback (the
// certificate already verified against the server's CA in the handshake): the dashboard and
// its API only admins, /metrics also auditors, so that a Prometheus gets a certificate that
// no RPC admits. A revoked identity is refused, as on the RPCs.
absl::Status AuthorizeRemoteDashboard(const std::string& path, const std::string& cert_pem,
                                      store::SwarmStore* store) {
  absl::StatusOr<CertificateIdentity> cert = ParseCertificateIdentity(cert_pem);
  if (!cert.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("the client certificate names no WXP identity: ", cert.status().message()));
  }
  const Identity caller{cert->name, cert->role};
  if (path == "/metrics") {
    WXP_RETURN_IF_ERROR(RequireRole(caller, {Role::kAdmin, Role::kAuditor}, "GET /metrics"));
  } else {
    WXP_RETURN_IF_ERROR(RequireRole(caller, {Role::kAdmin}, "the dashboard"));
  }
  absl::StatusOr<store::ClientRecord> known = store->GetClient(caller.name);
  if (known.ok() && known->revoked) {
    return absl::PermissionDeniedError(absl::StrCat("client '", caller.name, "' has been revoked"));
  }
  return absl::OkStatus();
}

// A replica's settings make sense only together (ServerConfig.replica).
absl::Status CheckReplicaOptions(const WxpServer::Options& options) {
  if (options.replica_id.empty()) {
    if (!options.advertise_address.empty()) {
      return absl::InvalidArgumentError("--advertise_address is for replicas: give --replica_id");
    }
    return absl::OkStatus();
  }
  if (!IsPostgresUri(options.store)) {
    return absl::InvalidArgumentError(
        "replicas (--replica_id) share their state in PostgreSQL: give --store=postgresql://...");
  }
  if (options.advertise_address.empty()) {
    return absl::InvalidArgumentError(
        "a replica needs --advertise_address (host:port clients are redirected to)");
  }
  if (options.blob_dir.empty()) {
    return absl::InvalidArgumentError(
        "a replica needs --blob_dir on storage every replica mounts (deploy/README.md)");
  }
  if (options.lease_duration < absl::Milliseconds(300)) {
    return absl::InvalidArgumentError("--lease_seconds must be at least 0.3");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WxpServer>> WxpServer::Start(Options options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  WXP_RETURN_IF_ERROR(CheckReplicaOptions(options));
  if (options.dashboard && options.metrics_address.empty()) {
    return absl::InvalidArgumentError(
        "the dashboard is served on --metrics_address: give one (e.g. 127.0.0.1:9464)");
  }
  if (!options.credentials || !options.authenticate) {
    return absl::InvalidArgumentError("server credentials and an authenticator are required");
  }
  std::unique_ptr<WxpServer> s(new WxpServer());
  s->options_ = options;
  WXP_RETURN_IF_ERROR(MakeDirs(options.data_dir));
  WXP_ASSIGN_OR_RETURN(s->store_, OpenStore(options));
  if (!options.replica_id.empty()) {
    WXP_ASSIGN_OR_RETURN(s->leases_, store::PostgresLeases::Open({options.store, options.replica_id,
                                                                  options.advertise_address}));
  }
  const std::string blob_dir =
      options.blob_dir.empty() ? options.data_dir + "/blobs" : options.blob_dir;
  WXP_ASSIGN_OR_RETURN(s->blobs_, DiskBlobs::Open({blob_dir, options.max_blob_bytes,
                                                   /*shared=*/!options.replica_id.empty()}));
  // A blob is referenced while the store counts a reference to it (an expert, a crossover
  // child, a held evaluation). Blobs recorded by no swarm are uploads whose call never came
  // (or was refused): collected once older than the grace period.
  std::set<std::string> referenced;
  {
    WXP_ASSIGN_OR_RETURN(std::vector<store::BlobRecord> records, s->store_->ListBlobs());
    for (const store::BlobRecord& r : records) {
      if (r.refcount > 0) referenced.insert(r.id);
    }
  }
  WXP_ASSIGN_OR_RETURN(
      DiskBlobs::RecoverySummary recovered,
      s->blobs_->Recover([&](const std::string& id) { return referenced.count(id) > 0; },
                         options.clock->Now() - options.blob_gc_grace));
  std::cerr << absl::StrCat("event=blob_recovery temporaries=", recovered.removed_temporaries,
                            " corrupt=", recovered.removed_corrupt,
                            " unreferenced=", recovered.removed_unreferenced,
                            " stale_partials=", recovered.removed_stale_partials,
                            " kept_recent=", recovered.kept_recent_unreferenced,
                            " bytes_freed=", recovered.bytes_freed)
            << std::endl;
  if (!options.metrics_address.empty()) s->metrics_ = std::make_unique<ServerMetrics>();
  Coordinator::Options copts;
  copts.store = s->store_.get();
  copts.blobs = s->blobs_.get();
  copts.clock = options.clock;
  copts.max_particles_per_agent = options.max_particles_per_agent;
  copts.default_round_deadline_seconds = options.default_round_deadline_seconds;
  if (s->metrics_) {
    copts.on_round_closed = [m = s->metrics_.get()](const std::string& swarm, int, double seconds) {
      m->RoundClosed(swarm, seconds);
    };
  }
  copts.leases = s->leases_.get();
  copts.lease_duration = options.lease_duration;
  WXP_ASSIGN_OR_RETURN(s->coordinator_, Coordinator::Create(copts));
  if (s->leases_) {
    // Before serving: take this replica's share of the swarms now, not a period later.
    WXP_RETURN_IF_ERROR(s->coordinator_->MaintainLeases());
  }
  s->gate_ = std::make_unique<Gatekeeper>(options.authenticate, s->store_.get(), options.clock);
  s->streams_ = std::make_unique<StreamLimiter>(options.max_concurrent_streams);
  if (s->metrics_) {
    s->metrics_->WatchCoordinator(s->coordinator_.get());
    metrics::MetricsHttpServer::Options http{options.metrics_address, options.metrics_allow_remote,
                                             &s->metrics_->registry()};
    if (options.dashboard) {
      s->dashboard_ = std::make_unique<Dashboard>(s->coordinator_.get());
      http.routes = s->dashboard_->Routes();
      if (!metrics::IsLoopbackAddress(options.metrics_address)) {
        if (!options.tls_files.complete()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "the dashboard beyond loopback (", options.metrics_address,
              ") is served over HTTPS to admin certificates only, which needs the server's "
              "mutual TLS (--tls_cert, --tls_key, --tls_ca), not --plaintext"));
        }
        http.tls = metrics::MetricsHttpServer::Options::Tls{
            options.tls_files.cert_file, options.tls_files.key_file, options.tls_files.ca_file};
        http.authorize = [store = s->store_.get()](const std::string& path,
                                                   const std::string& pem) {
          return AuthorizeRemoteDashboard(path, pem, store);
        };
      }
    }
    WXP_ASSIGN_OR_RETURN(s->metrics_http_, metrics::MetricsHttpServer::Start(http));
    std::cerr << absl::StrCat("event=metrics_started address=", options.metrics_address,
                              " port=", s->metrics_http_->port())
              << std::endl;
    if (s->dashboard_) {
      std::cerr << absl::StrCat("event=dashboard_started url=", http.tls ? "https://" : "http://",
                                options.metrics_address, " port=", s->metrics_http_->port())
                << std::endl;
    }
  }
  s->admin_ = std::make_unique<AdminServiceImpl>(s->coordinator_.get(), s->store_.get(),
                                                 s->blobs_.get(), s->gate_.get(), options.clock,
                                                 s->streams_.get(), s->metrics_.get());
  s->agent_ = std::make_unique<AgentServiceImpl>(
      s->coordinator_.get(), s->blobs_.get(), s->gate_.get(), options.clock,
      options.max_chunk_bytes, s->streams_.get(), s->metrics_.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  if (s->metrics_) {
    std::vector<std::string> methods = s->admin_->method_paths();
    methods.insert(methods.end(), s->agent_->method_paths().begin(),
                   s->agent_->method_paths().end());
    methods.push_back("/grpc.health.v1.Health/Check");
    methods.push_back("/grpc.health.v1.Health/Watch");
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(s->metrics_->RpcInterceptorFactory(methods));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  builder.AddListeningPort(options.listen, options.credentials, &s->port_);
  builder.RegisterService(s->admin_.get());
  builder.RegisterService(s->agent_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_chunk_bytes + (64 << 10)));
  // HTTP/2's limit is per connection and makes clients queue, not fail: keep it above the
  // server-wide blob stream limit (plus room for unary calls beside the streams), so that
  // the documented RESOURCE_EXHAUSTED refusal is what a client over the limit sees.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.max_concurrent_streams + kUnaryStreamsPerConnection);
  // Uploads arrive on this side (common/transfer_tuning.h says why these settings).
  for (const auto& [name, value] : TransferChannelArgs()) builder.AddChannelArgument(name, value);
  TuneAllocatorForTransfers();
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS,
                              kMinIdleServerThreads);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              kMaxIdleServerThreads);
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  WxpServer* raw = s.get();
  s->ticker_ = std::thread([raw] {
    while (!raw->stop_ticker_.WaitForNotificationWithTimeout(raw->options_.tick_interval)) {
      if (absl::Status t = raw->coordinator_->Tick(); !t.ok()) {
        std::cerr << "event=tick_failed error=\"" << t.message() << "\"" << std::endl;
      }
    }
  });
  if (s->leases_) {
    s->lease_keeper_ = std::thread([raw] {
      Clock& clock = *raw->options_.clock;
      while (clock.SleepUntil(clock.Now() + raw->options_.lease_duration / 3, raw->stop_ticker_)) {
        if (absl::Status m = raw->coordinator_->MaintainLeases(); !m.ok()) {
          std::cerr << "event=lease_maintenance_failed error=\"" << m.message() << "\""
                    << std::endl;
        }
      }
    });
  }
  std::cerr << absl::StrCat("event=server_started listen=", options.listen, " port=", s->port_,
                            " data_dir=", options.data_dir,
                            " store=", options.store.empty() ? "sqlite" : "postgresql",
                            options.replica_id.empty() ? "" : " replica=", options.replica_id)
            << std::endl;
  return s;
}

void WxpServer::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_.HasBeenNotified()) return;
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)));
  }
  // Scrapes and dashboard requests read the coordinator: none after this.
  if (metrics_http_) metrics_http_->Stop();
  stop_ticker_.Notify();
  if (ticker_.joinable()) ticker_.join();
  if (lease_keeper_.joinable()) lease_keeper_.join();
  // The others take this replica's swarms over at once rather than when the leases expire.
  if (coordinator_) coordinator_->ReleaseLeases();
  coordinator_.reset();
  store_.reset();  // closes the database cleanly (SQLite: WAL checkpoint on close)
  std::cerr << "event=server_stopped" << std::endl;
  shut_down_.Notify();
}

void WxpServer::Wait() { shut_down_.WaitForNotification(); }

WxpServer::~WxpServer() { Shutdown(absl::Seconds(1)); }

}  // namespace wxp::server
