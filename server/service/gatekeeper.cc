#include "server/service/gatekeeper.h"

#include "absl/strings/str_cat.h"

namespace wxp::server {

absl::StatusOr<Caller> Gatekeeper::AdmitAny(const grpc::ServerContext& ctx, const char* rpc) {
  return Admit(ctx, "", rpc);
}

absl::StatusOr<Caller> Gatekeeper::Admit(const grpc::ServerContext& ctx, const std::string& role,
                                         const char* rpc) {
  absl::StatusOr<Caller> caller = authenticate_(ctx);
  if (!caller.ok()) return caller.status();
  const bool known_role = caller->role == "agent" || caller->role == "admin";
  if (role.empty() ? !known_role : caller->role != role) {
    return absl::PermissionDeniedError(absl::StrCat(
        "client '", caller->identity, "' has role ", caller->role.empty() ? "none" : caller->role,
        "; ", rpc, " needs role ", role.empty() ? "agent or admin" : role));
  }
  absl::StatusOr<store::ClientRecord> known = store_->GetClient(caller->identity);
  if (known.ok() && known->revoked) {
    return absl::PermissionDeniedError(
        absl::StrCat("client '", caller->identity, "' has been revoked"));
  }
  const absl::Time now = clock_->Now();
  bool touch = !known.ok();
  {
    absl::MutexLock lock(&mu_);
    auto it = last_touch_.find(caller->identity);
    if (it == last_touch_.end() || now - it->second >= absl::Minutes(1)) {
      touch = true;
      last_touch_[caller->identity] = now;
    }
  }
  if (touch) {
    absl::Status s = store_->TouchClient(caller->identity, caller->role, absl::ToUnixMillis(now));
    // A client on record only misses a last-contact update (e.g. the disk is full): its call
    // goes on, so reads keep working and the write it came for gets the store's own refusal.
    // A first contact must be recorded, or it could not be listed or revoked.
    if (!s.ok() && !known.ok()) return s;
  }
  return caller;
}

}  // namespace wxp::server
