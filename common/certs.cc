#include "common/certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace wxp {
namespace {

constexpr char kRoleOuPrefix[] = "wxp-role:";
constexpr char kRoleUriPrefix[] = "wxp://role/";
// Issued certificates start slightly in the past so peers with a lagging clock accept them.
constexpr absl::Duration kBackdate = absl::Minutes(5);

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

// A password callback that never prompts: WXP keys are unencrypted, and OpenSSL's default
// would read a passphrase from the terminal of whatever process parses the key.
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

std::string Utc(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

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

absl::Time TimeFromAsn1(const ASN1_TIME* t) {
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(::timegm(&tm));
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
