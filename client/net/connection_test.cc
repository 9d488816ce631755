// The client connection against a server that is slow to answer a new connection (a busy
// server, a long round trip): the first call must wait for the handshake, not fail.
#include "client/net/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/leader_redirect.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace wxp::client {
namespace {

// Accepts TCP connections on a loopback port and, after `delay`, relays each one to
// `target_port`: to the client the server looks slow to send its HTTP/2 preface.
class SlowForwarder {
 public:
  SlowForwarder(int target_port, absl::Duration delay) : target_(target_port), delay_(delay) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    EXPECT_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~SlowForwarder() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : relays_) t.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      relays_.emplace_back([this, client] { Relay(client); });
    }
  }
  void Relay(int client) {
    absl::SleepFor(delay_);
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(target_);
    if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      char buf[1 << 14];
      while (!stop_) {
        if (::poll(fds, 2, 50) <= 0) continue;
        bool closed = false;
        for (int i = 0; i < 2 && !closed; ++i) {
          if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
          const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
          closed = n <= 0 || ::write(fds[1 - i].fd, buf, n) != n;
        }
        if (closed) break;
      }
    }
    ::close(server);
    ::close(client);
  }

  int target_;
  absl::Duration delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> relays_;
};

TEST(ConnectionTest, FirstCallWaitsForASlowHandshake) {
  // The generated base service answers UNIMPLEMENTED: an answer proves the connection.
  wxp::v1::AgentService::Service unimplemented;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.RegisterService(&unimplemented);
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  SlowForwarder slow(port, absl::Milliseconds(600));

  ConnectionOptions o;
  o.server_address = absl::StrCat("127.0.0.1:", slow.port());
  o.plaintext = true;
  o.identity = "firm-a";
  o.rpc_deadline = absl::Seconds(10);
  auto c = Connection::Open(o, absl::Now());
  ASSERT_TRUE(c.ok()) << c.status();
  wxp::v1::HeartbeatRequest req;
  wxp::v1::HeartbeatResponse resp;
  const grpc::Status s = (*c)->agent().Heartbeat((*c)->NewContext().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  server->Shutdown();
}

// Several replicas (SPEC 6.1): a redirect names the next server; an unreachable one moves
// the connection to the next listed address; any other failure leaves it where it is.
TEST(ConnectionFailoverTest, FollowsRedirectsAndRotatesPastUnreachableServers) {
  ConnectionOptions o;
  o.server_address = "127.0.0.1:7001, 127.0.0.1:7002";
  o.plaintext = true;
  o.identity = "ops";
  auto c = Connection::Open(o, absl::Now());
  ASSERT_TRUE(c.ok()) << c.status();
  Connection& conn = **c;
  EXPECT_EQ(conn.current_address(), "127.0.0.1:7001");
  EXPECT_TRUE(conn.Failover(absl::UnavailableError("connection refused")));
  EXPECT_EQ(conn.current_address(), "127.0.0.1:7002");
  EXPECT_TRUE(conn.Failover(LeaderRedirectError("s", "127.0.0.1:7003", "r3")));
  EXPECT_EQ(conn.current_address(), "127.0.0.1:7003");
  EXPECT_FALSE(conn.Failover(absl::NotFoundError("no swarm named 's'")));
  EXPECT_EQ(conn.current_address(), "127.0.0.1:7003");
  EXPECT_TRUE(conn.Failover(absl::DeadlineExceededError("no answer")));
  EXPECT_EQ(conn.current_address(), "127.0.0.1:7001");

  // One address: nowhere else to go.
  o.server_address = "127.0.0.1:7001";
  auto single = Connection::Open(o, absl::Now());
  ASSERT_TRUE(single.ok());
  EXPECT_FALSE((*single)->Failover(absl::UnavailableError("down")));
}

}  // namespace
}  // namespace wxp::client
