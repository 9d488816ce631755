// The canonical blob of a coefficient-space position (SPEC 4.3): a position alpha travels
// inline in the particle RPCs, but the server and the agents still name and store it like
// any position, as a content-addressed safetensors blob. The blob is canonical — one F32
// tensor "alpha" of shape [dimension], no metadata — so both sides derive the same id from
// the same floats without ever exchanging the bytes.
#ifndef WXP_COMMON_ALPHA_BLOB_H_
#define WXP_COMMON_ALPHA_BLOB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/adapter.h"
#include "common/schema.h"

namespace wxp {

inline constexpr char kAlphaTensorName[] = "alpha";

// The schema of alpha blobs of `dimension` entries (>= 1).
Schema AlphaSchema(int64_t dimension);

// The canonical blob bytes of `alpha`. InvalidArgument for an empty alpha or a NaN or
// infinite entry (naming its index).
absl::StatusOr<std::string> AlphaBlobBytes(absl::Span<const float> alpha);
// Sha256Hex of AlphaBlobBytes(alpha); fails as it.
absl::StatusOr<std::string> AlphaBlobId(absl::Span<const float> alpha);

// The alpha held in canonical blob bytes: InvalidArgument unless `bytes` parse as
// safetensors with exactly one F32 tensor "alpha" of rank 1.
absl::StatusOr<std::vector<float>> AlphaFromBlobBytes(std::string bytes);

}  // namespace wxp

#endif  // WXP_COMMON_ALPHA_BLOB_H_
