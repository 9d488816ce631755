#include "common/certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using ::testing::HasSubstr;

std::string TestDir(const std::string& leaf) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp ? tmp : "/tmp", "/certs_test/",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/", leaf);
  std::filesystem::remove_all(dir);
  return dir;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string Read(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFile(path);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : "";
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr ParsePem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return X509Ptr(x);
}

// X509_verify_cert directly (independent of VerifyCertificate), with OpenSSL's strict
// RFC 5280 checks on, so a sloppy extension layout would show up here.
int RawVerify(const std::string& cert_pem, const std::string& ca_pem, int purpose) {
  X509Ptr cert = ParsePem(cert_pem);
  X509Ptr ca = ParsePem(ca_pem);
  if (!cert || !ca) return -1;
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca.get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert.get(), nullptr);
  X509_STORE_CTX_set_purpose(ctx, purpose);
  X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_X509_STRICT);
  const int result = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return result;
}

class CertsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_dir_ = TestDir("ca");
    out_dir_ = TestDir("out");
    ASSERT_TRUE(InitCa(ca_dir_).ok());
  }

  absl::Status Issue(Role role, const std::string& name, bool force = false) {
    CertificateRequest req;
    req.role = role;
    req.name = name;
    return IssueCertificate(ca_dir_, req, out_dir_, force);
  }

  std::string ca_dir_;
  std::string out_dir_;
};

TEST(NameTest, AcceptsPlainNamesRefusesTheRest) {
  for (const std::string& good : {std::string("firm-a"), std::string("server"), std::string("a"),
                                  std::string("Firm_B.eu-2"), std::string(64, 'x')}) {
    EXPECT_TRUE(ValidateCertificateName(good).ok()) << good;
  }
  for (const std::string& bad :
       {std::string(""), std::string("firm a"), std::string("../x"), std::string("a/b"),
        std::string(".hidden"), std::string("-flag"), std::string("ca"), std::string(65, 'x'),
        std::string("caf\xc3\xa9"), std::string("a,OU=admin")}) {
    EXPECT_EQ(ValidateCertificateName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(CertsTest, InitCaWritesSelfSignedAuthorityWithPrivateKey) {
  EXPECT_EQ(ModeOf(ca_dir_ + "/ca.key"), 0600);
  const std::string ca_pem = Read(ca_dir_ + "/ca.crt");
  X509Ptr ca = ParsePem(ca_pem);
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_TRUE(X509_get_key_usage(ca.get()) & KU_KEY_CERT_SIGN);
  EXPECT_EQ(X509_check_issued(ca.get(), ca.get()), X509_V_OK);
  // The self-signed authority verifies against itself under strict checks.
  EXPECT_EQ(RawVerify(ca_pem, ca_pem, X509_PURPOSE_ANY), X509_V_OK);
  // Ten years.
  int pday = 0, psec = 0;
  ASSERT_EQ(
      ASN1_TIME_diff(&pday, &psec, X509_get0_notBefore(ca.get()), X509_get0_notAfter(ca.get())), 1);
  EXPECT_EQ(pday, 3650);
  EXPECT_TRUE(CheckKeyMatchesCertificate(ca_pem, Read(ca_dir_ + "/ca.key")).ok());
}

TEST_F(CertsTest, InitCaRefusesToOverwriteWithoutForce) {
  const std::string before = Read(ca_dir_ + "/ca.crt");
  absl::Status s = InitCa(ca_dir_);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(s.message()), HasSubstr("ca.key"));
  EXPECT_EQ(Read(ca_dir_ + "/ca.crt"), before);

  CaOptions force;
  force.force = true;
  ASSERT_TRUE(InitCa(ca_dir_, force).ok());
  EXPECT_NE(Read(ca_dir_ + "/ca.crt"), before);
  EXPECT_EQ(ModeOf(ca_dir_ + "/ca.key"), 0600);
}

TEST_F(CertsTest, IssueAndParseRoundTrip) {
  const absl::Time before = absl::Now();
  ASSERT_TRUE(Issue(Role::kAgent, "firm-a").ok());
  const std::string pem = Read(out_dir_ + "/firm-a.crt");
  absl::StatusOr<CertificateIdentity> id = ParseCertificateIdentity(pem);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->name, "firm-a");
  EXPECT_EQ(id->role, Role::kAgent);
  EXPECT_TRUE(id->dns_names.empty());
  EXPECT_TRUE(id->ip_addresses.empty());
  EXPECT_LE(id->not_before, before);
  EXPECT_GT(id->not_before, before - absl::Minutes(10));
  EXPECT_LT(absl::AbsDuration(id->not_after - (id->not_before + kDefaultLeafValidity)),
            absl::Seconds(2));
  EXPECT_FALSE(id->serial_hex.empty());

  // The fingerprint is what `openssl x509 -fingerprint -sha256` prints.
  X509Ptr x = ParsePem(pem);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_EQ(X509_digest(x.get(), EVP_sha256(), md, &len), 1);
  std::string expected;
  for (unsigned int i = 0; i < len; ++i) {
    absl::StrAppend(&expected, i ? ":" : "", absl::StrFormat("%02X", md[i]));
  }
  EXPECT_EQ(id->fingerprint, expected);

  // The role is in both places the header promises.
  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(x.get()), subject, sizeof subject);
  EXPECT_THAT(std::string(subject), HasSubstr("OU=wxp-role:agent"));
  EXPECT_THAT(std::string(subject), HasSubstr("CN=firm-a"));
  EXPECT_NE(pem.find("BEGIN CERTIFICATE"), std::string::npos);
  GENERAL_NAMES* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  bool found_uri = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_URI) {
      found_uri = std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(
                      gn->d.uniformResourceIdentifier))) == "wxp://role/agent";
    }
  }
  GENERAL_NAMES_free(names);
  EXPECT_TRUE(found_uri);
  // Client certificates are for clients only.
  EXPECT_TRUE(X509_get_extended_key_usage(x.get()) & XKU_SSL_CLIENT);
  EXPECT_FALSE(X509_get_extended_key_usage(x.get()) & XKU_SSL_SERVER);
  EXPECT_EQ(X509_check_ca(x.get()), 0);
}

TEST_F(CertsTest, IssuedFilesAreTheKeyPairAndTheCa) {
  ASSERT_TRUE(Issue(Role::kAdmin, "ops").ok());
  EXPECT_EQ(Read(out_dir_ + "/ca.crt"), Read(ca_dir_ + "/ca.crt"));
  const std::string key_pem = Read(out_dir_ + "/ops.key");
  EXPECT_NE(key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);  // PKCS#8, unencrypted
  EXPECT_TRUE(CheckKeyMatchesCertificate(Read(out_dir_ + "/ops.crt"), key_pem).ok());

  BIO* bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(key, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(key, "EC"));
  char group[64] = {0};
  size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof group, &group_len), 1);
  EXPECT_EQ(std::string(group), "prime256v1");  // OpenSSL's name for P-256
  EVP_PKEY_free(key);

  // Another certificate's key does not match.
  ASSERT_TRUE(Issue(Role::kAgent, "firm-b").ok());
  EXPECT_EQ(CheckKeyMatchesCertificate(Read(out_dir_ + "/ops.crt"), Read(out_dir_ + "/firm-b.key"))
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CertsTest, ChainVerifiesAgainstItsCaOnly) {
  ASSERT_TRUE(Issue(Role::kAgent, "firm-a").ok());
  ASSERT_TRUE(Issue(Role::kServer, "server").ok());
  const std::string ca = Read(ca_dir_ + "/ca.crt");
  const std::string agent = Read(out_dir_ + "/firm-a.crt");
  const std::string server = Read(out_dir_ + "/server.crt");
  EXPECT_EQ(RawVerify(agent, ca, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_EQ(RawVerify(server, ca, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  // The EKU keeps each kind in its lane.
  EXPECT_EQ(RawVerify(agent, ca, X509_PURPOSE_SSL_SERVER), X509_V_ERR_INVALID_PURPOSE);
  EXPECT_EQ(RawVerify(server, ca, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_INVALID_PURPOSE);

  absl::StatusOr<CertificateIdentity> id = VerifyCertificate(agent, ca, absl::Now());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->name, "firm-a");

  // A second authority's certificate does not chain to the first.
  const std::string other_ca_dir = TestDir("other-ca");
  const std::string other_out = TestDir("other-out");
  ASSERT_TRUE(InitCa(other_ca_dir).ok());
  CertificateRequest req;
  req.name = "firm-a";
  ASSERT_TRUE(IssueCertificate(other_ca_dir, req, other_out).ok());
  const std::string foreign = Read(other_out + "/firm-a.crt");
  EXPECT_NE(RawVerify(foreign, ca, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  absl::StatusOr<CertificateIdentity> bad = VerifyCertificate(foreign, ca, absl::Now());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CertsTest, ServerCertificateHasHostNames) {
  ASSERT_TRUE(Issue(Role::kServer, "server").ok());
  absl::StatusOr<CertificateIdentity> id = ParseCertificateIdentity(Read(out_dir_ + "/server.crt"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->role, Role::kServer);
  EXPECT_EQ(id->dns_names, std::vector<std::string>{"localhost"});
  EXPECT_EQ(id->ip_addresses, std::vector<std::string>{"127.0.0.1"});

  CertificateRequest req;
  req.role = Role::kServer;
  req.name = "wxp.example.com";
  req.dns_names = {"wxp.example.com", "*.wxp.example.com"};
  req.ip_addresses = {"10.0.0.7", "::1"};
  ASSERT_TRUE(IssueCertificate(ca_dir_, req, out_dir_).ok());
  id = ParseCertificateIdentity(Read(out_dir_ + "/wxp.example.com.crt"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->dns_names, req.dns_names);
  EXPECT_EQ(id->ip_addresses, (std::vector<std::string>{"10.0.0.7", "::1"}));
  X509Ptr x = ParsePem(Read(out_dir_ + "/wxp.example.com.crt"));
  EXPECT_EQ(X509_check_host(x.get(), "wxp.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(x.get(), "other.example.com", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(x.get(), "10.0.0.7", 0), 1);
}

TEST_F(CertsTest, KeyFilesAre0600WhateverTheUmask) {
  const mode_t old = ::umask(0);  // the most permissive umask: modes must not widen
  absl::Status s = Issue(Role::kAgent, "firm-a");
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(ModeOf(out_dir_ + "/firm-a.key"), 0600);
  EXPECT_EQ(ModeOf(out_dir_ + "/firm-a.crt"), 0644);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(out_dir_)) {
    EXPECT_FALSE(absl::StrContains(e.path().string(), ".tmp.")) << e.path();
    ++files;
  }
  EXPECT_EQ(files, 3);
}

TEST_F(CertsTest, RefusesToOverwriteWithoutForce) {
  ASSERT_TRUE(Issue(Role::kAgent, "firm-a").ok());
  const std::string crt = Read(out_dir_ + "/firm-a.crt");
  const std::string key = Read(out_dir_ + "/firm-a.key");

  absl::Status s = Issue(Role::kAgent, "firm-a");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(s.message()), HasSubstr("firm-a.crt"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--force"));
  EXPECT_EQ(Read(out_dir_ + "/firm-a.crt"), crt);
  EXPECT_EQ(Read(out_dir_ + "/firm-a.key"), key);

  // Only the key left over (say, from an interrupted run) is still a conflict.
  std::filesystem::remove(out_dir_ + "/firm-a.crt");
  s = Issue(Role::kAgent, "firm-a");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(s.message()), HasSubstr("firm-a.key"));
  EXPECT_FALSE(std::filesystem::exists(out_dir_ + "/firm-a.crt"));

  ASSERT_TRUE(Issue(Role::kAgent, "firm-a", /*force=*/true).ok());
  EXPECT_NE(Read(out_dir_ + "/firm-a.key"), key);
  EXPECT_EQ(ModeOf(out_dir_ + "/firm-a.key"), 0600);
  EXPECT_TRUE(
      CheckKeyMatchesCertificate(Read(out_dir_ + "/firm-a.crt"), Read(out_dir_ + "/firm-a.key"))
          .ok());
}

TEST_F(CertsTest, ADifferentCaCopyIsAConflictButTheSameOneIsNot) {
  // Several certificates share one directory, including the CA's own.
  ASSERT_TRUE(Issue(Role::kAgent, "firm-a").ok());
  ASSERT_TRUE(Issue(Role::kAdmin, "ops").ok());
  CertificateRequest req;
  req.role = Role::kServer;
  req.name = "server";
  ASSERT_TRUE(IssueCertificate(ca_dir_, req, ca_dir_).ok());
  EXPECT_TRUE(ParseCertificateIdentity(Read(ca_dir_ + "/server.crt")).ok());

  // A directory holding another authority's ca.crt is not silently switched over.
  const std::string other = TestDir("other-ca");
  ASSERT_TRUE(InitCa(other).ok());
  req.role = Role::kAgent;
  req.name = "firm-z";
  absl::Status s = IssueCertificate(other, req, out_dir_);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(s.message()), HasSubstr("ca.crt"));
  EXPECT_FALSE(std::filesystem::exists(out_dir_ + "/firm-z.key"));
}

TEST_F(CertsTest, ExpiredCertificateCanBeMadeAndDoesNotVerify) {
  // An authority older than the certificate, so only the certificate's own dates matter.
  const std::string old_ca = TestDir("old-ca");
  CaOptions opts;
  opts.not_before = absl::Now() - absl::Hours(24 * 60);
  ASSERT_TRUE(InitCa(old_ca, opts).ok());
  CertificateRequest req;
  req.name = "old-firm";
  req.not_before = absl::Now() - absl::Hours(24 * 30);
  req.validity = absl::Hours(24);
  ASSERT_TRUE(IssueCertificate(old_ca, req, out_dir_).ok());
  const std::string pem = Read(out_dir_ + "/old-firm.crt");
  absl::StatusOr<CertificateIdentity> id = ParseCertificateIdentity(pem);
  ASSERT_TRUE(id.ok());
  EXPECT_LT(id->not_after, absl::Now());
  const std::string ca = Read(old_ca + "/ca.crt");
  EXPECT_EQ(RawVerify(pem, ca, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_CERT_HAS_EXPIRED);
  absl::StatusOr<CertificateIdentity> v = VerifyCertificate(pem, ca, absl::Now());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("expired"));
  // It was fine while it lasted.
  EXPECT_TRUE(VerifyCertificate(pem, ca, *req.not_before + absl::Hours(1)).ok());
}

TEST_F(CertsTest, LeafValidityIsClampedToTheAuthority) {
  const std::string short_ca = TestDir("short-ca");
  CaOptions opts;
  opts.validity = absl::Hours(24 * 30);
  ASSERT_TRUE(InitCa(short_ca, opts).ok());
  CertificateRequest req;
  req.name = "firm-a";
  ASSERT_TRUE(IssueCertificate(short_ca, req, out_dir_).ok());
  absl::StatusOr<CertificateIdentity> leaf =
      ParseCertificateIdentity(Read(out_dir_ + "/firm-a.crt"));
  X509Ptr ca = ParsePem(Read(short_ca + "/ca.crt"));
  int pday = 0, psec = 0;
  ASSERT_TRUE(leaf.ok());
  ASSERT_EQ(ASN1_TIME_diff(&pday, &psec, X509_get0_notAfter(ca.get()),
                           X509_get0_notAfter(ParsePem(Read(out_dir_ + "/firm-a.crt")).get())),
            1);
  EXPECT_EQ(pday, 0);
  EXPECT_EQ(psec, 0);
}

TEST_F(CertsTest, BadRequestsAreRefusedAndWriteNothing) {
  CertificateRequest req;
  req.role = Role::kAgent;
  for (const char* bad : {"", "firm a", "../../etc/x", "ca", ".x"}) {
    req.name = bad;
    EXPECT_EQ(IssueCertificate(ca_dir_, req, out_dir_).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  req.name = "firm-a";
  req.dns_names = {"firm-a.example"};
  absl::Status s = IssueCertificate(ca_dir_, req, out_dir_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("server certificates"));

  req = CertificateRequest();
  req.role = Role::kServer;
  req.name = "server";
  req.ip_addresses = {"999.1.1.1"};
  s = IssueCertificate(ca_dir_, req, out_dir_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("999.1.1.1"));
  req.ip_addresses.clear();
  for (const char* bad : {"bad_host", "-x.example", "a..b", "host,DNS:evil"}) {
    req.dns_names = {bad};
    EXPECT_EQ(IssueCertificate(ca_dir_, req, out_dir_).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  req.dns_names.clear();
  req.validity = absl::ZeroDuration();
  EXPECT_EQ(IssueCertificate(ca_dir_, req, out_dir_).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(out_dir_));

  req.validity = kDefaultLeafValidity;
  s = IssueCertificate(TestDir("no-such-ca"), req, out_dir_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("init-ca"));
}

TEST_F(CertsTest, ParseRefusesWhatIsNotAWxpIdentity) {
  EXPECT_EQ(ParseCertificateIdentity("not a certificate").status().code(),
            absl::StatusCode::kInvalidArgument);
  // The authority itself names no client and carries no role.
  absl::StatusOr<CertificateIdentity> ca = ParseCertificateIdentity(Read(ca_dir_ + "/ca.crt"));
  EXPECT_EQ(ca.status().code(), absl::StatusCode::kInvalidArgument);
}

// A certificate built by hand, as another tool might: the parser must insist on one role,
// stated consistently in both places.
std::string HandMade(const std::vector<std::string>& ous, const std::vector<std::string>& uris,
                     const std::string& cn = "mallory") {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  for (const std::string& ou : ous) {
    X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(ou.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  if (!uris.empty()) {
    std::string san;
    for (const std::string& u : uris) absl::StrAppend(&san, san.empty() ? "" : ",", "URI:", u);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return pem;
}

TEST(ParseRolesTest, RoleMustBeSingleAndConsistent) {
  absl::StatusOr<CertificateIdentity> ok =
      ParseCertificateIdentity(HandMade({"wxp-role:admin"}, {"wxp://role/admin"}));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->role, Role::kAdmin);
  // Unrelated OUs and URIs are ignored.
  ok = ParseCertificateIdentity(
      HandMade({"Legal", "wxp-role:agent"}, {"https://firm.example", "wxp://role/agent"}));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->role, Role::kAgent);

  struct Case {
    std::vector<std::string> ous, uris;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {{"wxp-role:admin"}, {"wxp://role/agent"}, "contradictory"},
           {{"wxp-role:admin"}, {}, "exactly one role"},
           {{}, {"wxp://role/admin"}, "exactly one role"},
           {{"admin"}, {"wxp://role/admin"}, "exactly one role"},
           {{"wxp-role:admin", "wxp-role:agent"}, {"wxp://role/admin"}, "exactly one role"},
           {{"wxp-role:admin"}, {"wxp://role/admin", "wxp://role/admin"}, "exactly one role"},
           {{"wxp-role:root"}, {"wxp://role/root"}, "unknown role"},
       }) {
    absl::StatusOr<CertificateIdentity> id = ParseCertificateIdentity(HandMade(c.ous, c.uris));
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_THAT(std::string(id.status().message()), HasSubstr(c.why));
  }
  absl::StatusOr<CertificateIdentity> bad_cn =
      ParseCertificateIdentity(HandMade({"wxp-role:agent"}, {"wxp://role/agent"}, "a b"));
  EXPECT_EQ(bad_cn.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
