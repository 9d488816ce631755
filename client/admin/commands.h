// wxpctl's commands as a library: main() only forwards argv here, and tests call the same
// entry point in-process. Each command writes its normal output to `out`, errors (one line,
// starting "wxpctl: ") to `err`, and returns the process exit status: 0 on success, 1 when the
// work failed (bad input file, server error), 2 on a usage error.
#ifndef WXP_CLIENT_ADMIN_COMMANDS_H_
#define WXP_CLIENT_ADMIN_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace wxp::admin {

// Runs one of the commands that need LibTorch (merge, simulate, legal); `args` start with the
// command's name. They live apart (tensor_commands.h) because loading LibTorch costs about a
// second of CPU per process: wxpctl hands them to the wxpctl-tensors binary
// (ExecTensorCommand, tensor_exec.h), wxpctl-tensors and the tests run them in-process
// (RunTensorCommand).
using TensorCommandRunner = int (*)(const std::vector<std::string>& args, std::ostream& out,
                                    std::ostream& err);

// `args` excludes the program name: {"adapter", "inspect", "DIR", "--json"}.
int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        TensorCommandRunner tensor_commands);

// The individual commands; `args` are the words after the command name.
int AdapterInspect(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// Commands that talk to wxp-server's AdminService (flags in remote.h).
int Swarm(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int Particles(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int Watch(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int History(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int Weights(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int Export(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int Clients(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// Local: the CA and certificates.
int Certs(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_COMMANDS_H_
