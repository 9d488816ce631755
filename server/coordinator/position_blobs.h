// What the coordinator needs from the blob store: presence, whole-blob reads (experts, for
// crossover) and writes (crossover children). The production implementation wraps the
// on-disk content-addressed store; tests use MemoryBlobs.
#ifndef WXP_SERVER_COORDINATOR_POSITION_BLOBS_H_
#define WXP_SERVER_COORDINATOR_POSITION_BLOBS_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/sha256.h"

namespace wxp::server {

class PositionBlobs {
 public:
  virtual ~PositionBlobs() = default;
  // True once the blob is completely and durably stored. Thread-safe.
  virtual bool Has(const std::string& id) = 0;
  // The whole blob; NotFound if absent. Thread-safe.
  virtual absl::StatusOr<std::string> ReadAll(const std::string& id) = 0;
  // Stores `bytes` durably under their SHA-256 and returns the id. Thread-safe.
  virtual absl::StatusOr<std::string> Put(absl::string_view bytes) = 0;
};

// In-memory blobs for tests. Thread-safe.
class MemoryBlobs : public PositionBlobs {
 public:
  bool Has(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    return blobs_.count(id) > 0;
  }
  absl::StatusOr<std::string> ReadAll(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    auto it = blobs_.find(id);
    if (it == blobs_.end()) return absl::NotFoundError("no blob " + id);
    return it->second;
  }
  absl::StatusOr<std::string> Put(absl::string_view bytes) override {
    std::string id = Sha256Hex(bytes);
    absl::MutexLock lock(&mu_);
    blobs_[id] = std::string(bytes);
    return id;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return blobs_.size();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wxp::server

#endif  // WXP_SERVER_COORDINATOR_POSITION_BLOBS_H_
