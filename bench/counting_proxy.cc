#include "bench/counting_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace wxp::bench {

const char* FrameKindName(int kind) {
  static const char* const kNames[] = {"DATA", "HEADERS",  "WINDOW_UPDATE",
                                       "PING", "SETTINGS", "other"};
  return kNames[kind];
}

WireCount operator-(const WireCount& a, const WireCount& b) {
  WireCount d;
  auto sub = [](const DirectionCount& x, const DirectionCount& y) {
    DirectionCount r;
    r.total = x.total - y.total;
    for (int k = 0; k < kFrameKinds; ++k) {
      r.frame_bytes[k] = x.frame_bytes[k] - y.frame_bytes[k];
      r.frames[k] = x.frames[k] - y.frames[k];
    }
    return r;
  };
  d.up = sub(a.up, b.up);
  d.down = sub(a.down, b.down);
  d.connections = a.connections - b.connections;
  return d;
}

struct CountingProxy::Direction {
  std::atomic<int64_t> total{0};
  std::array<std::atomic<int64_t>, kFrameKinds> frame_bytes{};
  std::array<std::atomic<int64_t>, kFrameKinds> frames{};

  DirectionCount Load() const {
    DirectionCount c;
    c.total = total.load();
    for (int k = 0; k < kFrameKinds; ++k) {
      c.frame_bytes[k] = frame_bytes[k].load();
      c.frames[k] = frames[k].load();
    }
    return c;
  }
};

namespace {

FrameKind KindOf(uint8_t type) {
  switch (type) {
    case 0x0:
      return kData;
    case 0x1:
    case 0x9:  // CONTINUATION: more header block
      return kHeaders;
    case 0x8:
      return kWindowUpdate;
    case 0x6:
      return kPing;
    case 0x4:
      return kSettings;
    default:
      return kOther;
  }
}

// Splits one direction of one connection into HTTP/2 frames as the bytes go by.
class FrameSplitter {
 public:
  explicit FrameSplitter(int preface) : preface_left_(preface) {}

  template <typename Add>
  void Feed(const uint8_t* p, size_t n, Add add) {
    while (n > 0) {
      if (preface_left_ > 0) {
        const size_t take = std::min<size_t>(n, preface_left_);
        add(kOther, take, false);
        preface_left_ -= take;
        p += take;
        n -= take;
      } else if (payload_left_ > 0) {
        const size_t take = std::min<size_t>(n, payload_left_);
        add(kind_, take, false);
        payload_left_ -= take;
        p += take;
        n -= take;
      } else {
        header_[header_len_++] = *p++;
        --n;
        if (header_len_ < 9) continue;
        header_len_ = 0;
        payload_left_ = (int64_t{header_[0]} << 16) | (int64_t{header_[1]} << 8) | header_[2];
        kind_ = KindOf(header_[3]);
        add(kind_, 9, true);
      }
    }
  }

 private:
  int64_t preface_left_;
  uint8_t header_[9] = {};
  int header_len_ = 0;
  int64_t payload_left_ = 0;
  FrameKind kind_ = kOther;
};

bool WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CountingProxy>> CountingProxy::Start(int upstream_port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    return absl::InternalError(absl::StrCat("proxy listener on 127.0.0.1: ", err));
  }
  return std::unique_ptr<CountingProxy>(new CountingProxy(fd, ntohs(addr.sin_port), upstream_port));
}

CountingProxy::CountingProxy(int listen_fd, int port, int upstream_port)
    : listen_fd_(listen_fd),
      port_(port),
      upstream_port_(upstream_port),
      up_(std::make_unique<Direction>()),
      down_(std::make_unique<Direction>()) {
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

CountingProxy::~CountingProxy() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  std::lock_guard<std::mutex> lock(mu_);
  for (std::thread& t : relays_) t.join();
}

WireCount CountingProxy::Count() const {
  WireCount c;
  c.up = up_->Load();
  c.down = down_->Load();
  c.connections = connections_.load();
  return c;
}

void CountingProxy::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    relays_.emplace_back([this, client] { Relay(client); });
  }
}

// Relays until either side closes (or the proxy stops), then closes both.
void CountingProxy::Relay(int client_fd) {
  const int server_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  if (server_fd < 0 ||
      ::connect(server_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    // The client sees a closed connection, as if the server were down, and retries.
    if (server_fd >= 0) ::close(server_fd);
    ::close(client_fd);
    return;
  }
  const int one = 1;
  ::setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(server_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // The client's side starts with the 24-byte HTTP/2 preface; the server's with a frame.
  FrameSplitter split_up(24), split_down(0);
  std::vector<uint8_t> buf(256 << 10);
  pollfd fds[2] = {{client_fd, POLLIN, 0}, {server_fd, POLLIN, 0}};
  while (!stop_) {
    if (::poll(fds, 2, 100) <= 0) continue;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = ::recv(fds[i].fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        closed = true;
        break;
      }
      Direction& d = i == 0 ? *up_ : *down_;
      (i == 0 ? split_up : split_down)
          .Feed(buf.data(), static_cast<size_t>(n), [&d](FrameKind k, size_t bytes, bool start) {
            d.frame_bytes[k] += static_cast<int64_t>(bytes);
            if (start) ++d.frames[k];
          });
      d.total += n;
      if (!WriteAll(fds[1 - i].fd, buf.data(), static_cast<size_t>(n))) closed = true;
    }
    if (closed) break;
  }
  ::close(client_fd);
  ::close(server_fd);
}

}  // namespace wxp::bench
