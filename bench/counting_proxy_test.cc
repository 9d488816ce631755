#include "bench/counting_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace wxp::bench {
namespace {

// A frame: 24-bit length, type, flags, stream id, then the payload.
std::string Frame(uint8_t type, size_t length) {
  std::string f = {static_cast<char>(length >> 16),
                   static_cast<char>(length >> 8),
                   static_cast<char>(length),
                   static_cast<char>(type),
                   0,
                   0,
                   0,
                   0,
                   1};
  return f + std::string(length, 'x');
}

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

std::string ReadExactly(int fd, size_t n) {
  std::string s(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, &s[got], n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  s.resize(got);
  return s;
}

TEST(CountingProxyTest, RelaysBothWaysAndSplitsTheBytesByFrameType) {
  // The upstream: one connection, reads the client's bytes, answers.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), 0);

  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const std::string up = preface + Frame(0x4, 0) + Frame(0x1, 5) + Frame(0x0, 100) + Frame(0x9, 3) +
                         Frame(0x3, 4);  // CONTINUATION, RST_STREAM
  const std::string down = Frame(0x0, 10) + Frame(0x6, 8) + Frame(0x8, 4);
  std::string received;
  std::thread upstream([&] {
    const int fd = ::accept(listener, nullptr, nullptr);
    received = ReadExactly(fd, up.size());
    ::send(fd, down.data(), down.size(), 0);
    ::close(fd);
  });

  auto proxy = CountingProxy::Start(ntohs(a.sin_port));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const int client = Connect((*proxy)->port());
  // Byte by byte up to the middle of the DATA frame, so frame headers arrive split.
  const size_t split = preface.size() + 9 + 14 + 20;
  for (size_t i = 0; i < split; ++i) ASSERT_EQ(::send(client, &up[i], 1, 0), 1);
  ASSERT_EQ(::send(client, up.data() + split, up.size() - split, 0),
            static_cast<ssize_t>(up.size() - split));
  EXPECT_EQ(ReadExactly(client, down.size()), down);
  upstream.join();
  EXPECT_EQ(received, up);

  // Counters are updated before a chunk is forwarded, so what arrived is counted.
  const WireCount c = (*proxy)->Count();
  EXPECT_EQ(c.connections, 1);
  EXPECT_EQ(c.up.total, static_cast<int64_t>(up.size()));
  EXPECT_EQ(c.up.frame_bytes[kOther], 24 + 13);  // preface, RST_STREAM
  EXPECT_EQ(c.up.frame_bytes[kSettings], 9);
  EXPECT_EQ(c.up.frame_bytes[kHeaders], 14 + 12);  // HEADERS + CONTINUATION
  EXPECT_EQ(c.up.frame_bytes[kData], 109);
  EXPECT_EQ(c.up.frames[kHeaders], 2);
  EXPECT_EQ(c.up.frames[kData], 1);
  EXPECT_EQ(c.up.frames[kOther], 1);  // the preface is bytes, not a frame
  EXPECT_EQ(c.down.total, static_cast<int64_t>(down.size()));
  EXPECT_EQ(c.down.frame_bytes[kData], 19);
  EXPECT_EQ(c.down.frame_bytes[kPing], 17);
  EXPECT_EQ(c.down.frame_bytes[kWindowUpdate], 13);

  const WireCount d = c - WireCount{};
  EXPECT_EQ(d.up.total, c.up.total);
  ::close(client);
  ::close(listener);
}

}  // namespace
}  // namespace wxp::bench
