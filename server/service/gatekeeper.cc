#include "server/service/gatekeeper.h"

#include "absl/strings/str_cat.h"

namespace wxp::server {

absl::StatusOr<Identity> Gatekeeper::Admit(const grpc::ServerContextBase& ctx,
                                           absl::Span<const Role> allowed, const char* rpc) {
  absl::StatusOr<Identity> caller = authenticate_(ctx);
  if (!caller.ok()) return caller.status();
  if (absl::Status s = RequireRole(*caller, allowed, rpc); !s.ok()) return s;
  absl::StatusOr<store::ClientRecord> known = store_->GetClient(caller->name);
  if (known.ok() && known->revoked) {
    return absl::PermissionDeniedError(
        absl::StrCat("client '", caller->name, "' has been revoked"));
  }
  if (known.ok() && known->quarantined) {
    return absl::PermissionDeniedError(
        absl::StrCat("client '", caller->name, "' is quarantined after ", known->strikes,
                     " disputed audits of its scores; an admin can lift it with `wxpctl clients "
                     "unquarantine ",
                     caller->name, "`"));
  }
  const absl::Time now = clock_->Now();
  bool touch = !known.ok();
  {
    absl::MutexLock lock(&mu_);
    auto it = last_touch_.find(caller->name);
    if (it == last_touch_.end() || now - it->second >= absl::Minutes(1)) {
      touch = true;
      last_touch_[caller->name] = now;
    }
  }
  if (touch) {
    absl::Status s = store_->TouchClient(*caller, absl::ToUnixMillis(now));
    // A client on record only misses a last-contact update (e.g. the disk is full): its call
    // goes on, so reads keep working and the write it came for gets the store's own refusal.
    // A first contact must be recorded, or it could not be listed or revoked.
    if (!s.ok() && !known.ok()) return s;
  }
  return caller;
}

}  // namespace wxp::server
