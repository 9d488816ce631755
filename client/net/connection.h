// A client's connection to wxp-server (agents and admins alike): one gRPC channel, secured
// with mutual TLS from `wxpctl certs` files or, against a local plaintext server, with the
// identity stated in metadata (common/tls_credentials.h makes both), plus the per-call settings
// every RPC needs (deadline, identity metadata).
//
// Several replicas (SPEC 6.1): the address may list several servers, "a:7443,b:7443". Calls
// go to one of them at a time (the current one); Failover() moves on after a failed call:
// to the leader a LeaderRedirect names (proto/wxp.proto), or to the next listed address when
// the current one is unreachable. The decision is made from the status code and its typed
// detail, never from the message text.
//
// Thread-safe: stubs and NewContext may be used from any thread. A stub reference stays
// valid for the connection's life, also after a failover (it keeps calling the server it
// was taken for: take it anew for each call).
#ifndef WXP_CLIENT_NET_CONNECTION_H_
#define WXP_CLIENT_NET_CONNECTION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/certs.h"
#include "common/tls_credentials.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::client {

struct ConnectionOptions {
  // host:port of wxp-server, or several replicas' separated by commas.
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

  // The current server's stubs and channel.
  wxp::v1::AgentService::Stub& agent() { return *Current().agent; }
  wxp::v1::AdminService::Stub& admin() { return *Current().admin; }
  std::shared_ptr<grpc::Channel> channel() { return Current().channel; }
  const ConnectionOptions& options() const { return options_; }
  // host:port calls go to now.
  std::string current_address();

  // After a call failed with `status`: follows a LeaderRedirect it carries (true), or, for
  // UNAVAILABLE or DEADLINE_EXCEEDED without one, moves to the next listed address (true
  // if there is another). False, and nothing changes, otherwise. The caller retries with
  // its backoff either way.
  bool Failover(const absl::Status& status);

  // Runs `call` (one RPC through agent() / admin(), taken inside it) until it succeeds or
  // fails for good (common/retry.h), calling Failover() after each failure and backing off
  // between attempts (common/backoff.h): at most `max_attempts` tries (0: two per listed
  // address, and at least three). For one-shot commands (wxpctl); daemons have their own
  // retry loops and call Failover() from them.
  grpc::Status CallWithFailover(const std::function<grpc::Status()>& call, int max_attempts = 0);

  // A context for one call: the unary deadline (or `deadline` if given) and, in plaintext
  // mode, the identity metadata.
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Duration deadline = absl::ZeroDuration()) const;

 private:
  struct Endpoint {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<wxp::v1::AgentService::Stub> agent;
    std::unique_ptr<wxp::v1::AdminService::Stub> admin;
  };
  explicit Connection(ConnectionOptions options) : options_(std::move(options)) {}
  Endpoint& Current();
  // The endpoint of `address`, created on first use (endpoints are never destroyed).
  size_t EndpointOf(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ConnectionOptions options_;
  std::vector<std::string> listed_;  // the configured addresses, in order
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  grpc::ChannelArguments args_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;      // index into endpoints_
  size_t next_listed_ ABSL_GUARDED_BY(mu_) = 1;  // where the next unreachable failover goes
};

}  // namespace wxp::client

#endif  // WXP_CLIENT_NET_CONNECTION_H_
