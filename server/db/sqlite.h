// A thin RAII layer over SQLite for the server's state store: typed binds and columns,
// cached prepared statements, transactions that roll back unless committed, and schema
// migrations driven by a meta table. sqlite3.h stays out of this header.
//
// Thread-safety: a Database and its Statements are used by one thread at a time; the store
// above it serialises access.
#ifndef WXP_SERVER_DB_SQLITE_H_
#define WXP_SERVER_DB_SQLITE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace wxp::db {

class Database;

// A prepared statement. Binds are 1-based, columns 0-based (as in SQLite). A statement from
// Database::Cached() returns to the cache (reset, bindings cleared) when destroyed.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, double value);
  Statement& Bind(int index, absl::string_view text);       // TEXT
  Statement& BindBlob(int index, absl::string_view bytes);  // BLOB
  Statement& BindNull(int index);

  // Advances: true with a row available, false when done. Errors carry SQLite's message;
  // a constraint violation is FailedPrecondition, a full disk Unavailable (retry once space is
  // freed).
  absl::StatusOr<bool> Step();
  // Steps to completion, ignoring rows (INSERT/UPDATE/DELETE).
  absl::Status Run();

  int64_t ColumnInt(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  std::string ColumnBlob(int col) const;
  bool ColumnIsNull(int col) const;

 private:
  friend class Database;
  Statement(Database* db, sqlite3_stmt* stmt, bool cached)
      : db_(db), stmt_(stmt), cached_(cached) {}
  Database* db_;
  sqlite3_stmt* stmt_;
  bool cached_;
  int bind_rc_ = 0;  // first failing bind, reported by Step
};

struct Migration {
  int version;      // 1, 2, ...: applied in order, each in its own transaction
  std::string sql;  // one or more statements
};

class Database {
 public:
  enum class Synchronous { kOff, kNormal, kFull };
  struct Options {
    std::string path;  // a file, or ":memory:"
    bool wal = true;   // journal_mode=WAL (files only)
    // FULL: a committed transaction survives power loss. NORMAL (in WAL mode): it survives a
    // process crash (kill -9) but the last commits may be lost on power failure.
    Synchronous synchronous = Synchronous::kFull;
    int busy_timeout_ms = 5000;
  };

  // Opens (creating if needed) with foreign keys on. Internal/Unavailable with SQLite's
  // message naming the path on failure.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const Options& options);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows.
  absl::Status Execute(absl::string_view sql);
  // A new statement, finalized with it.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);
  // A statement prepared once per Database and reused: the hot path of the store.
  absl::StatusOr<Statement> Cached(const std::string& sql);

  int64_t LastInsertRowId() const;
  int Changes() const;

  // Brings the schema to the newest migration: creates a `meta` table (version,
  // compatible_version), applies missing migrations in order, each atomically with its
  // version bump. FailedPrecondition if the database is newer than this binary understands
  // (its compatible_version exceeds the newest migration here).
  absl::Status Migrate(const std::vector<Migration>& migrations, int compatible_version);
  absl::StatusOr<int> SchemaVersion();

  // "ok" when PRAGMA integrity_check finds nothing; otherwise its report.
  absl::StatusOr<std::string> IntegrityCheck();

  // Translates the last SQLite error into a Status, prefixed with `what`.
  absl::Status Error(absl::string_view what) const;
  absl::Status StatusFromCode(int rc, absl::string_view what) const;

 private:
  friend class Statement;
  explicit Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless Commit() succeeded.
class Transaction {
 public:
  // Check ok() before use: a failed BEGIN (database busy or full) leaves it inactive.
  explicit Transaction(Database* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const absl::Status& status() const { return begin_status_; }
  bool ok() const { return begin_status_.ok(); }
  absl::Status Commit();

 private:
  Database* db_;
  absl::Status begin_status_;
  bool done_ = false;
};

}  // namespace wxp::db

#endif  // WXP_SERVER_DB_SQLITE_H_
