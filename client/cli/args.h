// A small command-line parser for wxpctl's sub-commands ("wxpctl adapter inspect PATH
// --json"). Each command declares its flags; the parser accepts --name=value, --name value,
// bare --flag for booleans, "--" to end flags, and rejects unknown or malformed flags with
// a message naming them. absl::flags is process-global, which suits a daemon's main() but not
// a multi-command tool whose commands take different flags.
#ifndef WXP_CLIENT_CLI_ARGS_H_
#define WXP_CLIENT_CLI_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace wxp::cli {

struct FlagSpec {
  std::string name;  // without dashes
  std::string help;
  bool is_bool = false;
  std::string default_value;  // shown in help; empty means no default
};

class ParsedArgs {
 public:
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // The last value given, or the declared default, or "".
  std::string Get(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  // InvalidArgument naming the flag if the value is not a number.
  absl::StatusOr<double> GetDouble(const std::string& name) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  // Comma-separated numbers ("0.5,1,2"); empty vector when the flag is absent.
  absl::StatusOr<std::vector<double>> GetDoubleList(const std::string& name) const;
  // Every value of a repeatable flag in command-line order ("--dns a --dns b,c" gives
  // a, b, c: commas separate values too); empty when the flag is absent.
  std::vector<std::string> GetAll(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>&,
                                              const std::vector<FlagSpec>&);
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> all_values_;
  std::map<std::string, std::string> defaults_;
  std::vector<std::string> positional_;
};

// Parses `args` (the words after the command name) against `flags`. "-h"/"--help" yields
// a NotFound status whose message is empty, so the caller can print usage and exit 0.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& flags);

// "  --name=DEFAULT  help" lines for a usage message.
std::string FlagsHelp(const std::vector<FlagSpec>& flags);

}  // namespace wxp::cli

#endif  // WXP_CLIENT_CLI_ARGS_H_
