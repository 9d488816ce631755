// Making TLS material (common/certs.h): InitCa and IssueCertificate. Reading and verifying
// certificates is in certs.cc.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/internal/certs_openssl.h"
#include "common/status_macros.h"

namespace wxp {
namespace {

using certs_internal::BioPtr;
using certs_internal::BnPtr;
using certs_internal::ExtPtr;
using certs_internal::kRoleOuPrefix;
using certs_internal::kRoleUriPrefix;
using certs_internal::NamePtr;
using certs_internal::NamesPtr;
using certs_internal::OpenSslError;
using certs_internal::PkeyCtxPtr;
using certs_internal::PkeyPtr;
using certs_internal::ReadCertificatePem;
using certs_internal::ReadPrivateKeyPem;
using certs_internal::TimeFromAsn1;
using certs_internal::Utc;
using certs_internal::X509Ptr;

// Issued certificates start slightly in the past so peers with a lagging clock accept them.
constexpr absl::Duration kBackdate = absl::Minutes(5);

std::string JoinPath(const std::string& dir, absl::string_view file) {
  if (dir.empty()) return std::string(file);
  return absl::EndsWith(dir, "/") ? absl::StrCat(dir, file) : absl::StrCat(dir, "/", file);
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

absl::Status RefuseOverwrite(const std::string& path) {
  return absl::AlreadyExistsError(
      absl::StrCat(path, " already exists; refusing to overwrite it (use --force to replace)"));
}

// Writes `bytes` to `path` through a temporary file in the same directory. The temporary
// file is created with `mode` and, when `exact_mode`, chmod-ed to it before the first byte
// is written, so a private key is never readable by others, not even for a moment. With
// `overwrite` the file replaces `path` by rename; without it, by link(), which fails if
// `path` appeared meanwhile, so an existing file is never clobbered even under a race.
absl::Status WriteFileWithMode(const std::string& path, absl::string_view bytes, mode_t mode,
                               bool exact_mode, bool overwrite) {
  std::random_device rd;
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".", rd());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", tmp);
  auto fail = [&](int e, absl::string_view what) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return ErrnoStatus(e, what, tmp);
  };
  // The umask can only narrow `mode`; fchmod makes it exactly `mode` (0600 for keys).
  if (exact_mode && ::fchmod(fd, mode) != 0) return fail(errno, "cannot chmod");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errno, "cannot write");
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail(errno, "cannot fsync");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(e, "cannot close", tmp);
  }
  if (overwrite) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      ::unlink(tmp.c_str());
      return ErrnoStatus(e, "cannot rename into", path);
    }
  } else {
    const int rc = ::link(tmp.c_str(), path.c_str());
    const int e = errno;
    ::unlink(tmp.c_str());
    if (rc != 0) return e == EEXIST ? RefuseOverwrite(path) : ErrnoStatus(e, "cannot create", path);
  }
  const int dfd = ::open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::Status WritePublicFile(const std::string& path, absl::string_view bytes, bool overwrite) {
  return WriteFileWithMode(path, bytes, 0644, /*exact_mode=*/false, overwrite);
}

absl::Status WritePrivateFile(const std::string& path, absl::string_view bytes, bool overwrite) {
  return WriteFileWithMode(path, bytes, 0600, /*exact_mode=*/true, overwrite);
}

absl::StatusOr<std::string> BioContents(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return OpenSslError("BIO_get_mem_data");
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<std::string> CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError("PEM_write_bio_X509");
  }
  return BioContents(bio.get());
}

// PKCS#8 "PRIVATE KEY" PEM, unencrypted: the key file's 0600 mode is its protection, and
// gRPC reads it without a passphrase. The memory BIO is a secure-heap one so the key bytes
// are wiped when it is freed.
absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  return BioContents(bio.get());
}

// Overwrites a string holding key material before it is released.
struct Cleansed {
  Cleansed() = default;
  explicit Cleansed(std::string v) : value(std::move(v)) {}
  Cleansed(const Cleansed&) = delete;
  Cleansed& operator=(const Cleansed&) = delete;
  ~Cleansed() { OPENSSL_cleanse(value.data(), value.size()); }
  std::string value;
};

absl::StatusOr<PkeyPtr> GenerateP256Key() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") != 1) {
    return OpenSslError("cannot set up EC P-256 key generation");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) != 1) return OpenSslError("EC key generation");
  return PkeyPtr(raw);
}

// The parts of a certificate InitCa and IssueCertificate choose.
struct CertSpec {
  std::string common_name;
  std::string role_ou;  // empty for the CA
  absl::Time not_before;
  absl::Time not_after;
  // Extensions other than the SAN, as OpenSSL config values, in this order (the subject
  // key identifier must precede the authority key identifier of a self-signed cert).
  std::vector<std::pair<int, std::string>> extensions;
  std::vector<std::string> san_dns;
  std::vector<std::string> san_ip;
  std::string san_uri;
};

absl::Status AddNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return OpenSslError(absl::StrCat("cannot set subject ", field));
  }
  return absl::OkStatus();
}

absl::Status AddIa5Name(GENERAL_NAMES* names, int type, const std::string& value) {
  NamePtr name(GENERAL_NAME_new());
  ASN1_IA5STRING* s = ASN1_IA5STRING_new();
  if (name == nullptr || s == nullptr ||
      ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) != 1) {
    ASN1_IA5STRING_free(s);
    return OpenSslError("cannot build subjectAltName");
  }
  GENERAL_NAME_set0_value(name.get(), type, s);
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) return OpenSslError("sk_GENERAL_NAME_push");
  name.release();  // owned by `names` now
  return absl::OkStatus();
}

absl::Status AddIpName(GENERAL_NAMES* names, const std::string& ip) {
  ASN1_OCTET_STRING* bytes = a2i_IPADDRESS(ip.c_str());
  if (bytes == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("'", ip, "' is not an IP address"));
  }
  NamePtr name(GENERAL_NAME_new());
  if (name == nullptr) {
    ASN1_OCTET_STRING_free(bytes);
    return OpenSslError("GENERAL_NAME_new");
  }
  GENERAL_NAME_set0_value(name.get(), GEN_IPADD, bytes);
  if (sk_GENERAL_NAME_push(names, name.get()) == 0) return OpenSslError("sk_GENERAL_NAME_push");
  name.release();
  return absl::OkStatus();
}

// A random positive 159-bit serial: unique without a serial database, and within the 20
// octets RFC 5280 allows.
absl::Status SetRandomSerial(X509* cert) {
  BnPtr bn(BN_new());
  if (bn == nullptr || BN_rand(bn.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
    return OpenSslError("BN_rand");
  }
  if (BN_is_zero(bn.get()) && BN_one(bn.get()) != 1) return OpenSslError("BN_one");
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("BN_to_ASN1_INTEGER");
  }
  return absl::OkStatus();
}

// Builds and signs a certificate for `key`. `issuer` null means self-signed with `key`.
absl::StatusOr<X509Ptr> BuildCertificate(const CertSpec& spec, EVP_PKEY* key, X509* issuer,
                                         EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 || X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("cannot set version or public key");
  }
  WXP_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(spec.not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(spec.not_after)) == nullptr) {
    return OpenSslError("cannot set validity");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!spec.role_ou.empty()) WXP_RETURN_IF_ERROR(AddNameEntry(subject, "OU", spec.role_ou));
  WXP_RETURN_IF_ERROR(AddNameEntry(subject, "CN", spec.common_name));
  if (X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject) != 1) {
    return OpenSslError("cannot set issuer");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : spec.extensions) {
    ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
    if (ext == nullptr || X509_add_ext(cert.get(), ext.get(), -1) != 1) {
      return OpenSslError(absl::StrCat("cannot add extension ", OBJ_nid2sn(nid), "=", value));
    }
  }
  if (!spec.san_dns.empty() || !spec.san_ip.empty() || !spec.san_uri.empty()) {
    NamesPtr names(sk_GENERAL_NAME_new_null());
    if (names == nullptr) return OpenSslError("sk_GENERAL_NAME_new_null");
    for (const std::string& dns : spec.san_dns) {
      WXP_RETURN_IF_ERROR(AddIa5Name(names.get(), GEN_DNS, dns));
    }
    for (const std::string& ip : spec.san_ip) WXP_RETURN_IF_ERROR(AddIpName(names.get(), ip));
    if (!spec.san_uri.empty()) {
      WXP_RETURN_IF_ERROR(AddIa5Name(names.get(), GEN_URI, spec.san_uri));
    }
    if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) !=
        1) {
      return OpenSslError("cannot add subjectAltName");
    }
  }
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
    return OpenSslError("cannot sign certificate");
  }
  return cert;
}

// Host names for SAN DNS entries: letters, digits and '-' in dot-separated labels of 1..63
// characters (no leading/trailing '-'), 253 characters in all; "*." may lead (a wildcard).
absl::Status ValidateDnsName(const std::string& dns) {
  absl::string_view rest = dns;
  absl::ConsumePrefix(&rest, "*.");
  bool ok = !rest.empty() && dns.size() <= 253;
  for (absl::string_view label : absl::StrSplit(rest, '.')) {
    if (!ok) break;
    ok = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-';
    for (char c : label) ok = ok && (absl::ascii_isalnum(c) || c == '-');
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("'", dns, "' is not a DNS name"));
  return absl::OkStatus();
}

absl::Status ValidateIpAddress(const std::string& ip) {
  unsigned char buf[sizeof(struct in6_addr)];
  if (::inet_pton(AF_INET, ip.c_str(), buf) != 1 && ::inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("'", ip, "' is not an IP address"));
  }
  return absl::OkStatus();
}

// The authority's certificate and key, checked to be usable for issuing.
struct Authority {
  X509Ptr cert;
  PkeyPtr key;
  std::string cert_pem;
};

absl::StatusOr<Authority> LoadAuthority(const std::string& ca_dir) {
  const std::string cert_path = JoinPath(ca_dir, kCaCertFile);
  const std::string key_path = JoinPath(ca_dir, kCaKeyFile);
  const std::string hint = "; create an authority with `wxpctl certs init-ca`";
  Authority ca;
  absl::StatusOr<std::string> cert_pem = ReadFile(cert_path);
  if (!cert_pem.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(cert_pem.status().message(), hint));
  }
  ca.cert_pem = *std::move(cert_pem);
  Cleansed key_pem;
  if (absl::StatusOr<std::string> pem = ReadFile(key_path); pem.ok()) {
    key_pem.value = *std::move(pem);
  } else {
    return absl::FailedPreconditionError(absl::StrCat(pem.status().message(), hint));
  }
  absl::StatusOr<X509Ptr> cert = ReadCertificatePem(ca.cert_pem);
  if (!cert.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(cert_path, ": ", cert.status().message()));
  }
  ca.cert = *std::move(cert);
  absl::StatusOr<PkeyPtr> key = ReadPrivateKeyPem(key_pem.value);
  if (!key.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(key_path, ": ", key.status().message()));
  }
  ca.key = *std::move(key);
  if (X509_check_ca(ca.cert.get()) < 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(cert_path, " is not a CA certificate (no CA:TRUE basic constraint)"));
  }
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    return absl::FailedPreconditionError(
        absl::StrCat(key_path, " is not the private key of ", cert_path));
  }
  const absl::Time ca_not_after = TimeFromAsn1(X509_get0_notAfter(ca.cert.get()));
  if (ca_not_after <= absl::Now()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the authority in ", ca_dir, " expired at ", Utc(ca_not_after),
                     "; create a new one and re-issue every certificate"));
  }
  return ca;
}

}  // namespace

absl::Status InitCa(const std::string& dir, const CaOptions& options) {
  if (options.common_name.empty() || options.common_name.size() > 64) {
    return absl::InvalidArgumentError("CA common name must be 1 to 64 characters");
  }
  if (options.validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("CA validity must be positive");
  }
  const std::string cert_path = JoinPath(dir, kCaCertFile);
  const std::string key_path = JoinPath(dir, kCaKeyFile);
  if (!options.force) {
    for (const std::string& path : {key_path, cert_path}) {
      if (Exists(path)) return RefuseOverwrite(path);
    }
  }
  WXP_RETURN_IF_ERROR(MakeDirs(dir));

  WXP_ASSIGN_OR_RETURN(PkeyPtr key, GenerateP256Key());
  CertSpec spec;
  spec.common_name = options.common_name;
  spec.not_before = options.not_before.value_or(absl::Now() - kBackdate);
  spec.not_after = spec.not_before + options.validity;
  spec.extensions = {
      {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
      {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  WXP_ASSIGN_OR_RETURN(X509Ptr cert, BuildCertificate(spec, key.get(), nullptr, nullptr));
  WXP_ASSIGN_OR_RETURN(std::string cert_pem, CertificateToPem(cert.get()));
  WXP_ASSIGN_OR_RETURN(std::string key_pem_raw, PrivateKeyToPem(key.get()));
  Cleansed key_pem(std::move(key_pem_raw));
  // The key first: a failure between the two writes then leaves no certificate that
  // nothing can sign for.
  WXP_RETURN_IF_ERROR(WritePrivateFile(key_path, key_pem.value, options.force));
  return WritePublicFile(cert_path, cert_pem, options.force);
}

absl::Status IssueCertificate(const std::string& ca_dir, const CertificateRequest& request,
                              const std::string& out_dir, bool force) {
  WXP_RETURN_IF_ERROR(ValidateCertificateName(request.name));
  if (request.validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("certificate validity must be positive");
  }
  const bool server = request.role == Role::kServer;
  if (!server && (!request.dns_names.empty() || !request.ip_addresses.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("DNS names and IP addresses belong in server certificates; '", request.name,
                     "' is an ", RoleName(request.role), " certificate"));
  }
  CertSpec spec;
  spec.common_name = request.name;
  spec.role_ou = absl::StrCat(kRoleOuPrefix, RoleName(request.role));
  spec.san_uri = absl::StrCat(kRoleUriPrefix, RoleName(request.role));
  if (server) {
    spec.san_dns = request.dns_names;
    spec.san_ip = request.ip_addresses;
    if (spec.san_dns.empty() && spec.san_ip.empty()) {
      spec.san_dns = {"localhost"};
      spec.san_ip = {"127.0.0.1"};
    }
    for (const std::string& dns : spec.san_dns) WXP_RETURN_IF_ERROR(ValidateDnsName(dns));
    for (const std::string& ip : spec.san_ip) WXP_RETURN_IF_ERROR(ValidateIpAddress(ip));
  }
  spec.extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, server ? "serverAuth" : "clientAuth"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };

  WXP_ASSIGN_OR_RETURN(Authority ca, LoadAuthority(ca_dir));
  spec.not_before = request.not_before.value_or(absl::Now() - kBackdate);
  spec.not_after =
      std::min(spec.not_before + request.validity, TimeFromAsn1(X509_get0_notAfter(ca.cert.get())));
  if (spec.not_after <= spec.not_before) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate would start at ", Utc(spec.not_before),
                     ", after its authority expires at ", Utc(spec.not_after)));
  }

  const std::string cert_path = JoinPath(out_dir, absl::StrCat(request.name, ".crt"));
  const std::string key_path = JoinPath(out_dir, absl::StrCat(request.name, ".key"));
  const std::string ca_copy_path = JoinPath(out_dir, kCaCertFile);
  absl::StatusOr<std::string> existing_ca = ReadFile(ca_copy_path);
  const bool ca_copy_current = existing_ca.ok() && *existing_ca == ca.cert_pem;
  if (!force) {
    for (const std::string& path : {cert_path, key_path}) {
      if (Exists(path)) return RefuseOverwrite(path);
    }
    if (!ca_copy_current && Exists(ca_copy_path)) return RefuseOverwrite(ca_copy_path);
  }

  WXP_ASSIGN_OR_RETURN(PkeyPtr key, GenerateP256Key());
  WXP_ASSIGN_OR_RETURN(X509Ptr cert,
                       BuildCertificate(spec, key.get(), ca.cert.get(), ca.key.get()));
  WXP_ASSIGN_OR_RETURN(std::string cert_pem, CertificateToPem(cert.get()));
  WXP_ASSIGN_OR_RETURN(std::string key_pem_raw, PrivateKeyToPem(key.get()));
  Cleansed key_pem(std::move(key_pem_raw));

  WXP_RETURN_IF_ERROR(MakeDirs(out_dir));
  WXP_RETURN_IF_ERROR(WritePrivateFile(key_path, key_pem.value, force));
  WXP_RETURN_IF_ERROR(WritePublicFile(cert_path, cert_pem, force));
  if (!ca_copy_current) WXP_RETURN_IF_ERROR(WritePublicFile(ca_copy_path, ca.cert_pem, force));
  return absl::OkStatus();
}

}  // namespace wxp
