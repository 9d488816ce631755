// The wxpctl commands that need LibTorch: `merge` and `simulate` decode LoRA products, `legal`
// trains and scores the built-in model. Linked only into wxpctl-tensors and tests, so the
// other commands start without loading LibTorch.
#ifndef WXP_CLIENT_ADMIN_TENSOR_COMMANDS_H_
#define WXP_CLIENT_ADMIN_TENSOR_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace wxp::admin {

// A TensorCommandRunner (commands.h) that runs merge, simulate and legal in this process.
int RunTensorCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The individual commands; `args` are the words after the command name.
int Merge(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int Simulate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// `legal shards|pretrain|finetune|eval ...` (client/admin/legal_commands.cc).
int Legal(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// `wxpctl manifest inspect|eval` (manifest_commands.cc): a token swarm's export.
int Manifest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_TENSOR_COMMANDS_H_
