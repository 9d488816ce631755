// Dispatch of `wxpctl <command> ...` to the command functions.
#include "absl/strings/str_join.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/remote.h"

namespace wxp::admin {
namespace {

constexpr char kHelp[] =
    "wxpctl: the WXP admin tool\n"
    "\n"
    "usage: wxpctl <command> [args] [flags]   (each command takes --help)\n"
    "\n"
    "commands:\n"
    "  adapter inspect PATH     schema, dtypes, parameter count, fingerprint and blob id of a\n"
    "                           PEFT directory or .safetensors file (--json for scripts)\n"
    "  merge --method M --out DIR ADAPTER...\n"
    "                           merge adapters with a baseline: linear, task_arithmetic, ties,\n"
    "                           dare, dare_ties, slerp\n"
    "  simulate [ADAPTER...]    run Model Swarms in-process on a synthetic utility\n"
    "  manifest inspect|eval PATH  a token swarm's export: experts, weights, scores\n"
    "  legal shards|pretrain|finetune|eval\n"
    "                           the built-in legal-text task: firm shards, base model, LoRA\n"
    "                           experts, scoring an adapter ({\"scores\": ...} JSON)\n"
    "\n"
    "certificates (local files):\n"
    "  certs init-ca --dir D    create a private CA (ca.crt, ca.key)\n"
    "  certs issue --ca D --role server|agent|admin|auditor --name N --out D2\n"
    "                           issue N.crt / N.key (0600) / ca.crt\n"
    "\n"
    "server administration (connection flags below; read commands take --output table|json):\n"
    "  swarm create --spec FILE [--template ADAPTER]\n"
    "                           create a swarm from a text-format wxp.v1.SwarmSpec\n"
    "  swarm list               every swarm with its state and progress\n"
    "  swarm status NAME        state, iteration, step, g / g_w, particles, g sparkline\n"
    "  swarm pause|resume|stop NAME\n"
    "  watch NAME [--interval S]  refresh the status until the swarm is FINISHED or STOPPED\n"
    "  particles NAME           owner, iteration, utility, best, restarts, last report\n"
    "  history NAME [--csv|--json] [--plot FILE.svg]\n"
    "                           g, g_w and mean utility per iteration\n"
    "  weights show NAME        the utility components and weights\n"
    "  weights set NAME C=W...  new utility weights (dynamic utility)\n"
    "  export NAME --out DIR [--force]\n"
    "                           write the global best as a verified PEFT directory\n"
    "  clients list             every client the server has seen\n"
    "  clients revoke ID        refuse a client's certificate identity from now on\n"
    "  clients unquarantine ID  serve a client an audit quarantined again (SPEC 12)\n"
    "\n"
    "connection flags (anywhere on the line; also from a config file, see --config):\n"
    "  --server HOST:PORT  --tls_cert F --tls_key F --tls_ca F [--tls_server_name N]\n"
    "  or --plaintext --identity NAME (a local --plaintext server only)\n"
    "  --config FILE (default $WXPCTL_CONFIG): key = value lines, e.g. server = host:7443\n";

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        TensorCommandRunner tensor_commands) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kHelp;
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0].size() > 1 && args[0][0] == '-') {
    // Global flags before the command: let the command parse them.
    const std::vector<std::string> hoisted = HoistGlobalFlags(args);
    if (hoisted != args) return Run(hoisted, out, err, tensor_commands);
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "adapter") {
    if (rest.empty() || rest[0] != "inspect") {
      return UsageError(
          err, "adapter",
          rest.empty() ? "missing sub-command: inspect" : "unknown sub-command '" + rest[0] + "'");
    }
    return AdapterInspect({rest.begin() + 1, rest.end()}, out, err);
  }
  if (args[0] == "merge" || args[0] == "simulate" || args[0] == "legal" || args[0] == "manifest") {
    return tensor_commands(args, out, err);
  }
  if (args[0] == "certs") return Certs(rest, out, err);
  if (args[0] == "swarm") return Swarm(rest, out, err);
  if (args[0] == "particles") return Particles(rest, out, err);
  if (args[0] == "watch") return Watch(rest, out, err);
  if (args[0] == "history") return History(rest, out, err);
  if (args[0] == "weights") return Weights(rest, out, err);
  if (args[0] == "export") return Export(rest, out, err);
  if (args[0] == "clients") return Clients(rest, out, err);
  err << "wxpctl: unknown command '" << args[0] << "'\n\n" << kHelp;
  return kExitUsage;
}

}  // namespace wxp::admin
