#include "server/db/sqlite.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace wxp::db {

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), cached_(other.cached_), bind_rc_(other.bind_rc_) {
  other.stmt_ = nullptr;
}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  if (cached_) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
}

Statement& Statement::Bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::Bind(int index, absl::string_view text) {
  const int rc =
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::BindBlob(int index, absl::string_view bytes) {
  const int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::BindNull(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) return db_->StatusFromCode(bind_rc_, "bind");
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->StatusFromCode(rc, sqlite3_sql(stmt_));
}

absl::Status Statement::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::ColumnInt(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }

std::string Statement::ColumnText(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  return p == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(p),
                                    static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::string Statement::ColumnBlob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  return p == nullptr ? std::string()
                      : std::string(static_cast<const char*>(p),
                                    static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

// ---- Database ----

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const Options& options) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(options.path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = absl::StrCat("cannot open database ", options.path, ": ",
                                         raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc));
    sqlite3_close(raw);
    return absl::UnavailableError(msg);
  }
  std::unique_ptr<Database> db(new Database(raw, options.path));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  const char* sync = options.synchronous == Synchronous::kFull     ? "FULL"
                     : options.synchronous == Synchronous::kNormal ? "NORMAL"
                                                                   : "OFF";
  absl::Status s = db->Execute(absl::StrCat("PRAGMA foreign_keys=ON; PRAGMA synchronous=", sync));
  if (!s.ok()) return s;
  if (options.wal && options.path != ":memory:") {
    absl::StatusOr<Statement> mode = db->Prepare("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return mode.status();
    absl::StatusOr<bool> row = mode->Step();
    if (!row.ok()) return row.status();
    if (!*row || mode->ColumnText(0) != "wal") {
      return absl::UnavailableError(absl::StrCat("cannot switch ", options.path, " to WAL mode"));
    }
  }
  return db;
}

Database::~Database() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

absl::Status Database::StatusFromCode(int rc, absl::string_view what) const {
  const std::string msg =
      absl::StrCat(path_, ": ", what, ": ", sqlite3_errstr(rc), " (", sqlite3_errmsg(db_), ")");
  switch (rc & 0xFF) {
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(msg);
    case SQLITE_FULL:
      // SQLite's own words ("database or disk is full") name neither which disk nor what
      // to do; the operator needs both. UNAVAILABLE: it passes once space is freed, so
      // clients retry (RESOURCE_EXHAUSTED is for limits no retry passes; proto/wxp.proto).
      return absl::UnavailableError(
          absl::StrCat("the disk holding ", path_,
                       " is full: nothing was recorded; free space on the server and retry"));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status Database::Error(absl::string_view what) const {
  return StatusFromCode(sqlite3_extended_errcode(db_), what);
}

absl::Status Database::Execute(absl::string_view sql) {
  const std::string owned(sql);
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return absl::OkStatus();
  absl::Status s = StatusFromCode(rc, err != nullptr ? err : "exec");
  sqlite3_free(err);
  return s;
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return StatusFromCode(rc, absl::StrCat("prepare '", sql, "'"));
  return Statement(this, stmt, /*cached=*/false);
}

absl::StatusOr<Statement> Database::Cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return StatusFromCode(rc, absl::StrCat("prepare '", sql, "'"));
    it = cache_.emplace(sql, stmt).first;
  }
  return Statement(this, it->second, /*cached=*/true);
}

int64_t Database::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int Database::Changes() const { return sqlite3_changes(db_); }

absl::StatusOr<int> Database::SchemaVersion() {
  absl::Status s = Execute(
      "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)");
  if (!s.ok()) return s;
  absl::StatusOr<Statement> q = Prepare("SELECT value FROM meta WHERE key = 'version'");
  if (!q.ok()) return q.status();
  absl::StatusOr<bool> row = q->Step();
  if (!row.ok()) return row.status();
  return *row ? static_cast<int>(q->ColumnInt(0)) : 0;
}

absl::Status Database::Migrate(const std::vector<Migration>& migrations, int compatible_version) {
  absl::StatusOr<int> current = SchemaVersion();
  if (!current.ok()) return current.status();
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  if (*current > newest) {
    absl::StatusOr<Statement> q =
        Prepare("SELECT value FROM meta WHERE key = 'compatible_version'");
    if (!q.ok()) return q.status();
    absl::StatusOr<bool> row = q->Step();
    if (!row.ok()) return row.status();
    const int compatible = *row ? static_cast<int>(q->ColumnInt(0)) : *current;
    if (compatible > newest) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, " has schema version ", *current, " (compatible with ", compatible,
                       "), newer than this binary's ", newest, ": upgrade wxp-server"));
    }
    return absl::OkStatus();
  }
  for (const Migration& m : migrations) {
    if (m.version <= *current) continue;
    Transaction txn(this);
    if (!txn.ok()) return txn.status();
    absl::Status s = Execute(m.sql);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("migration ", m.version, ": ", s.message()));
    }
    s = Execute(absl::StrCat("INSERT INTO meta (key, value) VALUES ('version', ", m.version,
                             ") ON CONFLICT(key) DO UPDATE SET value = excluded.value;"
                             "INSERT INTO meta (key, value) VALUES ('compatible_version', ",
                             compatible_version,
                             ") ON CONFLICT(key) DO UPDATE SET value = excluded.value;"));
    if (!s.ok()) return s;
    s = txn.Commit();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Database::IntegrityCheck() {
  absl::StatusOr<Statement> q = Prepare("PRAGMA integrity_check");
  if (!q.ok()) return q.status();
  std::string report;
  for (;;) {
    absl::StatusOr<bool> row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (!report.empty()) report += "\n";
    report += q->ColumnText(0);
  }
  return report;
}

// ---- Transaction ----

Transaction::Transaction(Database* db) : db_(db) {
  begin_status_ = db_->Execute("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  if (begin_status_.ok() && !done_) db_->Execute("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  if (!begin_status_.ok()) return begin_status_;
  if (done_) return absl::FailedPreconditionError("transaction already finished");
  absl::Status s = db_->Execute("COMMIT");
  // A failed COMMIT leaves the transaction open; the destructor rolls it back.
  if (s.ok()) done_ = true;
  return s;
}

}  // namespace wxp::db
