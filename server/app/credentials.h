// How wxp-server authenticates clients: mutual TLS (the default), or plaintext for local
// experiments, where clients name themselves in metadata and the server refuses to listen
// beyond loopback unless told otherwise.
#ifndef WXP_SERVER_APP_CREDENTIALS_H_
#define WXP_SERVER_APP_CREDENTIALS_H_

#include <string>

#include "absl/status/status.h"
#include "server/app/wxp_server.h"

namespace wxp::server {

// Fills options.credentials / options.authenticate for plaintext mode (clients name
// themselves with the metadata of server/auth.h). FailedPrecondition if options.listen is
// not a loopback address and `allow_remote` is false.
absl::Status UsePlaintext(WxpServer::Options& options, bool allow_remote);

// Fills them for mutual TLS from PEM files (server/auth.h checks them: role, validity, key
// match, key permissions). InvalidArgument naming a missing flag or the bad file.
absl::Status UseMutualTls(WxpServer::Options& options, const std::string& cert,
                          const std::string& key, const std::string& ca);

}  // namespace wxp::server

#endif  // WXP_SERVER_APP_CREDENTIALS_H_
