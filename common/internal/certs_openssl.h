// What common/certs.h's two halves share: OpenSSL handles as unique_ptrs, OpenSSL errors as
// Status, PEM readers, time conversions, and how a role is spelled inside a certificate.
// Internal to common/certs (certs_issue.cc writes certificates, certs.cc reads and verifies
// them); nothing else includes this.
#ifndef WXP_COMMON_INTERNAL_CERTS_OPENSSL_H_
#define WXP_COMMON_INTERNAL_CERTS_OPENSSL_H_

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace wxp::certs_internal {

// The role's two spellings in a certificate (common/certs.h): subject OU and SAN URI.
inline constexpr char kRoleOuPrefix[] = "wxp-role:";
inline constexpr char kRoleUriPrefix[] = "wxp://role/";

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
using NamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME, GENERAL_NAME_free>>;

// Drains OpenSSL's thread-local error queue into one message, so the next call starts clean.
std::string OpenSslErrors();
// Internal naming `what` and OpenSSL's queued errors.
absl::Status OpenSslError(absl::string_view what);

// A password callback that never prompts: WXP keys are unencrypted, and OpenSSL's default
// would read a passphrase from the terminal of whatever process parses the key.
int NoPassword(char*, int, int, void*);

// The first certificate / private key in `pem`; InvalidArgument with OpenSSL's reason.
absl::StatusOr<X509Ptr> ReadCertificatePem(absl::string_view pem);
absl::StatusOr<PkeyPtr> ReadPrivateKeyPem(absl::string_view pem);

// RFC 3339 in UTC, to the second, for messages.
std::string Utc(absl::Time t);
// InfinitePast if `t` is null or unreadable.
absl::Time TimeFromAsn1(const ASN1_TIME* t);

}  // namespace wxp::certs_internal

#endif  // WXP_COMMON_INTERNAL_CERTS_OPENSSL_H_
