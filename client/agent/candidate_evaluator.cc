#include "client/agent/candidate_evaluator.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/agent/position_files.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace wxp::agent {
namespace fs = std::filesystem;

namespace {

class InProcess : public CandidateEvaluator {
 public:
  explicit InProcess(std::unique_ptr<Evaluator> e) : e_(std::move(e)) {}
  absl::StatusOr<Scores> Evaluate(const Candidate& c) override {
    WXP_ASSIGN_OR_RETURN(std::vector<float> x, LoadFlat(c.position_path, *c.schema));
    return e_->Evaluate({c.particle, c.iteration, x});
  }

 private:
  std::unique_ptr<Evaluator> e_;
};

std::string Describe(const std::vector<std::string>& argv) { return absl::StrJoin(argv, " "); }

class External : public CandidateEvaluator {
 public:
  explicit External(ExternalCommandOptions o) : o_(std::move(o)) {}

  absl::StatusOr<Scores> Evaluate(const Candidate& c) override {
    const std::string dir = absl::StrCat(o_.scratch_dir, "/candidate-", c.particle);
    WXP_RETURN_IF_ERROR(PrepareDir(c, dir));
    std::vector<std::string> argv = o_.argv;
    argv.push_back(dir);
    WXP_ASSIGN_OR_RETURN(std::string out, Run(argv));
    absl::StatusOr<Scores> scores = ParseScoresOutput(out);
    if (!scores.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("`", Describe(argv), "`: ", scores.status().message()));
    }
    return scores;
  }

 private:
  // The harness sees an ordinary PEFT directory: the blob (hard-linked when possible, it
  // can be large) and the swarm's adapter_config.json.
  absl::Status PrepareDir(const Candidate& c, const std::string& dir) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    WXP_RETURN_IF_ERROR(MakeDirs(dir));
    const std::string weights = dir + "/" + kPeftWeightsFile;
    fs::create_hard_link(c.position_path, weights, ec);
    if (ec) {
      fs::copy_file(c.position_path, weights, ec);
      if (ec) return ErrnoStatus(ec.value(), "cannot copy the candidate to", weights);
    }
    std::string config =
        c.adapter_config_json.empty() ? o_.adapter_config_json : c.adapter_config_json;
    if (config.empty()) config = InferLoraConfig(*c.schema);
    return WriteFileAtomically(dir + "/" + kPeftConfigFile, config);
  }

  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      const std::string key = kv.substr(0, kv.find('='));
      if (o_.env.count(key) == 0) env_strings.push_back(std::move(kv));
    }
    for (const auto& [k, v] : o_.env) env_strings.push_back(absl::StrCat(k, "=", v));
    std::vector<char*> cargv, cenv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const std::string& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);

    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
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
    const absl::Time deadline = absl::Now() + o_.timeout;
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
          flooded = out.size() > (64 << 20);  // a harness flooding stdout is broken
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
      const absl::Time kill_at = absl::Now() + o_.kill_grace;
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
    kill(-pid, SIGKILL);  // anything the harness left behind in its group
    for (const pollfd& f : fds) {
      if (f.fd >= 0) close(f.fd);
    }
    if (!err.empty()) {
      for (absl::string_view line : absl::StrSplit(err, '\n', absl::SkipEmpty())) {
        std::cerr << "evaluator: " << line << "\n";
      }
    }
    const std::string what = absl::StrCat("`", Describe(argv), "`");
    if (timed_out) {
      return absl::DeadlineExceededError(
          absl::StrCat(what, " did not finish within ", absl::FormatDuration(o_.timeout)));
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

  ExternalCommandOptions o_;
};

absl::StatusOr<Scores> ParseObject(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("output is not a JSON object");
  }
  auto it = j.find("scores");
  if (it == j.end() || !it->is_object()) {
    return absl::InvalidArgumentError("output has no \"scores\" object");
  }
  Scores scores;
  for (auto& [name, value] : it->items()) {
    if (!value.is_number()) {
      return absl::InvalidArgumentError(absl::StrCat("score \"", name, "\" is not a number"));
    }
    const double v = value.get<double>();
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("score \"", name, "\" is not finite"));
    }
    scores[name] = v;
  }
  if (scores.empty()) return absl::InvalidArgumentError("output has no scores");
  return scores;
}

}  // namespace

absl::StatusOr<std::vector<float>> CandidateEvaluator::Train(const TrainingRequest&,
                                                             const Schema&) {
  return absl::UnimplementedError("this evaluator cannot train (no local training)");
}

std::unique_ptr<CandidateEvaluator> InProcessEvaluator(std::unique_ptr<Evaluator> evaluator) {
  return std::make_unique<InProcess>(std::move(evaluator));
}

absl::StatusOr<std::unique_ptr<CandidateEvaluator>> ExternalCommandEvaluator(
    ExternalCommandOptions options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("the external evaluator needs a command (argv)");
  }
  for (const auto& [k, v] : options.env) {
    if (k.empty() || k.find('=') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("evaluator environment key '", k, "' must be non-empty without '='"));
    }
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the external evaluator's timeout must be > 0");
  }
  WXP_RETURN_IF_ERROR(MakeDirs(options.scratch_dir));
  return std::make_unique<External>(std::move(options));
}

absl::StatusOr<Scores> ParseScoresOutput(const std::string& stdout_text) {
  absl::StatusOr<Scores> whole = ParseObject(stdout_text);
  if (whole.ok()) return whole;
  std::vector<absl::string_view> lines = absl::StrSplit(stdout_text, '\n', absl::SkipWhitespace());
  if (lines.size() > 1) {
    absl::StatusOr<Scores> last = ParseObject(std::string(lines.back()));
    if (last.ok()) return last;
    return last.status();
  }
  if (stdout_text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return absl::InvalidArgumentError("printed nothing on stdout; expected {\"scores\": {...}}");
  }
  return whole.status();
}

}  // namespace wxp::agent
