// The agent's one way of running a site's own program (SPEC 7): the external evaluator
// (candidate_evaluator.h) and the local-training command (train_command.h) both run through
// here, so time-outs, process groups, environment and stderr handling are the same for both.
#ifndef WXP_CLIENT_AGENT_EXTERNAL_COMMAND_H_
#define WXP_CLIENT_AGENT_EXTERNAL_COMMAND_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/schema.h"

namespace wxp::agent {

struct CommandLimits {
  absl::Duration timeout = absl::Minutes(10);
  absl::Duration kill_grace = absl::Seconds(5);  // SIGTERM to SIGKILL on timeout
};

// Runs `argv` (no shell; argv[0] looked up on PATH) in a process group of its own, with
// `env` added to (and overriding) the agent's environment, and returns its stdout. Its
// stderr goes to the agent's stderr line by line, each prefixed "<log_prefix>: ". Errors,
// each naming the command: DeadlineExceeded past `limits.timeout` (the whole group gets
// SIGTERM, then SIGKILL after kill_grace), Internal for a non-zero exit (with the end of its
// stderr) or a signal, InvalidArgument for over 64 MiB on stdout, NotFound if the program
// cannot be run. Whatever the outcome, nothing of its process group is left running.
absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::map<std::string, std::string>& env,
                                       const CommandLimits& limits, absl::string_view log_prefix);

// InvalidArgument naming `what` for an empty argv or an environment key that is empty or
// holds '='; and for a timeout that is not > 0.
absl::Status CheckCommand(absl::string_view what, const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env, absl::Duration timeout);

// Makes `dir` (replacing whatever was there) an ordinary PEFT directory holding the position
// at `position_path` as adapter_model.safetensors (hard-linked when possible: it can be
// large) and `adapter_config_json` as adapter_config.json (empty: InferLoraConfig(schema)).
absl::Status WritePeftCandidateDir(const std::string& position_path, const Schema& schema,
                                   const std::string& adapter_config_json, const std::string& dir);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_EXTERNAL_COMMAND_H_
