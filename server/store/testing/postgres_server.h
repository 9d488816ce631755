// A throwaway PostgreSQL server for tests: Debian's postgresql binaries, a fresh cluster in a
// temporary directory, listening on a free loopback port with trust authentication.
//
// PostgreSQL refuses to run as root. When the test runs as root (as CI does), initdb and
// postgres run as the `postgres` system user, which Debian's postgresql package creates
// (deploy/install-deps.sh installs it), or `nobody` where that user is missing; the cluster
// then lives in /tmp (a directory that user can reach), never under the test's own temporary
// directory. Otherwise they run as the test's user.
//
// The server is a child of the test process, asked to die with it (SIGQUIT from the kernel
// when the thread that started it exits): start it from the main thread, or from a thread
// that outlives it.
#ifndef WXP_SERVER_STORE_TESTING_POSTGRES_SERVER_H_
#define WXP_SERVER_STORE_TESTING_POSTGRES_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace wxp::store::testing {

class PostgresServer {
 public:
  // Runs initdb and starts the server; returns once it accepts connections (bounded: an
  // error with the server's log if it does not within 60 s).
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  // Stops the server (fast shutdown) and removes its directory.
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  enum class Shutdown {
    kFast,       // SIGINT: sessions are ended, a clean checkpoint is written
    kImmediate,  // SIGQUIT: no checkpoint, as a crash; the next start runs WAL recovery
  };
  // Stops the server and waits for it (bounded); a no-op if it is not running.
  absl::Status Stop(Shutdown how);
  // Starts the stopped server again, on the same directory and port.
  absl::Status Restart();

  int port() const { return port_; }
  // A libpq connection string for `database` on this server, as keywords and as a URI
  // (what wxp-server's --store takes).
  std::string ConnectionString(const std::string& database = "postgres") const;
  std::string Uri(const std::string& database = "postgres") const;
  // An empty place for one test's tables: a new schema named after `hint` (made unique and
  // lower case) in the `postgres` database, and a connection string whose search_path is
  // that schema. As isolated as a database of its own for the store (which names no
  // schema), and far cheaper: CREATE DATABASE copies and syncs ~8 MB each time.
  absl::StatusOr<std::string> NewSchema(const std::string& hint);
  const std::string& log_path() const { return log_; }

 private:
  PostgresServer() = default;
  absl::Status Launch();

  std::string bin_dir_, dir_, data_, log_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  bool drop_privileges_ = false;
  int port_ = 0;
  pid_t pid_ = -1;
  int schemas_ = 0;
};

// One server per test process, started on first use and stopped at exit.
absl::StatusOr<PostgresServer*> SharedPostgresServer();

}  // namespace wxp::store::testing

#endif  // WXP_SERVER_STORE_TESTING_POSTGRES_SERVER_H_
