// A client's connection to wxp-server (agents and admins alike): one gRPC channel, secured
// with mutual TLS from `wxpctl certs` files or, against a local plaintext server, with the
// identity stated in metadata (common/tls_credentials.h makes both), plus the per-call settings
// every RPC needs (deadline, identity metadata).
//
// Thread-safe: stubs and NewContext may be used from any thread.
#ifndef WXP_CLIENT_NET_CONNECTION_H_
#define WXP_CLIENT_NET_CONNECTION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "common/tls_credentials.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::client {

struct ConnectionOptions {
  // host:port of wxp-server.
  std::string server_address;
  // Plaintext (local experiments): no TLS; `identity` and `role` go in metadata.
  bool plaintext = false;
  // TLS: this client's certificate and key, and the CA that signed the server.
  TlsFiles tls;
  // TLS: verify the server certificate against this name instead of the address's host.
  std::string tls_server_name;
  // Plaintext only: who this client says it is.
  std::string identity;
  Role role = Role::kAgent;
  // Deadline of each unary call.
  absl::Duration rpc_deadline = absl::Seconds(30);
  // gRPC shares one TCP connection among a process's channels to the same server; a load
  // generator simulating many agents in one process wants one each, as separate agents have.
  bool own_connection = false;
};

class Connection {
 public:
  // Builds the channel (it connects lazily, on the first call). InvalidArgument for a
  // missing address or TLS file, and the errors of ClientTlsCredentials for
  // unusable certificates (expired, wrong role, key mismatch, key readable by others).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const ConnectionOptions& options,
                                                          absl::Time now);

  wxp::v1::AgentService::Stub& agent() { return *agent_; }
  wxp::v1::AdminService::Stub& admin() { return *admin_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const ConnectionOptions& options() const { return options_; }

  // A context for one call: the unary deadline (or `deadline` if given) and, in plaintext
  // mode, the identity metadata.
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Duration deadline = absl::ZeroDuration()) const;

 private:
  explicit Connection(ConnectionOptions options) : options_(std::move(options)) {}
  ConnectionOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<wxp::v1::AgentService::Stub> agent_;
  std::unique_ptr<wxp::v1::AdminService::Stub> admin_;
};

}  // namespace wxp::client

#endif  // WXP_CLIENT_NET_CONNECTION_H_
