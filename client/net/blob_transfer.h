// Moving blobs (adapters in safetensors form) between a client and wxp-server: streamed
// from and to files in 1 MiB chunks, so memory stays flat whatever the adapter size;
// uploads resume where the server's durable prefix ends; downloads resume from a local
// partial file and are verified against their content address before they become visible.
#ifndef WXP_CLIENT_NET_BLOB_TRANSFER_H_
#define WXP_CLIENT_NET_BLOB_TRANSFER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "client/net/connection.h"

namespace wxp::client {

struct TransferResult {
  std::string blob_id;
  uint64_t total_bytes = 0;
  // Payload bytes that crossed the wire in this call (0 when the server already had it).
  uint64_t bytes_moved = 0;
  // Upload: the server already held the whole blob.
  bool already_present = false;
};

inline constexpr uint64_t kChunkBytes = 1 << 20;

// Uploads the file at `path`, whose SHA-256 hex is `blob_id` (computed from the file when
// empty). Asks the server how much it already holds and sends only the rest. `swarm` is
// the optional hint of UploadHeader. The server's status on failure (a transient one, see
// IsRetryable (common/retry.h), means: call again, it resumes).
absl::StatusOr<TransferResult> UploadFile(Connection& conn, const std::string& path,
                                          std::string blob_id, const std::string& swarm);

// Downloads blob `blob_id` to `dest`: bytes go to "<dest>.partial" (kept across failures so
// the next call resumes), the SHA-256 is checked, then the file is renamed to `dest`
// atomically. DataLoss (and the partial file removed) on a hash mismatch.
absl::StatusOr<TransferResult> DownloadToFile(Connection& conn, const std::string& blob_id,
                                              const std::string& dest);

// Deadline of a transfer of `bytes`: the unary deadline plus 2 s per 64 MiB.
absl::Duration TransferDeadline(const Connection& conn, uint64_t bytes);

}  // namespace wxp::client

#endif  // WXP_CLIENT_NET_BLOB_TRANSFER_H_
