// How wxp-server authenticates clients: mutual TLS (the default), or plaintext for local
// experiments, where clients name themselves in metadata and the server refuses to listen
// beyond loopback unless told otherwise.
#ifndef WXP_SERVER_APP_CREDENTIALS_H_
#define WXP_SERVER_APP_CREDENTIALS_H_

#include <string>

#include "absl/status/status.h"
#include "server/app/wxp_server.h"

namespace wxp::server {

// Metadata keys a plaintext client sets (never honoured under TLS).
inline constexpr char kPlaintextIdentityKey[] = "x-wxp-identity";
inline constexpr char kPlaintextRoleKey[] = "x-wxp-role";

// Fills options.credentials / options.authenticate for plaintext mode. FailedPrecondition
// if options.listen is not a loopback address and `allow_remote` is false.
absl::Status UsePlaintext(WxpServer::Options& options, bool allow_remote);

// Fills them for mutual TLS from PEM files. InvalidArgument naming a missing flag or file.
absl::Status UseMutualTls(WxpServer::Options& options, const std::string& cert,
                          const std::string& key, const std::string& ca);

}  // namespace wxp::server

#endif  // WXP_SERVER_APP_CREDENTIALS_H_
