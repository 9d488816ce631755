#include "common/shutdown_signals.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace wxp {
namespace {

// A write to a socket whose peer has gone is what OpenSSL does when an HTTPS client hangs up
// first; with the default disposition it kills the process (the death test), ignored it is
// an EPIPE for that connection only.
TEST(IgnoreBrokenPipesTest, AWriteToAClosedPeerFailsInsteadOfKilling) {
  auto write_to_closed_peer = [] {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return -2;
    close(fds[1]);
    const ssize_t n = write(fds[0], "x", 1);
    const int error = errno;
    close(fds[0]);
    return n < 0 ? error : 0;
  };
  EXPECT_EXIT(
      {
        signal(SIGPIPE, SIG_DFL);
        write_to_closed_peer();
        _exit(0);
      },
      ::testing::KilledBySignal(SIGPIPE), "");
  IgnoreBrokenPipes();
  EXPECT_EQ(write_to_closed_peer(), EPIPE);
}

}  // namespace
}  // namespace wxp
