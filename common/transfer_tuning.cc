#include "common/transfer_tuning.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "grpc/grpc.h"

namespace wxp {

void TuneAllocatorForTransfers() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if ((tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) ||
        std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr ||
        std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr) {
      return;
    }
    // Above 4 MiB blocks are still mapped on their own (a whole adapter read at once must
    // go back to the system when freed); chunks and gRPC's buffers stay below.
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
  });
}

std::vector<std::pair<const char*, int>> TransferChannelArgs() {
  return {
      {GRPC_ARG_HTTP2_BDP_PROBE, 0},
      {GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kTransferWindowBytes},
      {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20},
  };
}

}  // namespace wxp
