// The content-addressed blob store on disk (SPEC 5.3, 6): every blob is the bytes of one
// safetensors file named by its SHA-256. Uploads arrive in chunks, resumable by offset; a
// blob becomes visible only after its hash is verified, the file fsynced and renamed into
// place. Nothing half-written is ever readable as a blob.
//
// Layout under the root: blobs/<id[0:2]>/<id> for stored blobs, partial/<id> for uploads in
// progress (kept across restarts so they can resume).
//
// Thread-safe. One upload per id at a time: a second concurrent upload of the same id is
// refused with ABORTED (the client retries and resumes from the committed offset).
#ifndef WXP_SERVER_BLOBS_DISK_BLOBS_H_
#define WXP_SERVER_BLOBS_DISK_BLOBS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "server/coordinator/position_blobs.h"

namespace wxp::server {

class DiskBlobs : public PositionBlobs {
 public:
  struct Options {
    std::string root;
    uint64_t max_blob_bytes = 4ull << 30;  // uploads declaring more are refused
    // Other processes (wxp-server replicas, SPEC 6.1) write to `root` too: Recover then
    // leaves temporary files younger than its collect_before alone, as they may be another
    // process's write in progress.
    bool shared = false;
  };
  // Creates the directories if needed.
  static absl::StatusOr<std::unique_ptr<DiskBlobs>> Open(const Options& options);
  // Closes the files of uploads in progress (their bytes stay for a resume).
  ~DiskBlobs() override;

  // PositionBlobs.
  bool Has(const std::string& id) override;
  absl::StatusOr<std::string> ReadAll(const std::string& id) override;
  absl::StatusOr<std::string> Put(absl::string_view bytes) override;

  // Size of a stored blob; NotFound if absent.
  absl::StatusOr<uint64_t> Size(const std::string& id);
  // Up to `max_bytes` from `offset`; empty at the end. NotFound / OutOfRange.
  absl::StatusOr<std::string> Read(const std::string& id, uint64_t offset, size_t max_bytes);
  // The same into `out` (replacing its contents, reusing its capacity: a download reads
  // every chunk into one buffer).
  absl::Status ReadInto(const std::string& id, uint64_t offset, size_t max_bytes, std::string* out);

  // ---- uploads ----
  struct UploadState {
    uint64_t committed = 0;        // durable bytes of the partial upload
    bool already_present = false;  // the blob is stored: nothing to upload
  };
  // Starts or resumes an upload at `resume_from` and takes its per-id lease (released by
  // Finish/Abandon). A `resume_from` below the committed bytes restarts from there (the
  // client lost track; the bytes after it are dropped); above them it is FailedPrecondition.
  // InvalidArgument for a malformed id, ResourceExhausted over the size limit, Aborted if
  // another upload of the id is running.
  absl::StatusOr<UploadState> BeginUpload(const std::string& id, uint64_t total_size,
                                          uint64_t resume_from = 0);
  // Appends a chunk at `offset` (must equal the committed bytes) durably (fdatasync'ed
  // before it returns, so the offset a resume starts from is truthful after a crash).
  // FailedPrecondition for an out-of-order chunk, InvalidArgument past total_size,
  // Unavailable on a full disk (as for every write here: a retry passes once space is freed).
  absl::StatusOr<uint64_t> Append(const std::string& id, uint64_t offset, absl::string_view data);
  // Verifies size and SHA-256, then publishes the blob. On a mismatch the partial upload is
  // discarded and InvalidArgument returned. The digest is the one taken as the chunks were
  // appended (the resumed prefix's read back at BeginUpload); with `shared` it is taken
  // from the file, as another process may have written to the same partial upload.
  absl::Status Finish(const std::string& id);
  // Releases the lease without publishing (the partial bytes stay for a later resume).
  void Abandon(const std::string& id);
  // Durable bytes of an interrupted upload (0 if none), or the size if already stored.
  absl::StatusOr<UploadState> UploadOffset(const std::string& id);

  // ---- maintenance ----
  struct RecoverySummary {
    int removed_temporaries = 0;
    int removed_unreferenced = 0;
    int removed_corrupt = 0;
    int removed_stale_partials = 0;
    int kept_recent_unreferenced = 0;  // inside the grace period
    uint64_t bytes_freed = 0;
  };
  // Start-up clean-up and garbage collection: deletes stray temporary files, blobs whose
  // bytes no longer match their id, and — once last modified before `collect_before` —
  // blobs `is_referenced` rejects and abandoned partial uploads. The grace period exists
  // because a client may upload (an expert, a position) moments before the call that
  // references it. Uploads in progress are never touched.
  absl::StatusOr<RecoverySummary> Recover(
      const std::function<bool(const std::string& id)>& is_referenced,
      absl::Time collect_before = absl::InfiniteFuture());

 private:
  // An upload in progress, used only by the caller holding its lease (so without mu_
  // once found): the partial file stays open across chunks.
  struct Upload {
    uint64_t total = 0;
    int fd = -1;
    uint64_t committed = 0;  // bytes in the partial file, all appended through `fd`
    Sha256Hasher hasher;     // of those bytes (not used with options_.shared)
  };
  explicit DiskBlobs(Options options) : options_(std::move(options)) {}
  std::string BlobPath(const std::string& id) const;
  std::string PartialPath(const std::string& id) const;
  // The upload of `id` in progress; FailedPrecondition if none was begun.
  absl::StatusOr<Upload*> Active(const std::string& id);

  Options options_;
  absl::Mutex mu_;
  std::map<std::string, Upload> uploads_ ABSL_GUARDED_BY(mu_);  // active leases
};

}  // namespace wxp::server

#endif  // WXP_SERVER_BLOBS_DISK_BLOBS_H_
