// wxp-server's configuration and process life: a text-format wxp.v1.ServerConfig file
// (proto/server_config.proto) and flags, which override it, become WxpServer::Options; then
// the server runs until SIGTERM / SIGINT. wxp-server's main() only gathers flags.
#ifndef WXP_SERVER_APP_SERVER_CONFIG_H_
#define WXP_SERVER_APP_SERVER_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/app/wxp_server.h"

namespace wxp::server {

// wxp-server's flags as plain values; empty / false means "not given".
struct ServerFlags {
  std::string config;  // path of the ServerConfig file
  std::string listen;
  std::string data_dir;
  std::string store;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  bool plaintext = false;
  bool plaintext_allow_remote = false;
  std::string metrics_address;
  bool metrics_allow_remote = false;
  bool dashboard = false;
  std::string replica_id;
  std::string advertise_address;
  double lease_seconds = 0;
  std::string blob_dir;
};

// Reads `flags.config` if given (relative paths in it are relative to the file), applies
// the flags over it and fills the options, credentials included (see credentials.h).
// Errors: the file's read or parse error; those of UseSecurity.
absl::StatusOr<WxpServer::Options> ResolveServerOptions(const ServerFlags& flags);

// Blocks SIGTERM and SIGINT, starts the server, writes its port to `port_file` if not
// empty, and serves until one of the signals arrives; then shuts down gracefully.
absl::Status RunServerUntilSignalled(WxpServer::Options options, const std::string& port_file);

}  // namespace wxp::server

#endif  // WXP_SERVER_APP_SERVER_CONFIG_H_
