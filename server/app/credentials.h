// How wxp-server authenticates clients: mutual TLS (the default), or plaintext for local
// experiments, where clients name themselves in metadata and the server refuses to listen
// beyond loopback unless told otherwise. The credentials themselves come from the common
// Security object (common/tls_credentials.h) clients use too.
#ifndef WXP_SERVER_APP_CREDENTIALS_H_
#define WXP_SERVER_APP_CREDENTIALS_H_

#include "absl/status/status.h"
#include "common/tls_credentials.h"
#include "server/app/wxp_server.h"

namespace wxp::server {

// Fills options.credentials / options.authenticate from `security`.
// Plaintext: clients name themselves with the metadata of common/tls_credentials.h;
// FailedPrecondition if options.listen is not a loopback address and `allow_remote` is
// false. Mutual TLS: InvalidArgument naming the flags if a file is missing, else the errors
// of ServerTlsCredentials (role, validity, key match, key permissions), naming the file.
absl::Status UseSecurity(WxpServer::Options& options, const Security& security,
                         bool allow_remote = false);

}  // namespace wxp::server

#endif  // WXP_SERVER_APP_CREDENTIALS_H_
