// wxp-agent's side of the EXPERT_COEFFICIENTS space (SPEC 4.3): positions are coefficient
// vectors alpha that arrive inline in the particle RPCs. The agent keeps each as its
// canonical alpha blob (common/alpha_blob.h) in the blob cache, so the particle loop, its
// crash-safe state and the move arithmetic are the ones of the WEIGHTS space, run over
// alpha; a candidate is decoded into an adapter only to be evaluated.
#ifndef WXP_CLIENT_AGENT_COEFFICIENT_SPACE_H_
#define WXP_CLIENT_AGENT_COEFFICIENT_SPACE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/agent/blob_cache.h"
#include "common/adapter.h"
#include "common/particle_space.h"
#include "proto/wxp.pb.h"

namespace wxp::agent {

// Stores alpha's canonical blob in `cache` (if absent) and returns its id. InvalidArgument
// for an empty or non-finite alpha.
absl::StatusOr<std::string> PutAlphaBlob(BlobCache& cache, absl::Span<const float> alpha);

// The alpha an alpha blob file holds. InvalidArgument naming the path otherwise.
absl::StatusOr<std::vector<float>> ReadAlphaBlob(const std::string& path);

// The space an assignment describes, over the expert blob files `expert_files` (the cache
// paths of resp.expert_blob_ids, in that order), each with its configured
// adapter_config.json. InvalidArgument if the response is not a coefficient-space or
// token-mixture one or the experts do not make a space.
absl::StatusOr<std::unique_ptr<ParticleSpace>> MakeAgentSpace(
    const wxp::v1::GetAssignmentResponse& resp, const std::vector<std::string>& expert_files);

// Decodes the alpha blob at `alpha_path` and writes the adapter's safetensors to
// `out_path`. Returns the adapter without its values (schema and config are what an
// evaluator needs beside the file).
absl::StatusOr<Adapter> DecodeToFile(const ParticleSpace& space, const std::string& alpha_path,
                                     const std::string& out_path);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_COEFFICIENT_SPACE_H_
