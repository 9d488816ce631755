// What every wxpctl command that talks to wxp-server shares: the global connection flags
// (kubectl/etcdctl style), the optional config file they can come from, opening the
// connection, proto JSON output and RPC errors that carry the server's message.
//
// Precedence: a flag on the command line, then the config file named by --config or by
// the WXPCTL_CONFIG environment variable, then the built-in default. The config file is
// "key = value" lines ('#' starts a comment) with the flags' names as keys:
//
//   server = wxp.vendor.example:7443
//   tls_cert = certs/ops.crt        # relative paths are relative to the config file
//   tls_key = certs/ops.key
//   tls_ca = certs/ca.crt
//   output = table
#ifndef WXP_CLIENT_ADMIN_REMOTE_H_
#define WXP_CLIENT_ADMIN_REMOTE_H_

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/admin/command_util.h"
#include "client/cli/args.h"
#include "client/net/connection.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/status.h"

namespace wxp::admin {

// --server, --tls-cert, --tls-key, --tls-ca, --tls-server-name, --plaintext, --identity,
// --config, --timeout.
const std::vector<cli::FlagSpec>& ConnectionFlags();

// Moves the connection flags written before the command ("wxpctl --server X swarm list")
// behind it, where the command's own parser sees them. Other words keep their order.
std::vector<std::string> HoistGlobalFlags(const std::vector<std::string>& args);

// Parses a config file's text into key -> value (keys with '-' spelled '_'), resolving the
// path-valued keys relative to `base_dir`. InvalidArgument naming the line for anything
// else than blank lines, comments and "key = value" with a known key.
absl::StatusOr<std::map<std::string, std::string>> ParseConfigText(const std::string& text,
                                                                   const std::string& base_dir);

// The connection settings from the flags, the config file (`file`, from ParseConfigText)
// and defaults. InvalidArgument for a missing --server, for TLS and plaintext settings
// mixed, and for plaintext without an identity.
absl::StatusOr<client::ConnectionOptions> ResolveConnectionOptions(
    const cli::ParsedArgs& args, const std::map<std::string, std::string>& file);

// A command that talks to the server, ready to call.
struct RemoteCommand {
  cli::ParsedArgs args;
  std::unique_ptr<client::Connection> conn;
  bool json = false;  // --output json
};

struct RemoteUsage {
  std::string command;  // "swarm status"
  std::string usage;    // "NAME [--output table|json]"
  size_t min_positional = 0;
  size_t max_positional = 0;
  bool has_output = false;  // a read command: takes --output table|json
};

// Parses `args` against `own_flags` plus the connection flags (and --output), checks the
// number of positional words, reads the config file and opens the connection. On --help,
// a usage error or a failure it prints what happened and returns nullopt with `*code` set
// (0, 2 or 1).
std::optional<RemoteCommand> OpenRemote(const std::vector<std::string>& args,
                                        std::vector<cli::FlagSpec> own_flags,
                                        const RemoteUsage& usage, std::ostream& out,
                                        std::ostream& err, int* code);

// A refused or failed call as one line: "<what>: <server message> (<CODE>)", plus a hint
// for UNAVAILABLE (nothing listening, or the TLS handshake refused).
absl::Status RpcError(const grpc::Status& status, const std::string& what);
// The same for a failure client/net already converted (blob transfers).
absl::Status RpcError(const absl::Status& status, const std::string& what);

// The message as proto3 JSON with the .proto field names and every field printed
// (wxp::ProtoJson, shared with the server's dashboard API).
std::string ProtoJson(const google::protobuf::Message& message);

// The end of most commands: a refused call as "wxpctl: <what>: <server message>" (exit 1),
// else the answer as JSON with --output json or as `render(answer)` for people (exit 0).
template <typename Message, typename Render>
int Reply(const RemoteCommand& rc, const grpc::Status& status, const std::string& what,
          const Message& answer, Render render, std::ostream& out, std::ostream& err) {
  if (!status.ok()) return Fail(err, RpcError(status, what));
  if (rc.json) {
    out << ProtoJson(answer) << "\n";
  } else {
    out << render(answer);
  }
  return kExitOk;
}

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_REMOTE_H_
