// The check every RPC passes first (SPEC 5.1): who is calling (from the authenticator),
// whether that role may call this RPC, and whether the client was revoked. It also records
// the client's last contact, at most once a minute per client so the hot path stays cheap;
// failing to update that record refuses only a client's first call, never a known client's.
//
// Thread-safe.
#ifndef WXP_SERVER_SERVICE_GATEKEEPER_H_
#define WXP_SERVER_SERVICE_GATEKEEPER_H_

#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/identity.h"
#include "grpcpp/server_context.h"
#include "server/store/swarm_store.h"

namespace wxp::server {

// Who is calling: the mTLS certificate's identity in production, a test double in tests.
// UNAUTHENTICATED when the peer has no usable identity.
using Authenticator = std::function<absl::StatusOr<Identity>(const grpc::ServerContextBase&)>;

class Gatekeeper {
 public:
  // `store` and `clock` are not owned.
  Gatekeeper(Authenticator authenticate, store::SwarmStore* store, Clock* clock)
      : authenticate_(std::move(authenticate)), store_(store), clock_(clock) {}

  // The caller if its role is one of `allowed` (RequireRole) and it is neither revoked nor
  // quarantined (SPEC 12);
  // otherwise PERMISSION_DENIED naming the client, its role and what `rpc` needs (or
  // UNAUTHENTICATED from the authenticator).
  absl::StatusOr<Identity> Admit(const grpc::ServerContextBase& ctx, absl::Span<const Role> allowed,
                                 const char* rpc);

 private:
  Authenticator authenticate_;
  store::SwarmStore* store_;
  Clock* clock_;
  absl::Mutex mu_;
  std::map<std::string, absl::Time> last_touch_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_GATEKEEPER_H_
