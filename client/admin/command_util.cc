#include "client/admin/command_util.h"

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
    out << "usage: wxpctl " << command << " " << usage << "\n\nflags:\n"
        << cli::FlagsHelp(flags);
    *exit_code = kExitOk;
  } else {
    *exit_code = UsageError(err, command, std::string(parsed.status().message()));
  }
  return std::nullopt;
}

}  // namespace wxp::admin
