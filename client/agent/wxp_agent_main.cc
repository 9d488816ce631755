// wxp-agent: the on-prem daemon. Reads a text-format AgentConfig (--config) and/or flags,
// connects to wxp-server, and runs its particles until the swarm is done (exit 0), or until
// SIGTERM/SIGINT stops it at the next step boundary (exit 3; its state stays resumable).
#include <unistd.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "client/agent/agent_config.h"
#include "client/agent/agent_daemon.h"
#include "common/shutdown_signals.h"

ABSL_FLAG(std::string, config, "", "text-format wxp.v1.AgentConfig; flags override it");
ABSL_FLAG(std::string, server, "",
          "host:port of wxp-server; several replicas as a:7443,b:7443 (redirects and failover)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (role agent)");
ABSL_FLAG(std::string, tls_key, "", "its PEM private key (mode 0600)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signed the server's certificate");
ABSL_FLAG(std::string, tls_server_name, "", "verify the server certificate as this name");
ABSL_FLAG(bool, plaintext, false, "no TLS (a local plaintext server only)");
ABSL_FLAG(std::string, identity, "", "plaintext only: the identity to send (default: host name)");
ABSL_FLAG(std::string, swarm, "", "swarm to join");
ABSL_FLAG(std::vector<std::string>, expert, {}, "expert adapter paths, comma-separated");
ABSL_FLAG(int, capacity, 0, "particles this agent can host (default 1)");
ABSL_FLAG(std::string, work_dir, "", "directory for crash-safe state and the blob cache");
ABSL_FLAG(std::string, eval_command, "",
          "external evaluator: the command (split on spaces), run with the candidate's PEFT "
          "directory as last argument; prints {\"scores\": {...}}");
ABSL_FLAG(double, eval_timeout, 0, "external evaluator time-out, seconds (default 600)");
ABSL_FLAG(std::string, synthetic_optimum, "",
          "synthetic evaluator: the hidden optimum (safetensors file or PEFT directory)");
ABSL_FLAG(std::string, metrics_address, "",
          "host:port for GET /metrics (Prometheus text format); empty: no metrics; loopback "
          "only unless --metrics_allow_remote");
ABSL_FLAG(bool, metrics_allow_remote, false, "allow a non-loopback --metrics_address");
ABSL_FLAG(bool, synthetic, false, "use the synthetic evaluator (with --synthetic_optimum)");
ABSL_FLAG(std::string, role, "",
          "agent (default) or auditor: re-evaluate the swarm's claims instead of hosting "
          "particles (SPEC 12); with TLS the certificate's role decides");

int main(int argc, char** argv) {
  // First of all: gRPC and LibTorch start threads when first used (credentials, channels,
  // models), and a thread that does not block SIGTERM would take it with the default action,
  // killing the process instead of shutting it down gracefully.
  wxp::BlockShutdownSignals();
  wxp::IgnoreBrokenPipes();
  absl::SetProgramUsageMessage(
      "wxp-agent --config=FILE | --server=HOST:PORT --swarm=NAME --expert=DIR[,DIR] "
      "--work_dir=DIR (--tls_cert/--tls_key/--tls_ca | --plaintext) "
      "(--eval_command=CMD | --synthetic)");
  absl::ParseCommandLine(argc, argv);
  // As in wxp-server: Debian's absl checks every Mutex acquisition for lock-order cycles (as
  // a debug build would), and gRPC's client takes and drops several mutexes per call (~2.5 %
  // of the simulated agents' CPU in B3). Tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  wxp::agent::AgentFlags flags{absl::GetFlag(FLAGS_config),
                               absl::GetFlag(FLAGS_server),
                               absl::GetFlag(FLAGS_tls_cert),
                               absl::GetFlag(FLAGS_tls_key),
                               absl::GetFlag(FLAGS_tls_ca),
                               absl::GetFlag(FLAGS_tls_server_name),
                               absl::GetFlag(FLAGS_plaintext),
                               absl::GetFlag(FLAGS_identity),
                               absl::GetFlag(FLAGS_swarm),
                               absl::GetFlag(FLAGS_expert),
                               absl::GetFlag(FLAGS_capacity),
                               absl::GetFlag(FLAGS_work_dir),
                               absl::GetFlag(FLAGS_eval_command),
                               absl::GetFlag(FLAGS_eval_timeout),
                               absl::GetFlag(FLAGS_synthetic_optimum),
                               absl::GetFlag(FLAGS_synthetic)};
  flags.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  flags.metrics_allow_remote = absl::GetFlag(FLAGS_metrics_allow_remote);
  flags.role = absl::GetFlag(FLAGS_role);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  absl::StatusOr<wxp::agent::AgentSetup> setup = wxp::agent::ResolveAgentSetup(flags, host);
  absl::StatusOr<wxp::agent::AgentSummary> summary =
      setup.ok() ? wxp::agent::RunAgentDaemon(*std::move(setup)) : setup.status();
  if (!summary.ok()) {
    std::cerr << "wxp-agent: " << summary.status().message() << std::endl;
    return 1;
  }
  return summary->swarm_done ? 0 : 3;
}
