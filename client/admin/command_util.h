// Shared plumbing of wxpctl commands: usage handling and error reporting in one style.
#ifndef WXP_CLIENT_ADMIN_COMMAND_UTIL_H_
#define WXP_CLIENT_ADMIN_COMMAND_UTIL_H_

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/args.h"

namespace wxp::admin {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints "wxpctl: <message>" on one line and returns kExitFailure.
int Fail(std::ostream& err, const absl::Status& status);
// Prints "wxpctl: <message>" and a hint to run with --help; returns kExitUsage.
int UsageError(std::ostream& err, const std::string& command, const std::string& message);

// Parses a command's args. On --help prints `usage` plus the flags to `out` and sets
// `*exit_code` to 0; on a parse error prints it and sets kExitUsage. Returns nullopt then.
std::optional<cli::ParsedArgs> ParseOrExit(const std::vector<std::string>& args,
                                           const std::vector<cli::FlagSpec>& flags,
                                           const std::string& command, const std::string& usage,
                                           std::ostream& out, std::ostream& err, int* exit_code);

// A command function: the words after its name, the output streams, the exit status.
using CommandFn = std::function<int(const std::vector<std::string>&, std::ostream&, std::ostream&)>;

// Runs the sub-command of `group` named by args[0] ("swarm list" -> "list") with the rest
// of the words; a missing or unknown sub-command is a usage error listing the valid ones.
int DispatchSubcommand(const std::string& group, const std::vector<std::string>& args,
                       const std::vector<std::pair<std::string, CommandFn>>& subcommands,
                       std::ostream& out, std::ostream& err);

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_COMMAND_UTIL_H_
