// Who is calling, and may they (SPEC 5.1).
//
// In production every connection is mutual TLS: the server presents a certificate issued
// with `wxpctl certs issue --role server`, and refuses, during the TLS handshake, any client
// that does not present a certificate from the same authority that is valid now and meant
// for clients (EKU clientAuth). A handshake refusal reaches the client as UNAVAILABLE; no
// RPC handler runs. Once connected, the client's name and role are read from its
// certificate (see common/certs.h for how they are encoded) by IdentityFromContext, and
// the gatekeeper (server/service/gatekeeper.h) checks the role with RequireRole
// (common/identity.h) before any RPC runs.
//
// Revocation is not decided here: it is a lookup of the identity's name in the server's
// client table (see server/service/gatekeeper.h).
//
// Plaintext mode, for local experiments only: a server started without TLS (behind an
// explicit flag, on loopback) has no certificates to read, so a client states its identity
// in request metadata (kInsecureIdentityMetadata and kInsecureRoleMetadata of
// common/tls_credentials.h, which also makes both ends' credentials), and
// InsecureIdentityFromMetadata believes it. Anyone who can reach such a server can claim any role,
// which is why that function refuses connections that are encrypted or authenticated (there the
// certificate is the only source of identity) and peers that are not on this host.
//
// All functions are thread-safe.
#ifndef WXP_SERVER_AUTH_H_
#define WXP_SERVER_AUTH_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/identity.h"
#include "common/tls_credentials.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"

namespace wxp::server {

// The caller of an RPC, as read from its connection.
struct PeerIdentity {
  // The certificate's CN and role.
  Identity identity;
  // SHA-256 fingerprint of the client certificate (common/certs.h format), for audit logs;
  // empty in plaintext mode.
  std::string fingerprint;
};

// How the server's listening port is secured; chosen once, at start.
enum class TransportSecurity {
  kMutualTls,
  // Local experiments only; see the file comment.
  kInsecurePlaintext,
};

// The identity in the client certificate of the connection `ctx` belongs to. Trusts the
// handshake for the chain and dates, so it is meaningful only on a port whose credentials
// came from ServerTlsCredentials (common/tls_credentials.h).
// UNAUTHENTICATED if the connection has no authenticated peer certificate (a plaintext
// port, or other credentials); PERMISSION_DENIED if the certificate carries no usable WXP
// name and role (a certificate the CA signed by some other means). Never reads metadata.
absl::StatusOr<PeerIdentity> IdentityFromContext(const grpc::ServerContextBase& ctx);

// LOCAL EXPERIMENTS ONLY. The identity the client claims in kInsecureIdentityMetadata and
// kInsecureRoleMetadata, believed without proof. UNAUTHENTICATED if the connection is TLS
// (its certificate is the only identity there, so metadata cannot override it), if the
// peer is not on this host (loopback or a unix socket), or if either entry is missing or
// malformed (the name must pass ValidateCertificateName, the role ParseRole).
absl::StatusOr<PeerIdentity> InsecureIdentityFromMetadata(const grpc::ServerContextBase& ctx);

// IdentityFromContext for kMutualTls, InsecureIdentityFromMetadata for kInsecurePlaintext:
// the one call a service makes, with the mode the server was started in.
absl::StatusOr<PeerIdentity> IdentifyPeer(const grpc::ServerContextBase& ctx,
                                          TransportSecurity security);

}  // namespace wxp::server

#endif  // WXP_SERVER_AUTH_H_
