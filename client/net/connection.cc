#include "client/net/connection.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/backoff.h"
#include "common/grpc_status.h"
#include "common/leader_redirect.h"
#include "common/status_macros.h"
#include "common/transfer_tuning.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace wxp::client {

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options,
                                                             absl::Time now) {
  if (options.server_address.empty()) {
    return absl::InvalidArgumentError("no server address (host:port) given");
  }
  std::unique_ptr<Connection> c(new Connection(options));
  for (absl::string_view a : absl::StrSplit(options.server_address, ',', absl::SkipWhitespace())) {
    c->listed_.emplace_back(absl::StripAsciiWhitespace(a));
  }
  if (c->listed_.empty()) return absl::InvalidArgumentError("no server address (host:port) given");
  grpc::ChannelArguments& args = c->args_;
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
  // Blob downloads arrive on this side: the window and frame size of the transfer settings.
  for (const auto& [name, value] : TransferChannelArgs()) args.SetInt(name, value);
  TuneAllocatorForTransfers();
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
  c->creds_ = std::move(creds);
  {
    absl::MutexLock lock(&c->mu_);
    c->current_ = c->EndpointOf(c->listed_[0]);
  }
  return c;
}

size_t Connection::EndpointOf(const std::string& address) {
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (endpoints_[i]->address == address) return i;
  }
  auto e = std::make_unique<Endpoint>();
  e->address = address;
  // Channels connect lazily: one per address costs nothing until it is called.
  e->channel = grpc::CreateCustomChannel(address, creds_, args_);
  e->agent = wxp::v1::AgentService::NewStub(e->channel);
  e->admin = wxp::v1::AdminService::NewStub(e->channel);
  endpoints_.push_back(std::move(e));
  return endpoints_.size() - 1;
}

Connection::Endpoint& Connection::Current() {
  absl::MutexLock lock(&mu_);
  return *endpoints_[current_];
}

std::string Connection::current_address() { return Current().address; }

bool Connection::Failover(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (std::optional<wxp::v1::LeaderRedirect> r = LeaderRedirectOf(status);
      r && !r->leader_address().empty()) {
    current_ = EndpointOf(r->leader_address());
    return true;
  }
  if (!absl::IsUnavailable(status) && !absl::IsDeadlineExceeded(status)) return false;
  // Round robin over the listed addresses (a redirect target that went away is left for
  // the listed ones).
  if (listed_.size() < 2 && endpoints_[current_]->address == listed_[0]) return false;
  current_ = EndpointOf(listed_[next_listed_ % listed_.size()]);
  next_listed_ = (next_listed_ + 1) % listed_.size();
  return true;
}

grpc::Status Connection::CallWithFailover(const std::function<grpc::Status()>& call,
                                          int max_attempts) {
  RetryOptions r;
  r.max_attempts =
      max_attempts > 0 ? max_attempts : std::max<int>(3, 2 * static_cast<int>(listed_.size()));
  r.backoff.initial = absl::Milliseconds(200);
  r.backoff.max = absl::Seconds(2);
  grpc::Status last;
  RetryWithBackoff(r, [&]() -> absl::Status {
    last = call();
    const absl::Status s = FromGrpc(last);
    if (!s.ok()) Failover(s);
    return s;
  }).IgnoreError();
  return last;
}

std::unique_ptr<grpc::ClientContext> Connection::NewContext(absl::Duration deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (deadline <= absl::ZeroDuration()) deadline = options_.rpc_deadline;
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  if (options_.plaintext) AddPlaintextIdentity(*ctx, options_.identity, options_.role);
  return ctx;
}

}  // namespace wxp::client
