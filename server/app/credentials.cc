#include "server/app/credentials.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/auth.h"

namespace wxp::server {
namespace {

bool IsLoopback(const std::string& listen) {
  return absl::StartsWith(listen, "127.") || absl::StartsWith(listen, "localhost:") ||
         absl::StartsWith(listen, "[::1]:");
}

Authenticator AuthenticatorFor(TransportSecurity mode) {
  return [mode](const grpc::ServerContext& ctx) -> absl::StatusOr<Caller> {
    absl::StatusOr<PeerIdentity> id = IdentifyPeer(ctx, mode);
    if (!id.ok()) return id.status();
    return Caller{id->name, std::string(RoleName(id->role))};
  };
}

}  // namespace

absl::Status UsePlaintext(WxpServer::Options& options, bool allow_remote) {
  if (!allow_remote && !IsLoopback(options.listen)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--plaintext listens on loopback only; ", options.listen,
        " is not loopback (add --plaintext_allow_remote if you really mean it)"));
  }
  options.credentials = grpc::InsecureServerCredentials();
  options.authenticate = AuthenticatorFor(TransportSecurity::kInsecurePlaintext);
  return absl::OkStatus();
}

absl::Status UseMutualTls(WxpServer::Options& options, const std::string& cert,
                          const std::string& key, const std::string& ca) {
  if (cert.empty() || key.empty() || ca.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs --tls_cert, --tls_key and --tls_ca (or --plaintext for local "
        "experiments)");
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      ServerTlsCredentials({cert, key, ca}, options.clock->Now());
  if (!creds.ok()) return creds.status();
  options.credentials = *std::move(creds);
  options.authenticate = AuthenticatorFor(TransportSecurity::kMutualTls);
  return absl::OkStatus();
}

}  // namespace wxp::server
