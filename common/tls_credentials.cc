#include "common/tls_credentials.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "grpc/grpc_security_constants.h"

namespace wxp {
namespace {

struct TlsMaterial {
  std::string cert;
  std::string key;
  std::string ca;
  CertificateIdentity identity;
};

// Reads and cross-checks the three files, so that misconfiguration is reported at start,
// naming the file, instead of as failed handshakes later.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files, absl::Time now) {
  TlsMaterial m;
  WXP_ASSIGN_OR_RETURN(m.cert, ReadFile(files.cert_file));
  WXP_ASSIGN_OR_RETURN(m.key, ReadFile(files.key_file));
  // Like ssh, refuse a private key others can read: it has probably been exposed already,
  // and starting anyway would hide that.
  struct stat st;
  if (::stat(files.key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s is accessible by group or others (mode %04o); run `chmod 600 %s`",
                        files.key_file, st.st_mode & 07777, files.key_file));
  }
  WXP_ASSIGN_OR_RETURN(m.ca, ReadFile(files.ca_file));
  absl::StatusOr<CertificateIdentity> id = VerifyCertificate(m.cert, m.ca, now);
  if (!id.ok()) {
    return absl::Status(
        id.status().code(),
        absl::StrCat(files.cert_file, " (against ", files.ca_file, "): ", id.status().message()));
  }
  m.identity = *std::move(id);
  if (absl::Status s = CheckKeyMatchesCertificate(m.cert, m.key); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat(files.key_file, " and ", files.cert_file, ": ", s.message()));
  }
  return m;
}

absl::Status RequireFiles(const TlsFiles& files) {
  if (files.complete()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "mutual TLS needs a certificate, its key and a CA file (or plaintext for local "
      "experiments)");
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTlsCredentials(const TlsFiles& files,
                                                                              absl::Time now) {
  WXP_ASSIGN_OR_RETURN(TlsMaterial m, LoadTlsMaterial(files, now));
  if (m.identity.role != Role::kServer) {
    return absl::FailedPreconditionError(
        absl::StrCat(files.cert_file, " is an ", RoleName(m.identity.role),
                     " certificate; the server needs one issued with --role server"));
  }
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = m.ca;
  options.pem_key_cert_pairs.push_back({m.key, m.cert});
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::SslServerCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the server TLS credentials");
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientTlsCredentials(
    const TlsFiles& files, absl::Time now) {
  WXP_ASSIGN_OR_RETURN(TlsMaterial m, LoadTlsMaterial(files, now));
  if (m.identity.role == Role::kServer) {
    return absl::FailedPreconditionError(
        absl::StrCat(files.cert_file,
                     " is a server certificate; a client needs one issued with --role agent "
                     "or --role admin"));
  }
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = m.ca;
  options.pem_private_key = m.key;
  options.pem_cert_chain = m.cert;
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the client TLS credentials");
  return creds;
}

void AddPlaintextIdentity(grpc::ClientContext& ctx, absl::string_view identity, Role role) {
  ctx.AddMetadata(kInsecureIdentityMetadata, std::string(identity));
  ctx.AddMetadata(kInsecureRoleMetadata, std::string(RoleName(role)));
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Security::ServerCredentials(
    absl::Time now) const {
  if (plaintext_) return grpc::InsecureServerCredentials();
  WXP_RETURN_IF_ERROR(RequireFiles(files_));
  return ServerTlsCredentials(files_, now);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Security::ChannelCredentials(
    absl::Time now) const {
  if (plaintext_) return grpc::InsecureChannelCredentials();
  WXP_RETURN_IF_ERROR(RequireFiles(files_));
  return ClientTlsCredentials(files_, now);
}

}  // namespace wxp
