// wxp-agent: the on-prem daemon. Reads a text-format AgentConfig (--config) and/or flags,
// connects to wxp-server, and runs its particles until the swarm is done. SIGTERM/SIGINT
// stop it at the next step boundary; its state stays resumable.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/agent/agent.h"
#include "client/agent/evaluator_factory.h"
#include "client/net/connection.h"
#include "common/file_util.h"
#include "common/shutdown_signals.h"
#include "common/text_proto.h"
#include "proto/agent_config.pb.h"

ABSL_FLAG(std::string, config, "", "text-format wxp.v1.AgentConfig; flags override it");
ABSL_FLAG(std::string, server, "", "host:port of wxp-server");
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
ABSL_FLAG(bool, synthetic, false, "use the synthetic evaluator (with --synthetic_optimum)");

namespace {

int Fail(const std::string& message) {
  std::cerr << "wxp-agent: " << message << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "wxp-agent --config=FILE | --server=HOST:PORT --swarm=NAME --expert=DIR[,DIR] "
      "--work_dir=DIR (--tls_cert/--tls_key/--tls_ca | --plaintext) "
      "(--eval_command=CMD | --synthetic)");
  absl::ParseCommandLine(argc, argv);
  wxp::v1::AgentConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    absl::StatusOr<std::string> text = wxp::ReadFile(path);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    if (absl::Status parsed = wxp::ParseTextProto(*text, path, &config); !parsed.ok()) {
      return Fail(absl::StrCat(parsed.message(), " (see proto/agent_config.proto)"));
    }
    auto resolve = [&path](const std::string& p) { return wxp::ResolveRelativeTo(path, p); };
    config.mutable_tls()->set_cert(resolve(config.tls().cert()));
    config.mutable_tls()->set_key(resolve(config.tls().key()));
    config.mutable_tls()->set_ca(resolve(config.tls().ca()));
    for (std::string& e : *config.mutable_expert_paths()) e = resolve(e);
    config.set_work_dir(resolve(config.work_dir()));
    if (config.has_synthetic()) {
      config.mutable_synthetic()->set_optimum_path(resolve(config.synthetic().optimum_path()));
    }
    if (config.has_builtin_legal_text()) {
      config.mutable_builtin_legal_text()->set_corpus_dir(
          resolve(config.builtin_legal_text().corpus_dir()));
      config.mutable_builtin_legal_text()->set_base_dir(
          resolve(config.builtin_legal_text().base_dir()));
    }
  }
  auto set = [](const std::string& flag, auto setter) {
    if (!flag.empty()) setter(flag);
  };
  set(absl::GetFlag(FLAGS_server), [&](auto v) { config.set_server_address(v); });
  set(absl::GetFlag(FLAGS_tls_cert), [&](auto v) { config.mutable_tls()->set_cert(v); });
  set(absl::GetFlag(FLAGS_tls_key), [&](auto v) { config.mutable_tls()->set_key(v); });
  set(absl::GetFlag(FLAGS_tls_ca), [&](auto v) { config.mutable_tls()->set_ca(v); });
  set(absl::GetFlag(FLAGS_tls_server_name), [&](auto v) { config.set_tls_server_name(v); });
  set(absl::GetFlag(FLAGS_identity), [&](auto v) { config.set_plaintext_identity(v); });
  set(absl::GetFlag(FLAGS_swarm), [&](auto v) { config.set_swarm(v); });
  set(absl::GetFlag(FLAGS_work_dir), [&](auto v) { config.set_work_dir(v); });
  if (absl::GetFlag(FLAGS_plaintext)) config.set_plaintext(true);
  if (!absl::GetFlag(FLAGS_expert).empty()) {
    config.clear_expert_paths();
    for (const std::string& e : absl::GetFlag(FLAGS_expert)) config.add_expert_paths(e);
  }
  if (absl::GetFlag(FLAGS_capacity) != 0) config.set_capacity(absl::GetFlag(FLAGS_capacity));
  if (const std::string cmd = absl::GetFlag(FLAGS_eval_command); !cmd.empty()) {
    auto* e = config.mutable_external_command();
    e->clear_argv();
    for (absl::string_view a : absl::StrSplit(cmd, ' ', absl::SkipEmpty()))
      e->add_argv(std::string(a));
    if (absl::GetFlag(FLAGS_eval_timeout) > 0)
      e->set_timeout_seconds(absl::GetFlag(FLAGS_eval_timeout));
  }
  if (absl::GetFlag(FLAGS_synthetic) || !absl::GetFlag(FLAGS_synthetic_optimum).empty()) {
    config.mutable_synthetic()->set_optimum_path(absl::GetFlag(FLAGS_synthetic_optimum));
  }

  if (config.server_address().empty())
    return Fail("no server address (--server or server_address)");
  if (config.swarm().empty()) return Fail("no swarm (--swarm or swarm)");
  if (config.work_dir().empty()) return Fail("no work directory (--work_dir or work_dir)");
  if (config.capacity() < 0) return Fail("capacity must be >= 1");
  if (config.reconnect_initial_seconds() < 0 || config.reconnect_max_seconds() < 0 ||
      config.rpc_deadline_seconds() < 0 || config.heartbeat_interval_seconds() < 0) {
    return Fail("reconnect, deadline and heartbeat durations must be > 0");
  }

  wxp::client::ConnectionOptions copts;
  copts.server_address = config.server_address();
  copts.plaintext = config.plaintext();
  copts.tls.cert_file = config.tls().cert();
  copts.tls.key_file = config.tls().key();
  copts.tls.ca_file = config.tls().ca();
  copts.tls_server_name = config.tls_server_name();
  copts.role = wxp::Role::kAgent;
  copts.identity = config.plaintext_identity();
  if (copts.identity.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    copts.identity = host;
  }
  if (config.rpc_deadline_seconds() > 0)
    copts.rpc_deadline = absl::Seconds(config.rpc_deadline_seconds());
  absl::StatusOr<std::unique_ptr<wxp::client::Connection>> conn =
      wxp::client::Connection::Open(copts, absl::Now());
  if (!conn.ok()) return Fail(std::string(conn.status().message()));

  absl::StatusOr<std::unique_ptr<wxp::agent::CandidateEvaluator>> evaluator =
      wxp::agent::MakeCandidateEvaluator(config, config.work_dir());
  if (!evaluator.ok()) return Fail(std::string(evaluator.status().message()));

  wxp::agent::AgentOptions o;
  o.swarm = config.swarm();
  o.expert_paths.assign(config.expert_paths().begin(), config.expert_paths().end());
  o.capacity = config.capacity() > 0 ? config.capacity() : 1;
  o.work_dir = config.work_dir();
  if (config.reconnect_initial_seconds() > 0)
    o.backoff_initial = absl::Seconds(config.reconnect_initial_seconds());
  if (config.reconnect_max_seconds() > 0)
    o.backoff_max = absl::Seconds(config.reconnect_max_seconds());
  if (config.heartbeat_interval_seconds() > 0) {
    o.heartbeat_interval = absl::Seconds(config.heartbeat_interval_seconds());
  }
  if (o.backoff_max < o.backoff_initial) o.backoff_max = o.backoff_initial;

  sigset_t signals = wxp::BlockShutdownSignals();

  absl::StatusOr<std::unique_ptr<wxp::agent::Agent>> agent =
      wxp::agent::Agent::Create(std::move(o), conn->get(), std::move(*evaluator));
  if (!agent.ok()) return Fail(std::string(agent.status().message()));
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGTERM || sig == SIGINT) {
      std::cerr << "wxp-agent: stopping on " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                << " (state is kept; start again to resume)" << std::endl;
      (*agent)->Stop();
    }
  });
  signal_thread.detach();
  absl::StatusOr<wxp::agent::AgentSummary> summary = (*agent)->Run();
  if (!summary.ok()) return Fail(std::string(summary.status().message()));
  return summary->swarm_done ? 0 : 3;
}
