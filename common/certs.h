// The TLS material WXP runs on (SPEC 5.1): a private certificate authority, and server and
// client (agent, admin, auditor) certificates it issues; the roles are common/identity.h's. `wxpctl
// certs` is a thin shell over this file, and the server reads identities back with
// ParseCertificateIdentity, so what one side writes is exactly what the other accepts.
//
// Keys are EC P-256; signatures ECDSA with SHA-256. Certificates and keys are PEM.
//
// How a certificate says who and what its holder is:
//   - the name is the subject CN (also the file stem: `<name>.crt`, `<name>.key`);
//   - the role is carried twice, and a parser requires both, in agreement:
//       subject OU  "wxp-role:<role>"    (visible in `openssl x509 -subject`), and
//       SAN URI     "wxp://role/<role>"  (the machine-readable form);
//     the prefix keeps an unrelated OU such as "admin" from reading as a WXP role;
//   - server certificates carry EKU serverAuth plus SAN DNS/IP entries for hostname
//     checks; client certificates carry EKU clientAuth only, so neither kind can
//     stand in for the other in a TLS handshake.
//
// Private keys are written with mode 0600 from the moment the file exists (never widened
// afterwards), atomically: a reader sees no file or the whole file. No function here
// overwrites an existing file unless asked to with `force`.
//
// All functions are thread-safe.
#ifndef WXP_COMMON_CERTS_H_
#define WXP_COMMON_CERTS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/identity.h"

namespace wxp {

// A certificate name (the CN and the file stem) must be 1 to 64 characters from
// [A-Za-z0-9._-], must not start with '.' or '-', and must not be "ca" (that name belongs to
// the authority's own files). InvalidArgument naming the problem otherwise.
absl::Status ValidateCertificateName(absl::string_view name);

// Files inside a CA directory and next to every issued certificate.
inline constexpr char kCaCertFile[] = "ca.crt";
inline constexpr char kCaKeyFile[] = "ca.key";

inline constexpr absl::Duration kDefaultCaValidity = absl::Hours(24 * 3650);   // ~10 years
inline constexpr absl::Duration kDefaultLeafValidity = absl::Hours(24 * 825);  // CA/B limit

struct CaOptions {
  // Subject CN of the authority; shows up in every issued certificate's issuer.
  std::string common_name = "WXP CA";
  absl::Duration validity = kDefaultCaValidity;
  // Start of validity; default: now minus five minutes, so a peer whose clock is slightly
  // behind still accepts a certificate issued a moment ago.
  std::optional<absl::Time> not_before;
  // Replace an existing ca.crt / ca.key. Doing so orphans every certificate the old
  // authority issued: servers and clients stop trusting each other until re-issued.
  bool force = false;
};

// Creates `dir` if needed and writes a new authority into it: `ca.key` (0600) and `ca.crt`
// (self-signed; basicConstraints CA:TRUE, pathlen 0; keyUsage keyCertSign, cRLSign).
// AlreadyExists naming the file if either exists and !options.force (nothing is written);
// InvalidArgument for an empty common name or a non-positive validity; other errors name
// the path and the OS reason.
absl::Status InitCa(const std::string& dir, const CaOptions& options = {});

struct CertificateRequest {
  Role role = Role::kAgent;
  // CN and file stem; see ValidateCertificateName. For agents and admins this is the
  // client's identity on the server (e.g. "firm-a"), the name revocation refers to.
  std::string name;
  // Server certificates only: the host names and IP literals clients dial. When both are
  // empty a server certificate gets "localhost" and "127.0.0.1". Non-empty lists on an
  // agent or admin request are refused (they would suggest a check nobody performs).
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  absl::Duration validity = kDefaultLeafValidity;
  // Start of validity; default now minus five minutes. Tests set it in the past (with a
  // short validity) to make an already-expired certificate.
  std::optional<absl::Time> not_before;
};

// Issues a certificate signed by the authority in `ca_dir` (ca.crt + ca.key, as InitCa
// wrote them) and writes into `out_dir` (created if needed): `<name>.crt`, `<name>.key`
// (0600), and a copy of `ca.crt` (what the holder needs to verify its peers).
//
// The end of validity is clamped to the authority's own, since a certificate cannot be
// trusted longer than its issuer is.
//
// Without `force`, AlreadyExists naming the first existing file and nothing is written
// (an existing ca.crt identical to the authority's is not a conflict, so several
// certificates can share one directory, including `ca_dir` itself).
// InvalidArgument for a bad name, DNS name or IP address, or a non-positive validity;
// FailedPrecondition if the authority's files are unusable (missing, not a CA, key does not
// match, expired); other errors name the path and the OS reason.
absl::Status IssueCertificate(const std::string& ca_dir, const CertificateRequest& request,
                              const std::string& out_dir, bool force = false);

// What a WXP certificate says about its holder.
struct CertificateIdentity {
  std::string name;  // subject CN
  Role role = Role::kAgent;
  absl::Time not_before;
  absl::Time not_after;
  // SHA-256 of the DER encoding, upper-case hex pairs joined by ':', the format of
  // `openssl x509 -noout -fingerprint -sha256`, so operators can compare the two.
  std::string fingerprint;
  std::string serial_hex;
  std::vector<std::string> dns_names;     // SAN DNS entries, in certificate order
  std::vector<std::string> ip_addresses;  // SAN IP entries, textual
};

// Reads the first certificate in `pem`. InvalidArgument if it is not a PEM certificate, has
// no single valid CN, or does not carry exactly one role in both the OU and the SAN URI
// forms with the same value. Does not check the signature or dates: see VerifyCertificate.
absl::StatusOr<CertificateIdentity> ParseCertificateIdentity(absl::string_view pem);

// ParseCertificateIdentity plus a chain check against the authorities in `ca_pem` (one or
// more PEM certificates, each trusted): signature, validity at `now`, CA constraints, and
// the extended key usage a TLS peer would require of the certificate's role (serverAuth
// for server, clientAuth otherwise). FailedPrecondition with the reason OpenSSL gives
// (e.g. "certificate has expired") when the chain does not verify; InvalidArgument if
// `ca_pem` holds no certificate.
absl::StatusOr<CertificateIdentity> VerifyCertificate(absl::string_view cert_pem,
                                                      absl::string_view ca_pem, absl::Time now);

// OK if `key_pem` is the private key of the certificate in `cert_pem`; FailedPrecondition
// if it is another key, InvalidArgument if either does not parse.
absl::Status CheckKeyMatchesCertificate(absl::string_view cert_pem, absl::string_view key_pem);

}  // namespace wxp

#endif  // WXP_COMMON_CERTS_H_
