#include "server/app/credentials.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/auth.h"

namespace wxp::server {
namespace {

bool IsLoopback(const std::string& listen) {
  return absl::StartsWith(listen, "127.") || absl::StartsWith(listen, "localhost:") ||
         absl::StartsWith(listen, "[::1]:");
}

Authenticator AuthenticatorFor(TransportSecurity mode) {
  return [mode](const grpc::ServerContextBase& ctx) -> absl::StatusOr<Identity> {
    absl::StatusOr<PeerIdentity> id = IdentifyPeer(ctx, mode);
    if (!id.ok()) return id.status();
    return id->identity;
  };
}

}  // namespace

absl::Status UseSecurity(WxpServer::Options& options, const Security& security, bool allow_remote) {
  if (security.plaintext()) {
    if (!allow_remote && !IsLoopback(options.listen)) {
      return absl::FailedPreconditionError(
          absl::StrCat("--plaintext listens on loopback only; ", options.listen,
                       " is not loopback (add --plaintext_allow_remote if you really mean it)"));
    }
  } else if (!security.files().complete()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs --tls_cert, --tls_key and --tls_ca (or --plaintext for local "
        "experiments)");
  }
  WXP_ASSIGN_OR_RETURN(options.credentials, security.ServerCredentials(options.clock->Now()));
  if (!security.plaintext()) options.tls_files = security.files();
  options.authenticate = AuthenticatorFor(
      security.plaintext() ? TransportSecurity::kInsecurePlaintext : TransportSecurity::kMutualTls);
  return absl::OkStatus();
}

}  // namespace wxp::server
