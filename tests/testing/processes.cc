#include "tests/testing/processes.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

ServerProcess::ServerProcess(std::string data_dir, std::vector<std::string> extra_args, int port)
    : data_dir_(std::move(data_dir)),
      log_(data_dir_ + ".log"),
      extra_(std::move(extra_args)),
      port_(port) {}

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

RandomKills KillAtRandom(ChildProcess& a, const std::vector<std::string>& a_argv,
                         const std::string& a_log, ChildProcess& b, ServerProcess& server,
                         int agent_kills, int server_kills, uint32_t seed) {
  RandomKills done;
  // Real time between the kills: the processes run on their own clocks.
  std::mt19937 rng(seed);
  const absl::Time give_up = absl::Now() + absl::Minutes(4);
  while ((a.Running() || b.Running()) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(100 + rng() % 400));
    if (done.agent < agent_kills && a.Running()) {
      a.Kill(SIGKILL);
      ++done.agent;
      if (!a.Start(a_argv, a_log)) {
        done.failure = "the agent did not start again";
        return done;
      }
    } else if (done.server < server_kills) {
      server.Kill(SIGKILL);
      ++done.server;
      if (server.Start() <= 0) {
        done.failure = "the server did not start again: " + Tail(server.log_path());
        return done;
      }
    }
  }
  return done;
}

std::vector<std::string> ServerTlsFlags(const std::string& certs_dir) {
  return {"--tls_cert=" + certs_dir + "/server.crt", "--tls_key=" + certs_dir + "/server.key",
          "--tls_ca=" + certs_dir + "/ca.crt"};
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

int LoggedPort(const ServerProcess& server, const std::string& event) {
  const std::string log = Tail(server.log_path());
  std::smatch m;
  if (!std::regex_search(log, m, std::regex("event=" + event + " .* port=([0-9]+)"))) return 0;
  return std::stoi(m[1]);
}

std::vector<std::string> AgentArgv(const std::string& server, const std::string& swarm,
                                   const std::string& identity,
                                   const std::vector<std::string>& expert_dirs,
                                   const std::string& work_dir,
                                   const std::vector<std::string>& evaluator,
                                   const std::string& certs_dir) {
  std::vector<std::string> argv = {Runfile("client/agent/wxp-agent"), "--server=" + server,
                                   "--swarm=" + swarm};
  if (certs_dir.empty()) {
    argv.push_back("--plaintext");
    argv.push_back("--identity=" + identity);
  } else {
    const std::string prefix = certs_dir + "/" + identity;
    argv.push_back("--tls_cert=" + prefix + ".crt");
    argv.push_back("--tls_key=" + prefix + ".key");
    argv.push_back("--tls_ca=" + certs_dir + "/ca.crt");
  }
  argv.insert(argv.end(), {"--expert=" + absl::StrJoin(expert_dirs, ","), "--capacity=3",
                           "--work_dir=" + work_dir});
  argv.insert(argv.end(), evaluator.begin(), evaluator.end());
  return argv;
}

std::string FreshDir(const std::string& path) {
  fs::remove_all(path);
  fs::create_directories(path);
  return path;
}

bool PollUntil(const std::function<bool()>& done, absl::Duration limit, absl::Duration interval) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(interval);
  }
  return true;
}

std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

}  // namespace wxp::proc
