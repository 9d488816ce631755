#include "server/db/postgres.h"

#include <postgresql/libpq-fe.h>

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace wxp::db::pg {
namespace {

// Serialises Migrate() across servers sharing a database ("WXP" and a 1).
constexpr int64_t kMigrationLockKey = 0x575850'0001;

// libpq's messages end in a newline and indent hints with a tab: one line reads better
// inside a Status.
std::string OneLine(absl::string_view message) {
  std::string s = absl::StrReplaceAll(message, {{"\n\t", " "}, {"\n", " "}});
  return std::string(absl::StripAsciiWhitespace(s));
}

// A query as messages show it: long column lists add nothing.
std::string Abbreviated(absl::string_view sql) {
  constexpr size_t kMax = 72;
  return sql.size() <= kMax ? std::string(sql) : absl::StrCat(sql.substr(0, kMax), "...");
}

}  // namespace

// ---- Params ----

Params& Params::Int(int64_t value) {
  values_.push_back(absl::StrCat(value));
  formats_.push_back(0);
  return *this;
}

Params& Params::Double(double value) {
  // 17 significant digits round-trip every double; PostgreSQL reads inf, -inf and nan too.
  values_.push_back(absl::StrFormat("%.17g", value));
  formats_.push_back(0);
  return *this;
}

Params& Params::Bool(bool value) {
  values_.push_back(value ? "true" : "false");
  formats_.push_back(0);
  return *this;
}

Params& Params::Text(absl::string_view text) {
  values_.emplace_back(text);
  formats_.push_back(0);
  return *this;
}

Params& Params::Bytes(absl::string_view bytes) {
  values_.emplace_back(bytes);
  formats_.push_back(1);
  return *this;
}

// ---- Result ----

void Result::Deleter::operator()(pg_result* r) const { PQclear(r); }
Result::~Result() = default;

int Result::rows() const { return PQntuples(r_.get()); }

int64_t Result::affected() const {
  int64_t n = 0;
  return absl::SimpleAtoi(PQcmdTuples(r_.get()), &n) ? n : 0;
}

bool Result::IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }

int64_t Result::Int(int row, int col) const {
  int64_t v = 0;
  return absl::SimpleAtoi(PQgetvalue(r_.get(), row, col), &v) ? v : 0;
}

double Result::Double(int row, int col) const {
  const absl::string_view text = PQgetvalue(r_.get(), row, col);
  if (text == "Infinity") return std::numeric_limits<double>::infinity();
  if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  double v = 0;
  return absl::SimpleAtod(text, &v) ? v : 0;
}

bool Result::Bool(int row, int col) const {
  return absl::string_view(PQgetvalue(r_.get(), row, col)) == "t";
}

std::string Result::Text(int row, int col) const {
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<size_t>(PQgetlength(r_.get(), row, col)));
}

std::string Result::Bytes(int row, int col) const {
  size_t n = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col)), &n);
  if (raw == nullptr) return std::string();
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

// ---- Connection ----

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& conninfo,
                                                             const std::string& session_sql) {
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (options == nullptr) {
    // libpq quotes the offending fragment, which may be a password: leave it out.
    std::string why = parse_error != nullptr ? OneLine(parse_error) : "out of memory";
    PQfreemem(parse_error);
    const size_t quote = why.find('"');
    if (quote != std::string::npos) why = absl::StrCat(why.substr(0, quote), "(...)");
    return absl::InvalidArgumentError(
        absl::StrCat("the PostgreSQL connection string does not parse: ", why));
  }
  PQconninfoFree(options);
  // A server that accepts TCP but never answers must not hang start-up; a connect_timeout
  // in the string overrides this (later keywords win, and the string is expanded last).
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {"10", conninfo.c_str(), nullptr};
  pg_conn* raw = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (raw == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  const char* host = PQhost(raw);
  const std::string where =
      host != nullptr && host[0] == '/'
          ? absl::StrCat("socket ", host, " port ", PQport(raw))
          : absl::StrCat(host != nullptr && host[0] != '\0' ? host : "localhost", ":", PQport(raw));
  std::string description =
      absl::StrCat(where, " (database ", PQdb(raw), ", user ", PQuser(raw), ")");
  std::unique_ptr<Connection> conn(new Connection(raw, std::move(description), session_sql));
  if (PQstatus(raw) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL at ",
                                               conn->description_, ": ",
                                               OneLine(PQerrorMessage(raw))));
  }
  // Durability must not depend on the server's configuration: a COMMIT returns once its WAL
  // is on disk. Notices (CREATE ... IF NOT EXISTS) would go to stderr.
  absl::Status s = conn->SetUpSession();
  if (!s.ok()) return s;
  return conn;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::Broken() const { return PQstatus(conn_) != CONNECTION_OK; }

absl::Status Connection::Reconnect() {
  prepared_.clear();  // the server forgot them with the session
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("cannot reconnect to PostgreSQL at ", description_,
                                               ": ", OneLine(PQerrorMessage(conn_))));
  }
  return SetUpSession();
}

absl::Status Connection::SetUpSession() {
  absl::Status s = Execute("SET synchronous_commit = on; SET client_min_messages = warning");
  if (!s.ok() || session_sql_.empty()) return s;
  return Execute(session_sql_);
}

absl::Status Connection::ConnectionError(absl::string_view what) const {
  return absl::UnavailableError(absl::StrCat("lost the connection to PostgreSQL at ", description_,
                                             " during ", what, ": ",
                                             OneLine(PQerrorMessage(conn_))));
}

absl::Status Connection::StatusFromResult(const pg_result* r, absl::string_view what) const {
  if (r == nullptr || PQstatus(conn_) != CONNECTION_OK) return ConnectionError(what);
  const char* state_field = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const std::string state = state_field != nullptr ? state_field : "";
  const std::string msg = absl::StrCat(
      "PostgreSQL at ", description_, ": ", what, ": ", OneLine(PQresultErrorMessage(r)),
      state.empty() ? "" : " (SQLSTATE ", state, state.empty() ? "" : ")");
  if (state == "53100") {
    // As with SQLite: name the disk and what to do; UNAVAILABLE because it passes once
    // space is freed.
    return absl::UnavailableError(
        absl::StrCat("the disk holding the PostgreSQL database at ", description_,
                     " is full: nothing was recorded; free space on the database server and "
                     "retry"));
  }
  const absl::string_view cls = absl::string_view(state).substr(0, 2);
  if (cls == "23") return absl::FailedPreconditionError(msg);  // integrity constraint
  // Connection, resources, shutdown, serialization/deadlock, lock time-outs: retryable.
  if (cls == "08" || cls == "53" || cls == "57" || cls == "40" || state == "55P03") {
    return absl::UnavailableError(msg);
  }
  if (state == "42501") return absl::PermissionDeniedError(msg);
  if (state == "XX001" || state == "XX002") return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

absl::Status Connection::Execute(absl::string_view sql) {
  const std::string owned(sql);
  Result r(PQexec(conn_, owned.c_str()));
  const ExecStatusType st = r.r_ ? PQresultStatus(r.r_.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return absl::OkStatus();
  return StatusFromResult(r.r_.get(), Abbreviated(sql));
}

absl::StatusOr<Result> Connection::Query(const std::string& sql, const Params& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = absl::StrCat("wxp_", prepared_.size() + 1);
    Result r(PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr));
    if (!r.r_ || PQresultStatus(r.r_.get()) != PGRES_COMMAND_OK) {
      return StatusFromResult(r.r_.get(), absl::StrCat("prepare '", Abbreviated(sql), "'"));
    }
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  const int n = static_cast<int>(params.size());
  std::vector<const char*> values(n);
  std::vector<int> lengths(n);
  for (int i = 0; i < n; ++i) {
    values[i] = params.values_[i].c_str();
    lengths[i] = static_cast<int>(params.values_[i].size());
  }
  Result r(PQexecPrepared(conn_, it->second.c_str(), n, values.data(), lengths.data(),
                          params.formats_.data(), /*resultFormat=*/0));
  const ExecStatusType st = r.r_ ? PQresultStatus(r.r_.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  return StatusFromResult(r.r_.get(), Abbreviated(sql));
}

absl::StatusOr<int> Connection::SchemaVersion() {
  absl::StatusOr<Result> r = Query("SELECT value FROM meta WHERE key = 'version'");
  if (!r.ok()) return r.status();
  return r->rows() == 0 ? 0 : static_cast<int>(r->Int(0, 0));
}

absl::Status Connection::Migrate(const std::vector<Migration>& migrations, int compatible_version) {
  Transaction txn(this);
  if (!txn.ok()) return txn.status();
  absl::Status s = Execute(absl::StrCat(
      "SELECT pg_advisory_xact_lock(", kMigrationLockKey,
      "); CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value BIGINT NOT "
      "NULL)"));
  if (!s.ok()) return s;
  absl::StatusOr<Result> meta = Query("SELECT key, value FROM meta ORDER BY key");
  if (!meta.ok()) return meta.status();
  int current = 0, compatible = 0;
  for (int i = 0; i < meta->rows(); ++i) {
    if (meta->Text(i, 0) == "version") current = static_cast<int>(meta->Int(i, 1));
    if (meta->Text(i, 0) == "compatible_version") compatible = static_cast<int>(meta->Int(i, 1));
  }
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  if (current > newest) {
    if (compatible > newest) {
      return absl::FailedPreconditionError(
          absl::StrCat("the PostgreSQL database at ", description_, " has schema version ", current,
                       " (compatible with ", compatible, "), newer than this binary's ", newest,
                       ": upgrade wxp-server"));
    }
    return txn.Commit();
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    s = Execute(m.sql);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("migration ", m.version, ": ", s.message()));
    }
    current = m.version;
  }
  Params p;
  p.Int(current).Int(compatible_version);
  absl::StatusOr<Result> set = Query(
      "INSERT INTO meta (key, value) VALUES ('version', $1), ('compatible_version', $2) "
      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      p);
  if (!set.ok()) return set.status();
  return txn.Commit();
}

// ---- Transaction ----

Transaction::Transaction(Connection* conn) : conn_(conn) {
  begin_status_ = conn_->Execute("BEGIN");
}

Transaction::~Transaction() {
  if (begin_status_.ok() && !done_) conn_->Execute("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  if (!begin_status_.ok()) return begin_status_;
  if (done_) return absl::FailedPreconditionError("transaction already finished");
  commit_sent_ = true;
  Result r(PQexec(conn_->conn_, "COMMIT"));
  done_ = true;  // committed, rolled back or lost: never to be rolled back by us
  if (!r.r_ || PQresultStatus(r.r_.get()) != PGRES_COMMAND_OK) {
    return conn_->StatusFromResult(r.r_.get(), "COMMIT");
  }
  // COMMIT of a transaction that hit an error answers ROLLBACK, not an error.
  if (absl::string_view(PQcmdStatus(r.r_.get())) != "COMMIT") {
    return absl::InternalError(absl::StrCat("PostgreSQL at ", conn_->description_,
                                            ": the transaction was aborted and rolled back"));
  }
  return absl::OkStatus();
}

}  // namespace wxp::db::pg
