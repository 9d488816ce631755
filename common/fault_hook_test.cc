#include "common/fault_hook.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;

constexpr char kEnv[] = "WXP_FAULT_HOOK_TEST_MARKER";

class FaultHookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    marker_ = ::testing::TempDir() + "/fault_hook_marker";
    fs::remove(marker_);
  }
  void TearDown() override { unsetenv(kEnv); }
  std::string marker_;
};

TEST_F(FaultHookTest, UnsetOrEmptyEnvironmentReturnsAtOnce) {
  unsetenv(kEnv);
  HoldIfArmed(kEnv);
  setenv(kEnv, "", 1);
  HoldIfArmed(kEnv);
  EXPECT_FALSE(fs::exists(marker_));
}

TEST_F(FaultHookTest, ExistingMarkerDisarmsTheHook) {
  std::ofstream(marker_) << "disarmed";
  setenv(kEnv, marker_.c_str(), 1);
  HoldIfArmed(kEnv);  // would never return if armed
  std::ifstream in(marker_);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "disarmed");
}

TEST_F(FaultHookTest, ArmedHookCreatesTheMarkerAndHoldsUntilKilled) {
  setenv(kEnv, marker_.c_str(), 1);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    HoldIfArmed(kEnv);
    _exit(0);  // reached only if the hook did not hold
  }
  // The child creates the marker before it holds; only a child that never reaches the hook
  // (or exits past it) ends this wait early.
  int status = 0;
  pid_t done = 0;
  while (!fs::exists(marker_) && (done = waitpid(child, &status, WNOHANG)) == 0) usleep(1000);
  ASSERT_EQ(done, 0) << "the child exited instead of holding";
  // Holding: it has not exited, and it stays until killed.
  EXPECT_EQ(waitpid(child, &status, WNOHANG), 0);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // The hook fired once: the marker now disarms it for the next holder.
  HoldIfArmed(kEnv);
}

}  // namespace
}  // namespace wxp
