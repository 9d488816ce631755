// wxp-server: the Weight eXchange Point. Parses flags (or a text-format ServerConfig),
// builds the server's options and runs until SIGTERM / SIGINT, then shuts down gracefully.
#include <signal.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/shutdown_signals.h"
#include "common/text_proto.h"
#include "proto/server_config.pb.h"
#include "server/app/credentials.h"
#include "server/app/wxp_server.h"

ABSL_FLAG(std::string, config, "", "text-format wxp.v1.ServerConfig; flags override it");
ABSL_FLAG(std::string, listen, "", "host:port to listen on (default 127.0.0.1:7443)");
ABSL_FLAG(std::string, data_dir, "", "directory for the SQLite database and the blob store");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate");
ABSL_FLAG(std::string, tls_key, "", "PEM server private key");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signs client certificates");
ABSL_FLAG(bool, plaintext, false,
          "no TLS, for local experiments only; clients name themselves in metadata");
ABSL_FLAG(bool, plaintext_allow_remote, false, "allow --plaintext on a non-loopback address");
ABSL_FLAG(std::string, port_file, "", "write the bound port here once serving (for tests)");

namespace {

int Fail(const std::string& message) {
  std::cerr << "wxp-server: " << message << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "wxp-server --data_dir=DIR (--tls_cert/--tls_key/--tls_ca | --plaintext)");
  absl::ParseCommandLine(argc, argv);
  wxp::v1::ServerConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    absl::StatusOr<std::string> text = wxp::ReadFile(path);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    if (absl::Status parsed = wxp::ParseTextProto(*text, path, &config); !parsed.ok()) {
      return Fail(std::string(parsed.message()));
    }
    // As the example config promises: relative paths in the file mean relative to the file.
    config.set_data_dir(wxp::ResolveRelativeTo(path, config.data_dir()));
    config.mutable_tls()->set_cert(wxp::ResolveRelativeTo(path, config.tls().cert()));
    config.mutable_tls()->set_key(wxp::ResolveRelativeTo(path, config.tls().key()));
    config.mutable_tls()->set_ca(wxp::ResolveRelativeTo(path, config.tls().ca()));
  }
  auto pick = [](const std::string& flag, const std::string& from_config) {
    return flag.empty() ? from_config : flag;
  };
  wxp::server::WxpServer::Options options;
  options.listen = pick(absl::GetFlag(FLAGS_listen), config.listen());
  if (options.listen.empty()) options.listen = "127.0.0.1:7443";
  options.data_dir = pick(absl::GetFlag(FLAGS_data_dir), config.data_dir());
  if (config.limits().max_blob_bytes() > 0)
    options.max_blob_bytes = config.limits().max_blob_bytes();
  if (config.limits().max_chunk_bytes() > 0)
    options.max_chunk_bytes = config.limits().max_chunk_bytes();
  if (config.limits().max_particles_per_agent() > 0) {
    options.max_particles_per_agent = config.limits().max_particles_per_agent();
  }
  if (config.limits().max_concurrent_streams() > 0) {
    options.max_concurrent_streams = config.limits().max_concurrent_streams();
  }
  options.default_round_deadline_seconds = config.limits().default_round_deadline_seconds();
  if (config.limits().blob_gc_grace_seconds() > 0) {
    options.blob_gc_grace = absl::Seconds(config.limits().blob_gc_grace_seconds());
  }
  const bool plaintext = absl::GetFlag(FLAGS_plaintext) || config.plaintext();
  const wxp::Security security =
      plaintext
          ? wxp::Security::Plaintext()
          : wxp::Security::MutualTls({pick(absl::GetFlag(FLAGS_tls_cert), config.tls().cert()),
                                      pick(absl::GetFlag(FLAGS_tls_key), config.tls().key()),
                                      pick(absl::GetFlag(FLAGS_tls_ca), config.tls().ca())});
  const absl::Status creds = wxp::server::UseSecurity(
      options, security,
      absl::GetFlag(FLAGS_plaintext_allow_remote) || config.plaintext_allow_remote());
  if (!creds.ok()) return Fail(std::string(creds.message()));

  // Signals are taken by a dedicated thread (sigwait), so block them before any thread starts.
  sigset_t signals = wxp::BlockShutdownSignals();

  absl::StatusOr<std::unique_ptr<wxp::server::WxpServer>> server =
      wxp::server::WxpServer::Start(options);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    if (absl::Status s = wxp::WriteFileAtomically(path, std::to_string((*server)->port()));
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "event=signal signal=" << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << std::endl;
  (*server)->Shutdown(absl::Seconds(10));
  return 0;
}
