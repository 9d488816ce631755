// wxp-agent's local blob cache: one directory of content-addressed blobs (named by their
// SHA-256 blob id) plus the particles' velocity files, so a blob is downloaded once however
// many particles use it, and a restarted agent finds what it had.
//
// What may be deleted is decided by the caller, who knows which blobs the particles still
// refer to: CollectGarbage keeps those, the few most recently used blobs (a neighbour's
// position is often needed again next iteration) and partial downloads (they resume).
//
// Not thread-safe: the agent's loop owns it.
#ifndef WXP_CLIENT_AGENT_BLOB_CACHE_H_
#define WXP_CLIENT_AGENT_BLOB_CACHE_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wxp::agent {

class BlobCache {
 public:
  // Uses (creating it if needed) the directory `dir`.
  static absl::StatusOr<BlobCache> Open(std::string dir);

  const std::string& dir() const { return dir_; }
  // Where blob or velocity file `name` lives (whether or not it is there).
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  bool Has(const std::string& name) const;

  // Makes `file` (outside the cache) available as `name` without copying if the file system
  // allows (a hard link), else as a copy. A present `name` is left as it is.
  absl::Status AddLocalFile(const std::string& file, const std::string& name);

  // Records that `name` was just used; the `keep_recent` most recently used names survive
  // CollectGarbage even when nothing refers to them.
  void Touch(const std::string& name, size_t keep_recent);

  // Removes every file that is neither in `referenced`, nor recently used, nor a partial
  // download. Failures to remove are ignored (the next collection tries again).
  void CollectGarbage(const std::set<std::string>& referenced);

 private:
  explicit BlobCache(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
  std::vector<std::string> recent_;  // newest last
};

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_BLOB_CACHE_H_
