#include "tests/testing/processes.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace wxp::proc {
namespace fs = std::filesystem;

std::string Runfile(const std::string& relative) {
  const char* ws = std::getenv("TEST_WORKSPACE");
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    return absl::StrCat(srcdir, "/", ws ? ws : "wxp", "/", relative);
  }
  if (const char* runfiles = std::getenv("RUNFILES_DIR")) {
    return absl::StrCat(runfiles, "/wxp/", relative);
  }
  // Started directly from bazel-bin (long runs need not hold Bazel's lock).
  std::error_code ec;
  const std::string own =
      absl::StrCat(fs::read_symlink("/proc/self/exe", ec).string(), ".runfiles/wxp");
  if (!ec && fs::exists(own + "/" + relative)) return absl::StrCat(own, "/", relative);
  // `bazel run` starts binaries in their runfiles tree's workspace directory.
  return absl::StrCat(fs::current_path().string(), "/", relative);
}

ChildProcess::~ChildProcess() { Kill(SIGKILL); }

bool ChildProcess::Start(const std::vector<std::string>& argv, const std::string& log_path,
                         const std::vector<std::string>& env) {
  if (pid_ > 0) return false;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The environment is built before fork: the child of a threaded parent may only call
  // async-signal-safe functions, and setenv is not one.
  std::vector<std::string> owned;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& x : env) overridden |= x.rfind(name + "=", 0) == 0;
    if (!overridden) owned.push_back(entry);
  }
  owned.insert(owned.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (const std::string& e : owned) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  return true;
}

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = status;
    pid_ = -1;
    return false;
  }
  return true;
}

int ChildProcess::Kill(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  status_ = status;
  return status;
}

int ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = status;
      return status;
    }
    if (absl::Now() > end) return -1;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return status_;
}

ServerProcess::ServerProcess(std::string data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), log_(data_dir_ + ".log"), extra_(std::move(extra_args)) {}

int ServerProcess::Start() {
  const std::string port_file = data_dir_ + ".port";
  fs::remove(port_file);
  // A restart keeps the port, so clients reconnect to the address they know.
  std::vector<std::string> argv = {Runfile("server/app/wxp-server"),
                                   absl::StrCat("--listen=127.0.0.1:", port_),
                                   "--data_dir=" + data_dir_, "--port_file=" + port_file};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  if (!child_.Start(argv, log_)) return 0;
  // Start-up (recovery, LibTorch's load, instrumented code under ASan on a busy machine) has
  // taken over 10 s: wait for the port file as long as the server lives, up to 2 minutes;
  // a server that dies or never binds still fails at once or at that bound.
  for (int i = 0; i < 6000 && !fs::exists(port_file) && child_.Running(); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::ifstream in(port_file);
  int port = 0;
  in >> port;
  if (port > 0) port_ = port;
  return port;
}

std::string ServerProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

}  // namespace wxp::proc
