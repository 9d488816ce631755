// Child processes for multi-process tests: the real wxp-server and wxp-agent binaries
// started from the test's runfiles, with their stderr kept in a log file for post-mortems;
// and what starting them takes: free loopback ports, fresh directories, polling for events.
#ifndef WXP_TESTS_TESTING_PROCESSES_H_
#define WXP_TESTS_TESTING_PROCESSES_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
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
  // TLS flags. `port`: the port to listen on from the first start (a replica must know it
  // up front to advertise it; FreeLoopbackPort); 0 lets the first start pick one.
  ServerProcess(std::string data_dir, std::vector<std::string> extra_args, int port = 0);
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

// SIGKILLs at random moments (anywhere: mid-move, mid-evaluation, mid-report, mid-upload)
// while agent `a` or `b` runs, for at most 4 minutes: every 100-500 ms (drawn from `seed`)
// agent `a` is killed and started again with `a_argv` (output to `a_log`), `agent_kills`
// times, and after those `server` is killed and started again on its state, `server_kills`
// times. `a` and `b` must be running. Returns the kills done; `failure` says why it stopped
// early (a restart that failed), empty otherwise.
struct RandomKills {
  int agent = 0;
  int server = 0;
  std::string failure;
};
RandomKills KillAtRandom(ChildProcess& a, const std::vector<std::string>& a_argv,
                         const std::string& a_log, ChildProcess& b, ServerProcess& server,
                         int agent_kills, int server_kills, uint32_t seed);

// wxp-server's mutual-TLS flags for the certificate <certs_dir>/server.crt, its key
// <certs_dir>/server.key and the CA <certs_dir>/ca.crt (the layout IssueCertificate writes).
std::vector<std::string> ServerTlsFlags(const std::string& certs_dir);

// A TCP port nothing listened on at the moment of the call (the kernel's pick for an
// ephemeral bind on 127.0.0.1, released before returning), for a child that must be told
// its port up front (Prometheus, chromedriver, PostgreSQL); 0 if no socket could be bound.
// Another process may take it before the child binds it: a test that loses that race fails
// at the child's start, its log saying why.
int FreeLoopbackPort();

// The port a started server logged with `event` (e.g. "metrics_started" or
// "dashboard_started": a line with event=<event> and then port=<port>), 0 if its log has no
// such line.
int LoggedPort(const ServerProcess& server, const std::string& event);

// The argv of the runfile wxp-agent for firm `identity` in swarm `swarm` on `server`
// (host:port): its experts `expert_dirs` (PEFT adapter directories), --capacity=3,
// `work_dir`, then `evaluator` (the evaluator's flags). Plaintext with the identity in
// metadata when `certs_dir` is empty; otherwise mutual TLS with <certs_dir>/<identity>.crt,
// <certs_dir>/<identity>.key and <certs_dir>/ca.crt.
std::vector<std::string> AgentArgv(const std::string& server, const std::string& swarm,
                                   const std::string& identity,
                                   const std::vector<std::string>& expert_dirs,
                                   const std::string& work_dir,
                                   const std::vector<std::string>& evaluator,
                                   const std::string& certs_dir = "");

// Empties the directory `path` (creating it if need be) and returns it.
std::string FreshDir(const std::string& path);

// Calls `done` until it returns true, `interval` apart, giving up once `limit` has passed
// (the limit only ends a broken run: the wait is on the event). Whether `done` held; it is
// called at least once.
bool PollUntil(const std::function<bool()>& done, absl::Duration limit, absl::Duration interval);

// The last `max_bytes` of a file (for failure messages).
std::string Tail(const std::string& path, size_t max_bytes = 4000);

}  // namespace wxp::proc

#endif  // WXP_TESTS_TESTING_PROCESSES_H_
