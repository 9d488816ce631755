// `wxpctl certs init-ca` and `wxpctl certs issue`: the private CA and the server, agent and
// admin certificates of a deployment (SPEC 5.1), written where wxp-server and wxp-agent
// expect them (common/certs.h does the work).
#include "absl/strings/str_cat.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "common/certs.h"
#include "common/file_util.h"

namespace wxp::admin {
namespace {

// --days as a validity; `fallback` when the flag is absent.
absl::StatusOr<absl::Duration> Validity(const cli::ParsedArgs& p, absl::Duration fallback) {
  if (!p.Has("days")) return fallback;
  absl::StatusOr<int64_t> days = p.GetInt("days");
  if (!days.ok()) return days.status();
  if (*days <= 0) return absl::InvalidArgumentError("--days must be positive");
  return absl::Hours(24 * *days);
}

int InitCaCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<cli::FlagSpec> flags = {
      {"dir", "directory for ca.crt and ca.key (created if needed)"},
      {"cn", "the authority's common name", false, "WXP CA"},
      {"days", "validity in days (default 3650)"},
      {"force", "replace an existing CA (orphans every certificate it issued)", true},
  };
  int code = 0;
  std::optional<cli::ParsedArgs> p = ParseOrExit(
      args, flags, "certs init-ca", "--dir DIR [--cn NAME] [--days N] [--force]", out, err, &code);
  if (!p) return code;
  if (!p->positional().empty()) {
    return UsageError(err, "certs init-ca", "unexpected argument '" + p->positional()[0] + "'");
  }
  if (p->Get("dir").empty()) return UsageError(err, "certs init-ca", "missing --dir DIR");
  absl::StatusOr<absl::Duration> validity = Validity(*p, kDefaultCaValidity);
  if (!validity.ok())
    return UsageError(err, "certs init-ca", std::string(validity.status().message()));
  CaOptions o;
  o.common_name = p->Get("cn");
  o.validity = *validity;
  o.force = p->GetBool("force");
  const std::string dir = p->Get("dir");
  if (absl::Status s = InitCa(dir, o); !s.ok()) return Fail(err, s);
  out << "wrote " << dir << "/" << kCaCertFile << " and " << dir << "/" << kCaKeyFile
      << " (0600). Keep ca.key offline; hand out ca.crt.\n";
  return kExitOk;
}

int IssueCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<cli::FlagSpec> flags = {
      {"ca", "the CA directory (from 'wxpctl certs init-ca')"},
      {"role", "server, agent, admin or auditor"},
      {"name", "certificate name: the client identity (CN) and the file stem"},
      {"dns", "server only: a DNS name clients dial (repeat or comma-separate)"},
      {"ip", "server only: an IP address clients dial (repeat or comma-separate)"},
      {"days", "validity in days (default 825)"},
      {"out", "output directory for NAME.crt, NAME.key and ca.crt"},
      {"force", "overwrite existing files", true},
  };
  int code = 0;
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args, flags, "certs issue",
                  "--ca DIR --role server|agent|admin|auditor --name NAME [--dns X ...] [--ip X "
                  "...] [--days N] "
                  "--out DIR [--force]",
                  out, err, &code);
  if (!p) return code;
  if (!p->positional().empty()) {
    return UsageError(err, "certs issue", "unexpected argument '" + p->positional()[0] + "'");
  }
  for (const char* required : {"ca", "role", "name", "out"}) {
    if (p->Get(required).empty()) {
      return UsageError(err, "certs issue", absl::StrCat("missing --", required));
    }
  }
  absl::StatusOr<Role> role = ParseRole(p->Get("role"));
  if (!role.ok()) return UsageError(err, "certs issue", std::string(role.status().message()));
  absl::StatusOr<absl::Duration> validity = Validity(*p, kDefaultLeafValidity);
  if (!validity.ok())
    return UsageError(err, "certs issue", std::string(validity.status().message()));
  CertificateRequest r;
  r.role = *role;
  r.name = p->Get("name");
  r.dns_names = p->GetAll("dns");
  r.ip_addresses = p->GetAll("ip");
  r.validity = *validity;
  const std::string out_dir = p->Get("out");
  if (absl::Status s = IssueCertificate(p->Get("ca"), r, out_dir, p->GetBool("force")); !s.ok()) {
    return Fail(err, s);
  }
  out << "wrote " << out_dir << "/" << r.name << ".crt, " << out_dir << "/" << r.name
      << ".key (0600) and " << out_dir << "/" << kCaCertFile << " for " << RoleName(r.role) << " '"
      << r.name << "'\n";
  return kExitOk;
}

}  // namespace

int Certs(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return DispatchSubcommand("certs", args, {{"init-ca", InitCaCommand}, {"issue", IssueCommand}},
                            out, err);
}

}  // namespace wxp::admin
