// wxp-agent's configuration: a text-format wxp.v1.AgentConfig file (proto/agent_config.proto)
// and command-line flags, which override it, become the options of the connection and of
// the agent. Kept apart from main() so the mapping, and its refusals, are tested.
#ifndef WXP_CLIENT_AGENT_AGENT_CONFIG_H_
#define WXP_CLIENT_AGENT_AGENT_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/agent/agent.h"
#include "client/net/connection.h"
#include "proto/agent_config.pb.h"

namespace wxp::agent {

// wxp-agent's flags as plain values; empty / zero / false means "not given" (the file's
// value, or the default, applies).
struct AgentFlags {
  std::string config;  // path of the AgentConfig file
  std::string server;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  std::string tls_server_name;
  bool plaintext = false;
  std::string identity;
  std::string swarm;
  std::vector<std::string> experts;
  int capacity = 0;
  std::string work_dir;
  std::string eval_command;  // split on spaces
  double eval_timeout_seconds = 0;
  std::string synthetic_optimum;
  bool synthetic = false;
  std::string metrics_address;
  bool metrics_allow_remote = false;
  std::string role;  // AgentConfig.role
};

// Everything wxp-agent needs to start.
struct AgentSetup {
  // The merged configuration, paths resolved; the evaluator is built from it.
  wxp::v1::AgentConfig config;
  client::ConnectionOptions connection;
  AgentOptions agent;
  // kAgent, or kAuditor (SPEC 12): then wxp-agent runs client/agent/auditor.h instead.
  Role role = Role::kAgent;
};

// Reads `flags.config` if given (relative paths in it are relative to the file), applies the
// flags over it, and builds the options. `default_identity` is the plaintext identity when
// none is configured (wxp-agent passes the host name).
// Errors: the file's read error; InvalidArgument naming the line for a malformed file, and
// naming the missing setting (server address, swarm, work directory) or the bad value
// (negative capacity or durations, a train_command without a program, with a negative
// timeout or a bad environment key, a role that is neither agent nor auditor or that
// contradicts the TLS certificate's).
absl::StatusOr<AgentSetup> ResolveAgentSetup(const AgentFlags& flags,
                                             const std::string& default_identity);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_AGENT_CONFIG_H_
