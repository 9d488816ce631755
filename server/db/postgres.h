// A thin RAII layer over libpq for the server's PostgreSQL store, the counterpart of
// sqlite.h: one connection with cached prepared statements, parameters and results as typed
// values, transactions that roll back unless committed, and schema migrations driven by a
// meta table. libpq-fe.h stays out of this header.
//
// Parameters are sent as text (bytes as binary), results read as text; numbers round-trip
// exactly (doubles are printed with 17 significant digits, and PostgreSQL prints the
// shortest exact form). Errors become absl::Status by SQLSTATE class (see StatusFromResult
// in postgres.cc); every message names the server (host:port, database, user) and never
// the password.
//
// Thread-safety: a Connection and its Results are used by one thread at a time; the store
// above it serialises access.
#ifndef WXP_SERVER_DB_POSTGRES_H_
#define WXP_SERVER_DB_POSTGRES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct pg_conn;
struct pg_result;

namespace wxp::db::pg {

// Positional parameters $1, $2, ... in the order added.
class Params {
 public:
  Params& Int(int64_t value);
  Params& Double(double value);
  Params& Bool(bool value);
  Params& Text(absl::string_view text);    // TEXT: no NUL bytes
  Params& Bytes(absl::string_view bytes);  // BYTEA, sent in binary

  size_t size() const { return values_.size(); }

 private:
  friend class Connection;
  std::vector<std::string> values_;
  std::vector<int> formats_;  // 0 text, 1 binary
};

// A query's rows. Columns are 0-based. Accessors assume the query selected the column type
// they read (a mismatch reads as 0 / false / ""): the store's queries are fixed.
class Result {
 public:
  Result(Result&&) noexcept = default;
  Result& operator=(Result&&) noexcept = default;
  ~Result();

  int rows() const;
  // Rows an INSERT/UPDATE/DELETE touched.
  int64_t affected() const;
  bool IsNull(int row, int col) const;
  int64_t Int(int row, int col) const;
  double Double(int row, int col) const;
  bool Bool(int row, int col) const;
  std::string Text(int row, int col) const;
  std::string Bytes(int row, int col) const;  // a BYTEA column

 private:
  friend class Connection;
  friend class Transaction;
  explicit Result(pg_result* r) : r_(r) {}
  struct Deleter {
    void operator()(pg_result* r) const;
  };
  std::unique_ptr<pg_result, Deleter> r_;
};

struct Migration {
  int version;      // 1, 2, ...: applied in order
  std::string sql;  // one or more statements
};

class Connection {
 public:
  // Connects with a libpq connection string ("host=... port=... dbname=..." or a
  // postgresql:// URI) and sets synchronous_commit=on for this session, so a COMMIT returns
  // only once its WAL is flushed. `session_sql` (e.g. "SET lock_timeout = 1000") runs after
  // that, on this connection and again on every reconnection. Unavailable naming host:port
  // if the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& conninfo,
                                                          const std::string& session_sql = "");
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one or more statements without parameters (DDL, BEGIN, SAVEPOINT ...).
  absl::Status Execute(absl::string_view sql);
  // Runs `sql` with `params`, prepared once per connection and reused.
  absl::StatusOr<Result> Query(const std::string& sql, const Params& params = Params());

  // False once the server closed the connection or it broke (a restart of PostgreSQL).
  bool Broken() const;
  // Reconnects a broken connection (prepared statements are prepared again on next use).
  absl::Status Reconnect();

  // Brings the schema to the newest migration in one transaction, under an advisory lock so
  // that servers starting together migrate once: creates `meta` (version,
  // compatible_version), applies the missing migrations in order. FailedPrecondition if the
  // database is newer than this binary understands (its compatible_version exceeds the
  // newest migration here).
  absl::Status Migrate(const std::vector<Migration>& migrations, int compatible_version);
  absl::StatusOr<int> SchemaVersion();

  // "host:port/dbname as user": how messages name this server.
  const std::string& description() const { return description_; }

 private:
  friend class Transaction;
  Connection(pg_conn* conn, std::string description, std::string session_sql)
      : conn_(conn), description_(std::move(description)), session_sql_(std::move(session_sql)) {}
  absl::Status SetUpSession();
  absl::Status StatusFromResult(const pg_result* r, absl::string_view what) const;
  absl::Status ConnectionError(absl::string_view what) const;

  pg_conn* conn_;
  std::string description_;
  std::string session_sql_;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
};

// BEGIN on construction; ROLLBACK on destruction unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(Connection* conn);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const absl::Status& status() const { return begin_status_; }
  bool ok() const { return begin_status_.ok(); }
  absl::Status Commit();
  // True once COMMIT was sent: if it then failed, whether it took effect is unknown.
  bool commit_sent() const { return commit_sent_; }

 private:
  Connection* conn_;
  absl::Status begin_status_;
  bool commit_sent_ = false;
  bool done_ = false;
};

}  // namespace wxp::db::pg

#endif  // WXP_SERVER_DB_POSTGRES_H_
