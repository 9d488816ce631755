#include "server/db/sqlite.h"

#include <cstdio>

#include "gtest/gtest.h"

namespace wxp::db {
namespace {

std::string TempDb(const std::string& name) {
  const std::string path = ::testing::TempDir() + "/" + name + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return path;
}

std::unique_ptr<Database> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open({path});
  EXPECT_TRUE(db.ok()) << db.status();
  return *std::move(db);
}

const std::vector<Migration> kMigrations = {
    {1, "CREATE TABLE swarm (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"},
    {2,
     "CREATE TABLE particle (id INTEGER PRIMARY KEY, swarm_id INTEGER NOT NULL "
     "REFERENCES swarm(id), data BLOB, score REAL);"},
};

TEST(SqliteTest, OpensInWalModeWithForeignKeys) {
  auto db = OpenOrDie(TempDb("wal"));
  auto mode = db->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  ASSERT_TRUE(*mode->Step());
  EXPECT_EQ(mode->ColumnText(0), "wal");
  auto fk = db->Prepare("PRAGMA foreign_keys");
  ASSERT_TRUE(*fk->Step());
  EXPECT_EQ(fk->ColumnInt(0), 1);
  EXPECT_EQ(*db->IntegrityCheck(), "ok");
}

TEST(SqliteTest, MigratesOnceAndRefusesNewerDatabases) {
  const std::string path = TempDb("migrate");
  {
    auto db = OpenOrDie(path);
    ASSERT_TRUE(db->Migrate({kMigrations[0]}, 1).ok());
    EXPECT_EQ(*db->SchemaVersion(), 1);
    ASSERT_TRUE(db->Migrate(kMigrations, 1).ok());  // applies only migration 2
    EXPECT_EQ(*db->SchemaVersion(), 2);
    ASSERT_TRUE(db->Migrate(kMigrations, 1).ok());  // nothing left: no "table exists" error
  }
  {
    // An older binary that knows migration 1 only may open it: compatible_version is 1.
    auto db = OpenOrDie(path);
    EXPECT_TRUE(db->Migrate({kMigrations[0]}, 1).ok());
    // A database whose compatible_version is beyond what the binary knows is refused.
    ASSERT_TRUE(db->Execute("UPDATE meta SET value = 2 WHERE key = 'compatible_version'").ok());
    absl::Status s = db->Migrate({kMigrations[0]}, 1);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(s.message().find("upgrade wxp-server"), std::string::npos);
  }
}

TEST(SqliteTest, FailedMigrationChangesNothing) {
  auto db = OpenOrDie(TempDb("badmigration"));
  ASSERT_TRUE(db->Migrate({kMigrations[0]}, 1).ok());
  absl::Status s = db->Migrate({kMigrations[0], {2, "CREATE TABLE t (x); SELEC nonsense;"}}, 1);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("migration 2"), std::string::npos);
  EXPECT_EQ(*db->SchemaVersion(), 1);
  EXPECT_FALSE(db->Execute("INSERT INTO t VALUES (1)").ok());  // t was rolled back
}

TEST(SqliteTest, BindsAndColumnsRoundTrip) {
  auto db = OpenOrDie(TempDb("binds"));
  ASSERT_TRUE(db->Migrate(kMigrations, 1).ok());
  auto ins = db->Prepare("INSERT INTO swarm (name) VALUES (?)");
  ASSERT_TRUE(ins->Bind(1, absl::string_view("s1")).Run().ok());
  const int64_t swarm = db->LastInsertRowId();
  const std::string blob("a\0b\xff", 4);
  auto p = db->Cached("INSERT INTO particle (swarm_id, data, score) VALUES (?, ?, ?)");
  ASSERT_TRUE(p->Bind(1, swarm).BindBlob(2, blob).Bind(3, 0.25).Run().ok());
  auto q = db->Prepare("SELECT data, score, swarm_id FROM particle");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnBlob(0), blob);
  EXPECT_EQ(q->ColumnDouble(1), 0.25);
  EXPECT_EQ(q->ColumnInt(2), swarm);
  EXPECT_FALSE(*q->Step());
}

TEST(SqliteTest, CachedStatementsAreReusedAfterReset) {
  auto db = OpenOrDie(TempDb("cached"));
  ASSERT_TRUE(db->Migrate(kMigrations, 1).ok());
  for (const char* name : {"a", "b", "c"}) {
    auto s = db->Cached("INSERT INTO swarm (name) VALUES (?)");
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(s->Bind(1, absl::string_view(name)).Run().ok());
  }
  auto count = db->Cached("SELECT COUNT(*) FROM swarm");
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->ColumnInt(0), 3);
}

TEST(SqliteTest, ConstraintViolationsAreFailedPrecondition) {
  auto db = OpenOrDie(TempDb("constraints"));
  ASSERT_TRUE(db->Migrate(kMigrations, 1).ok());
  ASSERT_TRUE(db->Execute("INSERT INTO swarm (name) VALUES ('s')").ok());
  auto dup = db->Prepare("INSERT INTO swarm (name) VALUES ('s')");
  EXPECT_EQ(dup->Run().code(), absl::StatusCode::kFailedPrecondition);
  // Foreign keys are enforced: no particle of a swarm that does not exist.
  auto orphan = db->Prepare("INSERT INTO particle (swarm_id) VALUES (999)");
  EXPECT_EQ(orphan->Run().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SqliteTest, TransactionRollsBackUnlessCommitted) {
  const std::string path = TempDb("txn");
  auto db = OpenOrDie(path);
  ASSERT_TRUE(db->Migrate(kMigrations, 1).ok());
  {
    Transaction txn(db.get());
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(db->Execute("INSERT INTO swarm (name) VALUES ('lost')").ok());
  }
  {
    Transaction txn(db.get());
    ASSERT_TRUE(db->Execute("INSERT INTO swarm (name) VALUES ('kept')").ok());
    ASSERT_TRUE(txn.Commit().ok());
    EXPECT_FALSE(txn.Commit().ok());
  }
  // A second connection (another process, after a crash) sees exactly the committed row.
  auto other = OpenOrDie(path);
  auto q = other->Prepare("SELECT name FROM swarm ORDER BY id");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "kept");
  EXPECT_FALSE(*q->Step());
}

TEST(SqliteTest, OpenFailsWithAClearMessage) {
  auto db = Database::Open({"/nonexistent-dir/x.db"});
  EXPECT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("/nonexistent-dir/x.db"), std::string::npos);
}

TEST(SqliteTest, BadSqlNamesTheStatement) {
  auto db = OpenOrDie(TempDb("badsql"));
  auto s = db->Prepare("SELEC 1");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("SELEC 1"), std::string::npos);
}

}  // namespace
}  // namespace wxp::db
