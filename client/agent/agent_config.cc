#include "client/agent/agent_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/text_proto.h"

namespace wxp::agent {
namespace {

absl::Status ReadConfigFile(const std::string& path, wxp::v1::AgentConfig* config) {
  WXP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  if (absl::Status parsed = ParseTextProto(text, path, config); !parsed.ok()) {
    return absl::Status(parsed.code(),
                        absl::StrCat(parsed.message(), " (see proto/agent_config.proto)"));
  }
  // As the example config promises: relative paths in the file mean relative to the file.
  auto resolve = [&path](const std::string& p) { return ResolveRelativeTo(path, p); };
  config->mutable_tls()->set_cert(resolve(config->tls().cert()));
  config->mutable_tls()->set_key(resolve(config->tls().key()));
  config->mutable_tls()->set_ca(resolve(config->tls().ca()));
  for (std::string& e : *config->mutable_expert_paths()) e = resolve(e);
  config->set_work_dir(resolve(config->work_dir()));
  if (config->has_synthetic()) {
    config->mutable_synthetic()->set_optimum_path(resolve(config->synthetic().optimum_path()));
  }
  if (config->has_builtin_legal_text()) {
    auto* legal = config->mutable_builtin_legal_text();
    legal->set_corpus_dir(resolve(legal->corpus_dir()));
    legal->set_base_dir(resolve(legal->base_dir()));
  }
  return absl::OkStatus();
}

void ApplyFlags(const AgentFlags& f, wxp::v1::AgentConfig& config) {
  auto set = [](const std::string& flag, auto setter) {
    if (!flag.empty()) setter(flag);
  };
  set(f.server, [&](auto v) { config.set_server_address(v); });
  set(f.tls_cert, [&](auto v) { config.mutable_tls()->set_cert(v); });
  set(f.role, [&](auto v) { config.set_role(v); });
  set(f.tls_key, [&](auto v) { config.mutable_tls()->set_key(v); });
  set(f.tls_ca, [&](auto v) { config.mutable_tls()->set_ca(v); });
  set(f.tls_server_name, [&](auto v) { config.set_tls_server_name(v); });
  set(f.identity, [&](auto v) { config.set_plaintext_identity(v); });
  set(f.swarm, [&](auto v) { config.set_swarm(v); });
  set(f.work_dir, [&](auto v) { config.set_work_dir(v); });
  set(f.metrics_address, [&](auto v) { config.set_metrics_address(v); });
  if (f.metrics_allow_remote) config.set_metrics_allow_remote(true);
  if (f.plaintext) config.set_plaintext(true);
  if (!f.experts.empty()) {
    config.clear_expert_paths();
    for (const std::string& e : f.experts) config.add_expert_paths(e);
  }
  if (f.capacity != 0) config.set_capacity(f.capacity);
  if (!f.eval_command.empty()) {
    auto* e = config.mutable_external_command();
    e->clear_argv();
    for (absl::string_view a : absl::StrSplit(f.eval_command, ' ', absl::SkipEmpty())) {
      e->add_argv(std::string(a));
    }
    if (f.eval_timeout_seconds > 0) e->set_timeout_seconds(f.eval_timeout_seconds);
  }
  if (f.synthetic || !f.synthetic_optimum.empty()) {
    config.mutable_synthetic()->set_optimum_path(f.synthetic_optimum);
  }
}

absl::Status Check(const wxp::v1::AgentConfig& config) {
  if (config.server_address().empty()) {
    return absl::InvalidArgumentError("no server address (--server or server_address)");
  }
  if (config.swarm().empty()) return absl::InvalidArgumentError("no swarm (--swarm or swarm)");
  if (config.work_dir().empty()) {
    return absl::InvalidArgumentError("no work directory (--work_dir or work_dir)");
  }
  if (config.capacity() < 0) return absl::InvalidArgumentError("capacity must be >= 1");
  if (config.reconnect_initial_seconds() < 0 || config.reconnect_max_seconds() < 0 ||
      config.rpc_deadline_seconds() < 0 || config.heartbeat_interval_seconds() < 0) {
    return absl::InvalidArgumentError("reconnect, deadline and heartbeat durations must be > 0");
  }
  if (!(config.max_expert_epsilon() >= 0 && std::isfinite(config.max_expert_epsilon()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_expert_epsilon must be a finite number >= 0 (0: any), got ",
                     config.max_expert_epsilon()));
  }
  if (config.max_expert_epsilon() > 0 && !config.require_private_experts()) {
    return absl::InvalidArgumentError(
        "max_expert_epsilon needs require_private_experts: true (alone it would check nothing)");
  }
  if (config.has_train_command()) {
    // Refused at start-up rather than at the first training, which may be hours away.
    const auto& t = config.train_command();
    if (t.argv().empty() || t.argv(0).empty()) {
      return absl::InvalidArgumentError(
          "train_command needs a program: argv: \"PROGRAM\" (IN and OUT are appended)");
    }
    if (t.timeout_seconds() < 0) {
      return absl::InvalidArgumentError("train_command.timeout_seconds must be > 0");
    }
    for (const auto& [k, v] : t.env()) {
      if (k.empty() || k.find('=') != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("train_command.env key '", k, "' must be non-empty without '='"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AgentSetup> ResolveAgentSetup(const AgentFlags& flags,
                                             const std::string& default_identity) {
  AgentSetup setup;
  wxp::v1::AgentConfig& config = setup.config;
  if (!flags.config.empty()) WXP_RETURN_IF_ERROR(ReadConfigFile(flags.config, &config));
  ApplyFlags(flags, config);
  WXP_RETURN_IF_ERROR(Check(config));

  client::ConnectionOptions& c = setup.connection;
  c.server_address = config.server_address();
  c.plaintext = config.plaintext();
  c.tls = {config.tls().cert(), config.tls().key(), config.tls().ca()};
  c.tls_server_name = config.tls_server_name();
  // The role: the certificate's with TLS (the server reads it from there), else the one
  // configured, sent as metadata.
  Role role = Role::kAgent;
  if (!config.role().empty()) {
    absl::StatusOr<Role> r = ParseRole(config.role());
    if (!r.ok() || (*r != Role::kAgent && *r != Role::kAuditor)) {
      return absl::InvalidArgumentError(
          absl::StrCat("role must be agent or auditor, not '", config.role(), "'"));
    }
    role = *r;
  }
  if (!config.plaintext() && !config.tls().cert().empty()) {
    absl::StatusOr<std::string> pem = ReadFile(config.tls().cert());
    absl::StatusOr<CertificateIdentity> id =
        pem.ok() ? ParseCertificateIdentity(*pem)
                 : absl::StatusOr<CertificateIdentity>(pem.status());
    // An unreadable certificate is Connection's to report; the role is only read here.
    if (id.ok()) {
      if (!config.role().empty() && id->role != role) {
        return absl::InvalidArgumentError(absl::StrCat("role '", config.role(),
                                                       "' contradicts the certificate's role '",
                                                       RoleName(id->role), "'"));
      }
      if (id->role == Role::kAuditor) role = Role::kAuditor;
    }
  }
  setup.role = role;
  c.role = role;
  c.identity = config.plaintext_identity().empty() ? default_identity : config.plaintext_identity();
  if (config.rpc_deadline_seconds() > 0) {
    c.rpc_deadline = absl::Seconds(config.rpc_deadline_seconds());
  }

  AgentOptions& o = setup.agent;
  o.swarm = config.swarm();
  o.expert_paths.assign(config.expert_paths().begin(), config.expert_paths().end());
  o.capacity = config.capacity() > 0 ? config.capacity() : 1;
  o.work_dir = config.work_dir();
  if (config.reconnect_initial_seconds() > 0) {
    o.backoff_initial = absl::Seconds(config.reconnect_initial_seconds());
  }
  if (config.reconnect_max_seconds() > 0) {
    o.backoff_max = absl::Seconds(config.reconnect_max_seconds());
  }
  if (config.heartbeat_interval_seconds() > 0) {
    o.heartbeat_interval = absl::Seconds(config.heartbeat_interval_seconds());
  }
  if (o.backoff_max < o.backoff_initial) o.backoff_max = o.backoff_initial;
  o.require_private_experts = config.require_private_experts();
  o.max_expert_epsilon = config.max_expert_epsilon();
  return setup;
}

}  // namespace wxp::agent
