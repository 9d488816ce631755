#include "client/agent/external_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/status_macros.h"

extern char** environ;

namespace wxp::agent {
namespace fs = std::filesystem;

absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::map<std::string, std::string>& env,
                                       const CommandLimits& limits, absl::string_view log_prefix) {
  if (argv.empty()) return absl::InvalidArgumentError("no command to run");
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (env.count(key) == 0) env_strings.push_back(std::move(kv));
  }
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const std::string& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    setpgid(0, 0);  // its own group, so a timeout can stop everything it started
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execvpe(cargv[0], cargv.data(), cenv.data());
    dprintf(2, "cannot run %s: %s\n", cargv[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);
  close(out_pipe[1]);
  close(err_pipe[1]);

  std::string out, err;
  const absl::Time deadline = absl::Now() + limits.timeout;
  bool timed_out = false, flooded = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0 && !flooded) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    int r = poll(fds, 2,
                 static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1000)));
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? out : err).append(buf, n);
        flooded = out.size() > (64 << 20);  // a program flooding stdout is broken
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  if (open_fds > 0 || timed_out || flooded) {
    kill(-pid, SIGTERM);
    const absl::Time kill_at = absl::Now() + limits.kill_grace;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (absl::Now() > kill_at) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  } else {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  kill(-pid, SIGKILL);  // anything the program left behind in its group
  for (const pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  if (!err.empty()) {
    for (absl::string_view line : absl::StrSplit(err, '\n', absl::SkipEmpty())) {
      std::cerr << log_prefix << ": " << line << "\n";
    }
  }
  const std::string what = absl::StrCat("`", absl::StrJoin(argv, " "), "`");
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, " did not finish within ", absl::FormatDuration(limits.timeout)));
  }
  if (flooded) {
    return absl::InvalidArgumentError(absl::StrCat(what, " wrote over 64 MiB to stdout"));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 &&
      err.find("cannot run") != std::string::npos) {
    return absl::NotFoundError(absl::StrCat(what, ": ", absl::StripAsciiWhitespace(err)));
  }
  if (WIFSIGNALED(status)) {
    return absl::InternalError(absl::StrCat(what, " was killed by signal ", WTERMSIG(status)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(
        what, " exited with status ", WEXITSTATUS(status), err.empty() ? "" : ": ",
        absl::StripAsciiWhitespace(err.substr(err.size() > 300 ? err.size() - 300 : 0))));
  }
  return out;
}

absl::Status CheckCommand(absl::string_view what, const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env, absl::Duration timeout) {
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " needs a command (argv)"));
  }
  for (const auto& [k, v] : env) {
    if (k.empty() || k.find('=') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": environment key '", k, "' must be non-empty without '='"));
    }
  }
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the timeout must be > 0"));
  }
  return absl::OkStatus();
}

absl::Status WritePeftCandidateDir(const std::string& position_path, const Schema& schema,
                                   const std::string& adapter_config_json, const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  WXP_RETURN_IF_ERROR(MakeDirs(dir));
  const std::string weights = dir + "/" + kPeftWeightsFile;
  fs::create_hard_link(position_path, weights, ec);
  if (ec) {
    fs::copy_file(position_path, weights, ec);
    if (ec) return ErrnoStatus(ec.value(), "cannot copy the candidate to", weights);
  }
  const std::string config =
      adapter_config_json.empty() ? InferLoraConfig(schema) : adapter_config_json;
  return WriteFileAtomically(dir + "/" + kPeftConfigFile, config);
}

}  // namespace wxp::agent
