#include "common/internal/certs_openssl.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstring>
#include <ctime>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace wxp::certs_internal {

std::string OpenSslErrors() {
  std::vector<std::string> parts;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    parts.emplace_back(buf);
  }
  return parts.empty() ? "no OpenSSL error recorded" : absl::StrJoin(parts, "; ");
}

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
}

int NoPassword(char*, int, int, void*) { return 0; }

absl::StatusOr<X509Ptr> ReadCertificatePem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return OpenSslError("BIO_new_mem_buf");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("not a PEM certificate: ", OpenSslErrors()));
  }
  return cert;
}

absl::StatusOr<PkeyPtr> ReadPrivateKeyPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return OpenSslError("BIO_new_mem_buf");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an unencrypted PEM private key: ", OpenSslErrors()));
  }
  return key;
}

std::string Utc(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

absl::Time TimeFromAsn1(const ASN1_TIME* t) {
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(::timegm(&tm));
}

}  // namespace wxp::certs_internal
