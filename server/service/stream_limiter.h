// The server-wide cap on open blob streams (ServerLimits.max_concurrent_streams): every
// UploadBlob, DownloadBlob and ExportBest call holds a slot while it runs, whichever
// connection it came on, and a call that finds every slot taken is refused with
// UNAVAILABLE: a busy server, which clients retry with backoff (RESOURCE_EXHAUSTED is kept for
// limits of the request itself, which a retry cannot pass). gRPC's own stream limit counts per
// connection, so it cannot express this.
//
// Thread-safe.
#ifndef WXP_SERVER_SERVICE_STREAM_LIMITER_H_
#define WXP_SERVER_SERVICE_STREAM_LIMITER_H_

#include <atomic>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wxp::server {

class StreamLimiter {
 public:
  // A held slot; released when destroyed. Movable, not copyable.
  class Slot {
   public:
    Slot(Slot&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
    Slot& operator=(Slot&&) = delete;
    Slot(const Slot&) = delete;
    ~Slot() {
      if (owner_ != nullptr) owner_->open_.fetch_sub(1);
    }

   private:
    friend class StreamLimiter;
    explicit Slot(StreamLimiter* owner) : owner_(owner) {}
    StreamLimiter* owner_;
  };

  // At most `max_streams` (>= 1) slots are held at once.
  explicit StreamLimiter(int max_streams) : max_(max_streams) {}
  StreamLimiter(const StreamLimiter&) = delete;
  StreamLimiter& operator=(const StreamLimiter&) = delete;

  // A slot for a call of `rpc`, or UNAVAILABLE naming the limit when all are held.
  absl::StatusOr<Slot> Acquire(absl::string_view rpc);

  // Slots held right now.
  int open() const { return open_.load(); }

 private:
  const int max_;
  std::atomic<int> open_{0};
};

// A slot of `limiter` for `rpc`, or nothing to hold when `limiter` is null (no limit).
absl::StatusOr<std::optional<StreamLimiter::Slot>> AcquireStream(StreamLimiter* limiter,
                                                                 absl::string_view rpc);

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_STREAM_LIMITER_H_
