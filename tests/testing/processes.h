// Child processes for multi-process tests: the real wxp-server and wxp-agent binaries
// started from the test's runfiles, with their stderr kept in a log file for post-mortems.
#ifndef WXP_TESTS_TESTING_PROCESSES_H_
#define WXP_TESTS_TESTING_PROCESSES_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace wxp::proc {

// Absolute path of a runfile given relative to the workspace, e.g. "server/app/wxp-server".
std::string Runfile(const std::string& relative);

// One child process. Killed with SIGKILL on destruction if still running.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] with argv; stdout and stderr are appended to `log_path`. `env` entries
  // ("NAME=value") are added to (or override) the test's environment. False if fork failed
  // or a child is already running.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path,
             const std::vector<std::string>& env = {});
  bool Running();
  // Sends `sig` and reaps the child; returns the wait status (-1 if none was running).
  int Kill(int sig);
  // Waits up to `timeout` for the child to exit; its wait status, or -1 on time-out.
  int Wait(absl::Duration timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// wxp-server on 127.0.0.1 with a free port, over a data directory that survives restarts.
class ServerProcess {
 public:
  // `extra_args` are added to --listen/--data_dir/--port_file, e.g. {"--plaintext"} or the
  // TLS flags.
  ServerProcess(std::string data_dir, std::vector<std::string> extra_args);
  // Starts the server and returns its port once it serves (0 if it did not come up within
  // 10 s; its log says why). The first start picks a free port; restarts reuse it.
  int Start();
  int Kill(int sig) { return child_.Kill(sig); }
  int port() const { return port_; }
  std::string address() const;
  const std::string& log_path() const { return log_; }
  ChildProcess& child() { return child_; }

 private:
  std::string data_dir_, log_;
  std::vector<std::string> extra_;
  ChildProcess child_;
  int port_ = 0;
};

// The last `max_bytes` of a file (for failure messages).
std::string Tail(const std::string& path, size_t max_bytes = 4000);

}  // namespace wxp::proc

#endif  // WXP_TESTS_TESTING_PROCESSES_H_
