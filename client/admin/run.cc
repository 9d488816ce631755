// Dispatch of `wxpctl <command> ...` to the command functions.
#include "absl/strings/str_join.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"

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
    "  legal shards|pretrain|finetune|eval\n"
    "                           the built-in legal-text task: firm shards, base model, LoRA\n"
    "                           experts, scoring an adapter ({\"scores\": ...} JSON)\n";

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kHelp;
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "adapter") {
    if (rest.empty() || rest[0] != "inspect") {
      return UsageError(err, "adapter",
                        rest.empty() ? "missing sub-command: inspect"
                                     : "unknown sub-command '" + rest[0] + "'");
    }
    return AdapterInspect({rest.begin() + 1, rest.end()}, out, err);
  }
  if (args[0] == "merge") return Merge(rest, out, err);
  if (args[0] == "simulate") return Simulate(rest, out, err);
  if (args[0] == "legal") return Legal(rest, out, err);
  err << "wxpctl: unknown command '" << args[0] << "'\n\n" << kHelp;
  return kExitUsage;
}

}  // namespace wxp::admin
