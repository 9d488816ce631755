#include "server/store/testing/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <postgresql/libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/db/postgres.h"
#include "tests/testing/processes.h"

namespace wxp::store::testing {
namespace {

namespace fs = std::filesystem;

// The newest Debian PostgreSQL's binaries (/usr/lib/postgresql/<version>/bin), or
// $WXP_POSTGRES_BIN.
absl::StatusOr<std::string> FindBinDir() {
  if (const char* env = std::getenv("WXP_POSTGRES_BIN"); env != nullptr && env[0] != '\0') {
    return std::string(env);
  }
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int version = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &version)) continue;
    if (version > best_version && fs::exists(entry.path() / "bin" / "postgres")) {
      best_version = version;
      best = (entry.path() / "bin").string();
    }
  }
  if (best.empty()) {
    return absl::NotFoundError(
        "no PostgreSQL server under /usr/lib/postgresql/*/bin: install Debian's postgresql "
        "(deploy/install-deps.sh) or set WXP_POSTGRES_BIN");
  }
  return best;
}

struct Credentials {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Starts argv[0] with output appended to `log`, in `cwd`, as `as` if it says to drop
// privileges. The kernel sends it `death_signal` when the calling thread exits, so a test
// that dies does not leave a server behind. -1 if fork failed.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log, const std::string& cwd,
            const Credentials& as, int death_signal) {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"};
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) {
    if (log_fd >= 0) close(log_fd);
    return pid;
  }
  const int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0) dup2(null_fd, 0);
  if (log_fd >= 0) {
    dup2(log_fd, 1);
    dup2(log_fd, 2);
  }
  if (as.drop && (setgroups(0, nullptr) != 0 || setgid(as.gid) != 0 || setuid(as.uid) != 0)) {
    _exit(126);
  }
  // After setuid, which clears it.
  prctl(PR_SET_PDEATHSIG, death_signal);
  if (getppid() != parent) _exit(125);
  if (chdir(cwd.c_str()) != 0) _exit(124);
  execve(args[0], args.data(), envp.data());
  _exit(127);
}

// The child's wait status, or -1 if it still runs after `timeout`.
int WaitFor(pid_t pid, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    if (absl::Now() > end) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string LogTail(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return "(no log)";
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return "(no log)";
  constexpr long kTail = 3000;
  if (size > kTail) fseek(f, -kTail, SEEK_END);
  std::string out(kTail, '\0');
  out.resize(fread(out.data(), 1, out.size(), f));
  fclose(f);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  absl::StatusOr<std::string> bin = FindBinDir();
  if (!bin.ok()) return bin.status();
  server->bin_dir_ = *bin;
  if (geteuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) pw = getpwnam("nobody");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, and neither a 'postgres' nor a 'nobody' user exists to run "
          "PostgreSQL as (it refuses root)");
    }
    server->drop_privileges_ = true;
    server->uid_ = pw->pw_uid;
    server->gid_ = pw->pw_gid;
  }
  // Short (a Unix socket path is limited to 107 bytes) and reachable by the server's user.
  char tmpl[] = "/tmp/wxp-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp in /tmp failed");
  server->dir_ = tmpl;
  server->data_ = server->dir_ + "/data";
  server->log_ = server->dir_ + "/server.log";
  if (server->drop_privileges_ && chown(tmpl, server->uid_, server->gid_) != 0) {
    return absl::InternalError(absl::StrCat("cannot hand ", tmpl, " to uid ", server->uid_));
  }
  // initdb's files need to survive a process crash here, not power loss: --no-sync.
  const Credentials as{server->drop_privileges_, server->uid_, server->gid_};
  const pid_t initdb = Spawn({server->bin_dir_ + "/initdb", "-D", server->data_, "-U", "wxp", "-A",
                              "trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                             server->log_, server->dir_, as, SIGKILL);
  if (initdb < 0) return absl::InternalError("fork failed");
  const int status = WaitFor(initdb, absl::Seconds(120));
  if (status == -1) {
    kill(initdb, SIGKILL);
    waitpid(initdb, nullptr, 0);
  }
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("initdb failed (wait status ", status, "): ", LogTail(server->log_)));
  }
  absl::Status launched;
  // A port found free may be taken before the server binds it: try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    server->port_ = proc::FreeLoopbackPort();
    if (server->port_ == 0) return absl::InternalError("no free loopback port");
    launched = server->Launch();
    if (launched.ok()) return server;
  }
  return launched;
}

absl::Status PostgresServer::Launch() {
  const Credentials as{drop_privileges_, uid_, gid_};
  pid_ = Spawn({bin_dir_ + "/postgres", "-D", data_, "-k", dir_, "-h", "127.0.0.1", "-p",
                absl::StrCat(port_), "-c", "fsync=on", "-c", "synchronous_commit=on", "-c",
                "shared_buffers=16MB", "-c", "max_connections=50"},
               log_, dir_, as, SIGQUIT);
  if (pid_ < 0) return absl::InternalError("fork failed");
  const std::string conninfo = ConnectionString();
  const absl::Time end = absl::Now() + absl::Seconds(60);
  while (absl::Now() < end) {
    if (PQping(conninfo.c_str()) == PQPING_OK) return absl::OkStatus();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("postgres exited (wait status ", status,
                       ") before accepting connections: ", LogTail(log_)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  Stop(Shutdown::kImmediate).IgnoreError();
  return absl::DeadlineExceededError(
      absl::StrCat("postgres did not accept connections within 60 s: ", LogTail(log_)));
}

absl::Status PostgresServer::Stop(Shutdown how) {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, how == Shutdown::kFast ? SIGINT : SIGQUIT);
  int status = WaitFor(pid_, absl::Seconds(60));
  if (status == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return absl::DeadlineExceededError(
        absl::StrCat("postgres did not stop within 60 s; killed: ", LogTail(log_)));
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status PostgresServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("the server is running");
  return Launch();
}

PostgresServer::~PostgresServer() {
  Stop(Shutdown::kFast).IgnoreError();
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string PostgresServer::ConnectionString(const std::string& database) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=wxp dbname=", database);
}

std::string PostgresServer::Uri(const std::string& database) const {
  return absl::StrCat("postgresql://wxp@127.0.0.1:", port_, "/", database);
}

absl::StatusOr<std::string> PostgresServer::NewSchema(const std::string& hint) {
  std::string name = absl::StrCat("t", ++schemas_, "_");
  for (char c : hint) {
    name += std::isalnum(static_cast<unsigned char>(c)) ? std::tolower(c) : '_';
  }
  name.resize(std::min<size_t>(name.size(), 63));
  absl::StatusOr<std::unique_ptr<db::pg::Connection>> admin =
      db::pg::Connection::Open(ConnectionString());
  if (!admin.ok()) return admin.status();
  absl::Status s = (*admin)->Execute(absl::StrCat("CREATE SCHEMA ", name));
  if (!s.ok()) return s;
  return absl::StrCat(ConnectionString(), " options='-c search_path=", name, "'");
}

absl::StatusOr<PostgresServer*> SharedPostgresServer() {
  // Destroyed, and so stopped, when the test process exits.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  if (!server.ok()) return server.status();
  return server->get();
}

}  // namespace wxp::store::testing
