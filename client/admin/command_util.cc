#include "client/admin/command_util.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace wxp::admin {

int Fail(std::ostream& err, const absl::Status& status) {
  err << "wxpctl: " << status.message() << "\n";
  return kExitFailure;
}

int UsageError(std::ostream& err, const std::string& command, const std::string& message) {
  err << "wxpctl: " << message << " (see 'wxpctl " << command << " --help')\n";
  return kExitUsage;
}

std::optional<cli::ParsedArgs> ParseOrExit(const std::vector<std::string>& args,
                                           const std::vector<cli::FlagSpec>& flags,
                                           const std::string& command, const std::string& usage,
                                           std::ostream& out, std::ostream& err, int* exit_code) {
  absl::StatusOr<cli::ParsedArgs> parsed = cli::ParseArgs(args, flags);
  if (parsed.ok()) return *std::move(parsed);
  if (parsed.status().code() == absl::StatusCode::kNotFound) {
    out << "usage: wxpctl " << command << " " << usage << "\n\nflags:\n" << cli::FlagsHelp(flags);
    *exit_code = kExitOk;
  } else {
    *exit_code = UsageError(err, command, std::string(parsed.status().message()));
  }
  return std::nullopt;
}

int DispatchSubcommand(const std::string& group, const std::vector<std::string>& args,
                       const std::vector<std::pair<std::string, CommandFn>>& subcommands,
                       std::ostream& out, std::ostream& err) {
  std::string names;
  for (const auto& [name, fn] : subcommands) {
    if (!args.empty() && args[0] == name) return fn({args.begin() + 1, args.end()}, out, err);
    absl::StrAppend(&names, names.empty() ? "" : ", ", name);
  }
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
    out << "usage: wxpctl " << group << " " << absl::StrJoin(absl::StrSplit(names, ", "), "|")
        << " ...  (each takes --help)\n";
    return kExitOk;
  }
  return UsageError(err, group,
                    args.empty()
                        ? absl::StrCat("missing sub-command: one of ", names)
                        : absl::StrCat("unknown sub-command '", args[0], "' (one of ", names, ")"));
}

}  // namespace wxp::admin
