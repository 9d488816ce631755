#include "server/app/server_config.h"

#include <signal.h>

#include <iostream>

#include "common/file_util.h"
#include "common/shutdown_signals.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "proto/server_config.pb.h"
#include "server/app/credentials.h"

namespace wxp::server {
namespace {

absl::Status ReadConfigFile(const std::string& path, wxp::v1::ServerConfig* config) {
  WXP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  WXP_RETURN_IF_ERROR(ParseTextProto(text, path, config));
  // As the example config promises: relative paths in the file mean relative to the file.
  config->set_data_dir(ResolveRelativeTo(path, config->data_dir()));
  config->set_blob_dir(ResolveRelativeTo(path, config->blob_dir()));
  config->mutable_tls()->set_cert(ResolveRelativeTo(path, config->tls().cert()));
  config->mutable_tls()->set_key(ResolveRelativeTo(path, config->tls().key()));
  config->mutable_tls()->set_ca(ResolveRelativeTo(path, config->tls().ca()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WxpServer::Options> ResolveServerOptions(const ServerFlags& flags) {
  wxp::v1::ServerConfig config;
  if (!flags.config.empty()) WXP_RETURN_IF_ERROR(ReadConfigFile(flags.config, &config));
  auto pick = [](const std::string& flag, const std::string& from_config) {
    return flag.empty() ? from_config : flag;
  };
  WxpServer::Options options;
  options.listen = pick(flags.listen, config.listen());
  if (options.listen.empty()) options.listen = "127.0.0.1:7443";
  options.data_dir = pick(flags.data_dir, config.data_dir());
  options.store = pick(flags.store, config.store());
  const auto& limits = config.limits();
  if (limits.max_blob_bytes() > 0) options.max_blob_bytes = limits.max_blob_bytes();
  if (limits.max_chunk_bytes() > 0) options.max_chunk_bytes = limits.max_chunk_bytes();
  if (limits.max_particles_per_agent() > 0) {
    options.max_particles_per_agent = limits.max_particles_per_agent();
  }
  if (limits.max_concurrent_streams() > 0) {
    options.max_concurrent_streams = limits.max_concurrent_streams();
  }
  options.default_round_deadline_seconds = limits.default_round_deadline_seconds();
  if (limits.blob_gc_grace_seconds() > 0) {
    options.blob_gc_grace = absl::Seconds(limits.blob_gc_grace_seconds());
  }
  options.metrics_address = pick(flags.metrics_address, config.metrics_address());
  options.metrics_allow_remote = flags.metrics_allow_remote || config.metrics_allow_remote();
  options.dashboard = flags.dashboard || config.dashboard();
  options.blob_dir = pick(flags.blob_dir, config.blob_dir());
  options.replica_id = pick(flags.replica_id, config.replica().replica_id());
  options.advertise_address = pick(flags.advertise_address, config.replica().advertise_address());
  const double lease_seconds =
      flags.lease_seconds > 0 ? flags.lease_seconds : config.replica().lease_seconds();
  if (lease_seconds < 0) {
    return absl::InvalidArgumentError("--lease_seconds must be positive (or 0 for the default 5)");
  }
  if (lease_seconds > 0) options.lease_duration = absl::Seconds(lease_seconds);
  const Security security = flags.plaintext || config.plaintext()
                                ? Security::Plaintext()
                                : Security::MutualTls({pick(flags.tls_cert, config.tls().cert()),
                                                       pick(flags.tls_key, config.tls().key()),
                                                       pick(flags.tls_ca, config.tls().ca())});
  WXP_RETURN_IF_ERROR(UseSecurity(options, security,
                                  flags.plaintext_allow_remote || config.plaintext_allow_remote()));
  return options;
}

absl::Status RunServerUntilSignalled(WxpServer::Options options, const std::string& port_file) {
  // Signals are taken by sigwait here; main() blocked them before any thread started, and
  // blocking again only yields the set.
  sigset_t signals = BlockShutdownSignals();
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<WxpServer> server, WxpServer::Start(std::move(options)));
  if (!port_file.empty()) {
    WXP_RETURN_IF_ERROR(WriteFileAtomically(port_file, std::to_string(server->port())));
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "event=signal signal=" << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << std::endl;
  server->Shutdown(absl::Seconds(10));
  return absl::OkStatus();
}

}  // namespace wxp::server
