// Settings that bulk blob streams (1 MiB chunks over gRPC, client/net/blob_transfer.h and
// the server's blob service) need to run near the speed of the socket. Both measured with
// bench/transfer_bench (B2) and perf; see the commit that added this file.
//
// - glibc's allocator: gRPC allocates a fresh buffer for every message it serializes and
//   every read from the socket, and we allocate one per chunk. With glibc's defaults these
//   megabyte-sized blocks are mapped and unmapped (or trimmed from the heap top) over and
//   over, and every 4 KiB page of each one then costs a page fault and a zeroing: that was
//   most of the CPU an upload used. Keeping them in the heap makes a freed chunk's pages
//   reusable by the next one.
// - HTTP/2 flow control: gRPC's bandwidth-delay-product probe sizes a stream's window from
//   the measured round trip. On a fast link (loopback, a LAN) it keeps the window tiny, so a
//   1 MiB chunk crossed in dozens of window updates, each a wake-up on both sides. A fixed
//   window of kTransferWindowBytes instead lets a whole chunk (and the next) be in flight;
//   over a long round trip it bounds one stream at kTransferWindowBytes per round trip
//   (80 MiB/s at 100 ms).
#ifndef WXP_COMMON_TRANSFER_TUNING_H_
#define WXP_COMMON_TRANSFER_TUNING_H_

#include <utility>
#include <vector>

namespace wxp {

inline constexpr int kTransferWindowBytes = 8 << 20;

// Sets glibc's mmap and trim thresholds for this process, once (later calls do nothing). A
// process keeps up to 32 MiB of freed heap per arena for reuse. Leaves them alone when the
// environment sets them (GLIBC_TUNABLES or MALLOC_*_ variables): the operator decides.
void TuneAllocatorForTransfers();

// gRPC channel arguments (name, value) for both ends of a connection that moves blobs:
// no BDP probe, a fixed per-stream window, frames up to 1 MiB.
std::vector<std::pair<const char*, int>> TransferChannelArgs();

}  // namespace wxp

#endif  // WXP_COMMON_TRANSFER_TUNING_H_
