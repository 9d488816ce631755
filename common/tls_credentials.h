// How a WXP connection is secured, in one place for both ends (SPEC 5.1).
//
// Production: mutual TLS from the PEM files `wxpctl certs issue` writes (TlsFiles). The
// server presents a server certificate and requires a client certificate from the same
// authority; clients present an agent or admin certificate and trust only that authority.
//
// Local experiments: plaintext, where a client states its identity in call metadata
// (kInsecureIdentityMetadata / kInsecureRoleMetadata) and a server started that way
// believes it (server/auth.h decides when it may).
//
// A Security value is the one object both sides build their gRPC credentials from, so a
// client and a server configured from the same files agree by construction. Files are
// read and cross-checked when credentials are made, so a misconfiguration fails at start
// with a message naming the file, not as failed handshakes later.
//
// All functions are thread-safe.
#ifndef WXP_COMMON_TLS_CREDENTIALS_H_
#define WXP_COMMON_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace wxp {

// PEM files as `wxpctl certs issue` writes them into one directory.
struct TlsFiles {
  std::string cert_file;  // this side's certificate, "<name>.crt"
  std::string key_file;   // its private key, "<name>.key"
  std::string ca_file;    // the authority that signs the other side, "ca.crt"

  // True if all three are given.
  bool complete() const { return !cert_file.empty() && !key_file.empty() && !ca_file.empty(); }
};

// Metadata keys a plaintext client names itself with. A TLS server ignores them.
inline constexpr char kInsecureIdentityMetadata[] = "x-wxp-identity";
inline constexpr char kInsecureRoleMetadata[] = "x-wxp-role";

// Server credentials that require and verify a client certificate signed by `ca_file`
// (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
//
// FailedPrecondition if the certificate is not a server certificate, does not verify
// against the CA at `now` (e.g. expired), the key is not its key, or the key file is
// accessible by group or others (it must be 0600 or stricter); NotFound/PermissionDenied
// naming an unreadable file; InvalidArgument for a file that is not PEM. `ca_file` may hold
// several CA certificates (all are trusted).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTlsCredentials(const TlsFiles& files,
                                                                              absl::Time now);

// Channel credentials for an agent or admin: its certificate and key, and `ca_file` as the
// only trusted root for the server's certificate. The server's certificate must name the
// host the channel dials (SAN DNS or IP; "localhost" and "127.0.0.1" by default).
// Errors as for ServerTlsCredentials, FailedPrecondition if the certificate is not an
// agent or admin certificate (an expired one is reported here, not as UNAVAILABLE later).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientTlsCredentials(
    const TlsFiles& files, absl::Time now);

// Sets the plaintext identity metadata on a client call.
void AddPlaintextIdentity(grpc::ClientContext& ctx, absl::string_view identity, Role role);

// One security configuration that yields the credentials of either end. Copyable.
class Security {
 public:
  // Mutual TLS from `files` (this side's certificate and key, the other side's CA).
  static Security MutualTls(TlsFiles files) { return Security(false, std::move(files)); }
  // No TLS: local experiments only (see the file comment).
  static Security Plaintext() { return Security(true, {}); }

  bool plaintext() const { return plaintext_; }
  const TlsFiles& files() const { return files_; }

  // Credentials for a listening port. Plaintext: insecure credentials. TLS: as
  // ServerTlsCredentials, and InvalidArgument if a file is not named.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(absl::Time now) const;
  // Credentials for a client channel. Plaintext: insecure credentials. TLS: as
  // ClientTlsCredentials, and InvalidArgument if a file is not named.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
      absl::Time now) const;

 private:
  Security(bool plaintext, TlsFiles files) : plaintext_(plaintext), files_(std::move(files)) {}
  bool plaintext_;
  TlsFiles files_;
};

}  // namespace wxp

#endif  // WXP_COMMON_TLS_CREDENTIALS_H_
