#include "server/auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/certs.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"

namespace wxp::server {
namespace {

std::string ToString(grpc::string_ref s) { return std::string(s.data(), s.size()); }

// True for peers on this host: loopback addresses (IPv4 127/8, IPv6 ::1, and 127/8 mapped
// into IPv6) and unix sockets. `peer` is grpc::ServerContext::peer(), e.g.
// "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555", "unix:/run/wxp.sock".
bool IsLocalPeer(absl::string_view peer) {
  if (absl::StartsWith(peer, "unix:") || absl::StartsWith(peer, "unix-abstract:")) return true;
  std::string host;
  if (absl::ConsumePrefix(&peer, "ipv4:")) {
    host = std::string(peer.substr(0, peer.rfind(':')));
    in_addr a;
    return ::inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
  }
  if (absl::ConsumePrefix(&peer, "ipv6:[")) {
    host = std::string(peer.substr(0, peer.find(']')));
    in6_addr a;
    if (::inet_pton(AF_INET6, host.c_str(), &a) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
  }
  return false;
}

// The single value of metadata `key`; empty if absent or given more than once (a client
// sending two identities is not guessed at).
std::string SingleMetadata(const grpc::ServerContextBase& ctx, const char* key, int* count) {
  auto [begin, end] = ctx.client_metadata().equal_range(key);
  *count = 0;
  std::string value;
  for (auto it = begin; it != end; ++it) {
    ++*count;
    value = ToString(it->second);
  }
  return *count == 1 ? value : "";
}

}  // namespace

absl::StatusOr<PeerIdentity> IdentityFromContext(const grpc::ServerContextBase& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError(
        "no client certificate on this connection; connect with TLS and a certificate from "
        "`wxpctl certs issue`");
  }
  const std::vector<grpc::string_ref> pems =
      auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.size() != 1) {
    return absl::UnauthenticatedError("the connection carries no single client certificate");
  }
  absl::StatusOr<CertificateIdentity> cert = ParseCertificateIdentity(ToString(pems[0]));
  if (!cert.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("client certificate is not a WXP identity: ", cert.status().message()));
  }
  return PeerIdentity{{cert->name, cert->role}, cert->fingerprint};
}

absl::StatusOr<PeerIdentity> InsecureIdentityFromMetadata(const grpc::ServerContextBase& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  bool secured = auth != nullptr && auth->IsPeerAuthenticated();
  if (auth != nullptr) {
    for (grpc::string_ref type :
         auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
      secured = secured || ToString(type) != "insecure";
    }
  }
  if (secured) {
    return absl::UnauthenticatedError(absl::StrCat(
        "identity metadata (", kInsecureIdentityMetadata,
        ") is honoured only on a plaintext server; on TLS the client certificate is the "
        "identity"));
  }
  if (!IsLocalPeer(ctx.peer())) {
    return absl::UnauthenticatedError(
        absl::StrCat("plaintext identity is accepted only from this host, not from ", ctx.peer(),
                     "; use mutual TLS for remote clients"));
  }
  int name_count = 0;
  int role_count = 0;
  const std::string name = SingleMetadata(ctx, kInsecureIdentityMetadata, &name_count);
  const std::string role_name = SingleMetadata(ctx, kInsecureRoleMetadata, &role_count);
  if (name_count != 1 || role_count != 1) {
    return absl::UnauthenticatedError(absl::StrCat("plaintext mode: send exactly one '",
                                                   kInsecureIdentityMetadata, "' and one '",
                                                   kInsecureRoleMetadata, "' metadata entry"));
  }
  if (absl::Status s = ValidateCertificateName(name); !s.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(kInsecureIdentityMetadata, ": ", s.message()));
  }
  absl::StatusOr<Role> role = ParseRole(role_name);
  if (!role.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat(kInsecureRoleMetadata, ": ", role.status().message()));
  }
  return PeerIdentity{{name, *role}, ""};
}

absl::StatusOr<PeerIdentity> IdentifyPeer(const grpc::ServerContextBase& ctx,
                                          TransportSecurity security) {
  switch (security) {
    case TransportSecurity::kMutualTls:
      return IdentityFromContext(ctx);
    case TransportSecurity::kInsecurePlaintext:
      return InsecureIdentityFromMetadata(ctx);
  }
  return absl::InternalError("unknown transport security mode");
}

}  // namespace wxp::server
