#include "client/net/connection.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace wxp::client {

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options,
                                                             absl::Time now) {
  if (options.server_address.empty()) {
    return absl::InvalidArgumentError("no server address (host:port) given");
  }
  std::unique_ptr<Connection> c(new Connection(options));
  grpc::ChannelArguments args;
  // Blobs stream in 1 MiB chunks; allow headroom for the envelope.
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  // Reconnect quickly after a server restart: the agent's own backoff decides how often
  // calls are retried, the channel should not add minutes of its own.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // Despite its name, gRPC uses this as the minimum time a connection attempt may take
  // (TCP, TLS and the HTTP/2 preface). It once was 100 ms: a busy server or a long round
  // trip then failed every first attempt (200 agents connecting at once all did).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20000);
  if (options.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (options.plaintext && options.identity.empty()) {
    return absl::InvalidArgumentError("plaintext mode needs an identity to send");
  }
  if (!options.plaintext && !options.tls.complete()) {
    return absl::InvalidArgumentError(
        "TLS needs a certificate, a key and a CA file (--tls_cert, --tls_key, --tls_ca), "
        "or plaintext mode against a local plaintext server");
  }
  const Security security =
      options.plaintext ? Security::Plaintext() : Security::MutualTls(options.tls);
  WXP_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> creds,
                       security.ChannelCredentials(now));
  if (!options.plaintext && !options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  c->channel_ = grpc::CreateCustomChannel(options.server_address, creds, args);
  c->agent_ = wxp::v1::AgentService::NewStub(c->channel_);
  c->admin_ = wxp::v1::AdminService::NewStub(c->channel_);
  return c;
}

std::unique_ptr<grpc::ClientContext> Connection::NewContext(absl::Duration deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (deadline <= absl::ZeroDuration()) deadline = options_.rpc_deadline;
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  if (options_.plaintext) AddPlaintextIdentity(*ctx, options_.identity, options_.role);
  return ctx;
}

}  // namespace wxp::client
