#include "server/app/credentials.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/server_credentials.h"

namespace wxp::server {
namespace {

constexpr char kRoleUriPrefix[] = "wxp://role/";

bool IsLoopback(const std::string& listen) {
  return absl::StartsWith(listen, "127.") || absl::StartsWith(listen, "localhost:") ||
         absl::StartsWith(listen, "[::1]:");
}

std::string Metadata(const grpc::ServerContext& ctx, const char* key) {
  auto it = ctx.client_metadata().find(key);
  return it == ctx.client_metadata().end() ? std::string()
                                           : std::string(it->second.data(), it->second.size());
}

// Name (CN) and role (SAN URI wxp://role/<role>) of the verified client certificate.
absl::StatusOr<Caller> CallerFromCertificate(const grpc::ServerContext& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("the client presented no verified certificate");
  }
  std::vector<grpc::string_ref> pem = auth->FindPropertyValues("x509_pem_cert");
  if (pem.empty()) return absl::UnauthenticatedError("the client certificate is unavailable");
  BIO* bio = BIO_new_mem_buf(pem[0].data(), static_cast<int>(pem[0].size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::UnauthenticatedError("the client certificate does not parse");
  Caller caller;
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
    caller.identity = cn;
  }
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.uniformResourceIdentifier)),
                          static_cast<size_t>(ASN1_STRING_length(name->d.uniformResourceIdentifier)));
    if (absl::StartsWith(uri, kRoleUriPrefix)) caller.role = uri.substr(sizeof(kRoleUriPrefix) - 1);
  }
  GENERAL_NAMES_free(names);
  X509_free(cert);
  if (caller.identity.empty()) {
    return absl::UnauthenticatedError("the client certificate has no common name");
  }
  return caller;
}

}  // namespace

absl::Status UsePlaintext(WxpServer::Options& options, bool allow_remote) {
  if (!allow_remote && !IsLoopback(options.listen)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--plaintext listens on loopback only; ", options.listen,
        " is not loopback (add --plaintext_allow_remote if you really mean it)"));
  }
  options.credentials = grpc::InsecureServerCredentials();
  options.authenticate = [](const grpc::ServerContext& ctx) -> absl::StatusOr<Caller> {
    Caller c{Metadata(ctx, kPlaintextIdentityKey), Metadata(ctx, kPlaintextRoleKey)};
    if (c.identity.empty()) {
      return absl::UnauthenticatedError(absl::StrCat(
          "plaintext clients must send ", kPlaintextIdentityKey, " and ", kPlaintextRoleKey));
    }
    return c;
  };
  return absl::OkStatus();
}

absl::Status UseMutualTls(WxpServer::Options& options, const std::string& cert,
                          const std::string& key, const std::string& ca) {
  if (cert.empty() || key.empty() || ca.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs --tls_cert, --tls_key and --tls_ca (or --plaintext for local "
        "experiments)");
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  absl::StatusOr<std::string> cert_pem = ReadFile(cert), key_pem = ReadFile(key),
                              ca_pem = ReadFile(ca);
  for (const auto* s : {&cert_pem, &key_pem, &ca_pem}) {
    if (!s->ok()) return s->status();
  }
  ssl.pem_root_certs = *ca_pem;
  ssl.pem_key_cert_pairs.push_back({*key_pem, *cert_pem});
  options.credentials = grpc::SslServerCredentials(ssl);
  options.authenticate = CallerFromCertificate;
  return absl::OkStatus();
}

}  // namespace wxp::server
