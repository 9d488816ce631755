// A loopback TCP relay that counts every byte it forwards (bench/wire_bench): clients connect
// to it instead of the real server, it opens one upstream connection per accepted client and
// relays both ways. Everything the two ends exchange is counted, per direction, and split by
// HTTP/2 frame type (the connections are plaintext gRPC: a 24-byte client preface, then
// 9-byte frame headers each followed by its payload), so a figure can say whether bytes are
// payload (DATA) or call overhead (HEADERS, WINDOW_UPDATE, PING, SETTINGS).
//
// Bytes that are not HTTP/2 (e.g. TLS) still count in `total`; their frame split is then
// meaningless.
#ifndef WXP_BENCH_COUNTING_PROXY_H_
#define WXP_BENCH_COUNTING_PROXY_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace wxp::bench {

// HTTP/2 frame types (RFC 9113 section 6) the split reports; everything else is kOther.
enum FrameKind { kData, kHeaders, kWindowUpdate, kPing, kSettings, kOther, kFrameKinds };
const char* FrameKindName(int kind);

// Bytes of one direction. `frames_bytes[k]` includes the 9-byte frame headers; the client
// preface counts as kOther. `frames[k]` counts frames (HEADERS frames sent by clients are the
// calls they started).
struct DirectionCount {
  int64_t total = 0;
  std::array<int64_t, kFrameKinds> frame_bytes{};
  std::array<int64_t, kFrameKinds> frames{};
};

// A snapshot of the counters: up = client to server, down = server to client.
struct WireCount {
  DirectionCount up, down;
  int connections = 0;  // accepted so far
};
WireCount operator-(const WireCount& a, const WireCount& b);

class CountingProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and relays to 127.0.0.1:`upstream_port`. Internal
  // with errno text if the listener cannot be set up.
  static absl::StatusOr<std::unique_ptr<CountingProxy>> Start(int upstream_port);
  // Stops accepting and closes every relayed connection.
  ~CountingProxy();
  CountingProxy(const CountingProxy&) = delete;
  CountingProxy& operator=(const CountingProxy&) = delete;

  int port() const { return port_; }
  // Thread-safe; a consistent snapshot only while no connection is active (counters are
  // updated one relayed chunk at a time).
  WireCount Count() const;

 private:
  struct Direction;
  CountingProxy(int listen_fd, int port, int upstream_port);
  void AcceptLoop();
  void Relay(int client_fd);

  const int listen_fd_, port_, upstream_port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::unique_ptr<Direction> up_, down_;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> relays_;  // guarded by mu_
};

}  // namespace wxp::bench

#endif  // WXP_BENCH_COUNTING_PROXY_H_
