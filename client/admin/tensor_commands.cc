#include "client/admin/tensor_commands.h"

#include "client/admin/command_util.h"

namespace wxp::admin {

int RunTensorCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (!args.empty() && args[0] == "merge") return Merge(rest, out, err);
  if (!args.empty() && args[0] == "simulate") return Simulate(rest, out, err);
  if (!args.empty() && args[0] == "legal") return Legal(rest, out, err);
  if (!args.empty() && args[0] == "manifest") return Manifest(rest, out, err);
  err << "wxpctl: '" << (args.empty() ? std::string() : args[0])
      << "' is not a LibTorch command (merge, simulate, legal, manifest)\n";
  return kExitUsage;
}

}  // namespace wxp::admin
