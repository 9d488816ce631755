#include "server/service/stream_limiter.h"

#include "absl/strings/str_cat.h"

namespace wxp::server {

absl::StatusOr<StreamLimiter::Slot> StreamLimiter::Acquire(absl::string_view rpc) {
  if (open_.fetch_add(1) >= max_) {
    open_.fetch_sub(1);
    return absl::UnavailableError(absl::StrCat(
        rpc, " refused: the server already has ", max_,
        " blob streams open (ServerLimits.max_concurrent_streams); retry with backoff"));
  }
  return Slot(this);
}

absl::StatusOr<std::optional<StreamLimiter::Slot>> AcquireStream(StreamLimiter* limiter,
                                                                 absl::string_view rpc) {
  if (limiter == nullptr) return std::nullopt;
  absl::StatusOr<StreamLimiter::Slot> slot = limiter->Acquire(rpc);
  if (!slot.ok()) return slot.status();
  return std::optional<StreamLimiter::Slot>(*std::move(slot));
}

}  // namespace wxp::server
