// Reading and verifying WXP certificates (common/certs.h); making them is in
// certs_issue.cc.
#include "common/certs.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/internal/certs_openssl.h"
#include "common/status_macros.h"

namespace wxp {
namespace {

using certs_internal::BioPtr;
using certs_internal::BnPtr;
using certs_internal::kRoleOuPrefix;
using certs_internal::kRoleUriPrefix;
using certs_internal::NamesPtr;
using certs_internal::NoPassword;
using certs_internal::OpenSslError;
using certs_internal::PkeyPtr;
using certs_internal::ReadCertificatePem;
using certs_internal::ReadPrivateKeyPem;
using certs_internal::StoreCtxPtr;
using certs_internal::StorePtr;
using certs_internal::TimeFromAsn1;
using certs_internal::Utc;
using certs_internal::X509Ptr;

std::string IpToString(const ASN1_OCTET_STRING* ip) {
  char buf[INET6_ADDRSTRLEN] = {0};
  const int len = ASN1_STRING_length(ip);
  const unsigned char* data = ASN1_STRING_get0_data(ip);
  if (len == 4) ::inet_ntop(AF_INET, data, buf, sizeof buf);
  if (len == 16) ::inet_ntop(AF_INET6, data, buf, sizeof buf);
  return buf;
}

absl::StatusOr<std::string> NameEntryUtf8(X509_NAME* name, int index) {
  unsigned char* utf8 = nullptr;
  const int n =
      ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (n < 0) return absl::InvalidArgumentError("unreadable subject entry");
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

absl::StatusOr<CertificateIdentity> IdentityOf(X509* cert) {
  CertificateIdentity id;
  X509_NAME* subject = X509_get_subject_name(cert);
  const int cn = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (cn < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, cn) >= 0) {
    return absl::InvalidArgumentError("certificate must have exactly one subject CN");
  }
  WXP_ASSIGN_OR_RETURN(id.name, NameEntryUtf8(subject, cn));
  if (absl::Status s = ValidateCertificateName(id.name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("certificate CN: ", s.message()));
  }

  std::vector<std::string> ou_roles;
  for (int i = X509_NAME_get_index_by_NID(subject, NID_organizationalUnitName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, NID_organizationalUnitName, i)) {
    WXP_ASSIGN_OR_RETURN(std::string ou, NameEntryUtf8(subject, i));
    if (absl::StartsWith(ou, kRoleOuPrefix)) ou_roles.push_back(ou.substr(strlen(kRoleOuPrefix)));
  }

  std::vector<std::string> uri_roles;
  int critical = 0;
  NamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr)));
  if (names == nullptr && critical == -2) {
    return absl::InvalidArgumentError("certificate has more than one subjectAltName extension");
  }
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_DNS || gn->type == GEN_URI) {
      const ASN1_IA5STRING* s =
          gn->type == GEN_DNS ? gn->d.dNSName : gn->d.uniformResourceIdentifier;
      std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                        static_cast<size_t>(ASN1_STRING_length(s)));
      if (gn->type == GEN_DNS) {
        id.dns_names.push_back(std::move(value));
      } else if (absl::StartsWith(value, kRoleUriPrefix)) {
        uri_roles.push_back(value.substr(strlen(kRoleUriPrefix)));
      }
    } else if (gn->type == GEN_IPADD) {
      id.ip_addresses.push_back(IpToString(gn->d.iPAddress));
    }
  }
  ERR_clear_error();  // X509_get_ext_d2i may leave a "not found" entry behind

  const std::string where = absl::StrCat("certificate '", id.name, "'");
  if (ou_roles.size() != 1 || uri_roles.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " must carry exactly one role as subject OU \"", kRoleOuPrefix,
        "<role>\" and one as SAN URI \"", kRoleUriPrefix, "<role>\" (found ", ou_roles.size(),
        " and ", uri_roles.size(), "); issue it with `wxpctl certs issue`"));
  }
  if (ou_roles[0] != uri_roles[0]) {
    return absl::InvalidArgumentError(absl::StrCat(where, " has contradictory roles: OU says '",
                                                   ou_roles[0], "', SAN URI says '", uri_roles[0],
                                                   "'"));
  }
  absl::StatusOr<Role> role = ParseRole(ou_roles[0]);
  if (!role.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", role.status().message()));
  id.role = *role;

  id.not_before = TimeFromAsn1(X509_get0_notBefore(cert));
  id.not_after = TimeFromAsn1(X509_get0_notAfter(cert));

  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1) return OpenSslError("X509_digest");
  std::vector<std::string> hex;
  for (unsigned int i = 0; i < md_len; ++i) hex.push_back(absl::StrFormat("%02X", md[i]));
  id.fingerprint = absl::StrJoin(hex, ":");

  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (serial == nullptr) return OpenSslError("ASN1_INTEGER_to_BN");
  char* serial_hex = BN_bn2hex(serial.get());
  if (serial_hex == nullptr) return OpenSslError("BN_bn2hex");
  id.serial_hex = serial_hex;
  OPENSSL_free(serial_hex);
  return id;
}

}  // namespace

absl::Status ValidateCertificateName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("certificate name is empty");
  if (name.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate name '", name, "' is longer than 64 characters"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "certificate name '", name, "' may contain only letters, digits, '.', '_' and '-'"));
    }
  }
  if (name.front() == '.' || name.front() == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate name '", name, "' must not start with '.' or '-'"));
  }
  if (name == "ca") {
    return absl::InvalidArgumentError(
        "certificate name 'ca' is reserved for the authority's own files");
  }
  return absl::OkStatus();
}

absl::StatusOr<CertificateIdentity> ParseCertificateIdentity(absl::string_view pem) {
  WXP_ASSIGN_OR_RETURN(X509Ptr cert, ReadCertificatePem(pem));
  return IdentityOf(cert.get());
}

absl::StatusOr<CertificateIdentity> VerifyCertificate(absl::string_view cert_pem,
                                                      absl::string_view ca_pem, absl::Time now) {
  WXP_ASSIGN_OR_RETURN(X509Ptr cert, ReadCertificatePem(cert_pem));
  WXP_ASSIGN_OR_RETURN(CertificateIdentity id, IdentityOf(cert.get()));
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (store == nullptr || ctx == nullptr) return OpenSslError("X509_STORE_new");
  // Every certificate in the bundle is a trust anchor, as for gRPC's pem_root_certs (a
  // bundle of old and new CA lets certificates from both verify during a CA rotation).
  BioPtr bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  if (bio == nullptr) return OpenSslError("BIO_new_mem_buf");
  int anchors = 0;
  while (X509Ptr ca{PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr)}) {
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) return OpenSslError("X509_STORE_add_cert");
    ++anchors;
  }
  ERR_clear_error();  // the read that ended the loop
  if (anchors == 0) return absl::InvalidArgumentError("CA: no PEM certificate found");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return OpenSslError("cannot set up certificate verification");
  }
  // The purpose a TLS peer checks: serverAuth for servers, clientAuth for clients.
  X509_STORE_CTX_set_purpose(
      ctx.get(), id.role == Role::kServer ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT);
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), absl::ToTimeT(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return absl::FailedPreconditionError(absl::StrCat(
        "certificate '", id.name, "' (valid ", Utc(id.not_before), " to ", Utc(id.not_after),
        ") does not verify against the CA: ", X509_verify_cert_error_string(err)));
  }
  return id;
}

absl::Status CheckKeyMatchesCertificate(absl::string_view cert_pem, absl::string_view key_pem) {
  WXP_ASSIGN_OR_RETURN(X509Ptr cert, ReadCertificatePem(cert_pem));
  WXP_ASSIGN_OR_RETURN(PkeyPtr key, ReadPrivateKeyPem(key_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::FailedPreconditionError(
        "the private key does not belong to the certificate (were they issued together?)");
  }
  return absl::OkStatus();
}

}  // namespace wxp
