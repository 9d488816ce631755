// The store contract (testing/store_contract.h) on a real PostgreSQL server, and what the
// PostgreSQL store promises beyond it: acknowledged updates survive a crash of PostgreSQL,
// the store outlives a restart of it, a newer schema is refused, and connection errors name
// the server but never the password. The server is the test process's own
// (testing/postgres_server.h); tests that crash or stop it start it again before they end.
#include "server/store/postgres_store.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/db/postgres.h"
#include "server/store/testing/postgres_server.h"
#include "server/store/testing/store_contract.h"

namespace wxp::store {
namespace {

using testing::Audit;
using testing::Eval;
using testing::PostgresServer;
using testing::SharedPostgresServer;
using testing::StoreContractTest;
using testing::StoreFactory;
using testing::Swarm;

absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const std::string& conninfo) {
  return PostgresStore::Open({conninfo});
}

// A fresh schema on the test process's server.
std::string NewSchema(const std::string& hint) {
  absl::StatusOr<PostgresServer*> server = SharedPostgresServer();
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return "";
  absl::StatusOr<std::string> conninfo = (*server)->NewSchema(hint);
  EXPECT_TRUE(conninfo.ok()) << conninfo.status();
  return conninfo.ok() ? *conninfo : "";
}

std::unique_ptr<SwarmStore> MakePostgres(const std::string& tag) {
  const std::string conninfo = NewSchema(tag);
  if (conninfo.empty()) return nullptr;
  auto store = Open(conninfo);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Postgres, StoreContractTest,
                         ::testing::Values(StoreFactory{"postgres", MakePostgres}),
                         [](const ::testing::TestParamInfo<StoreFactory>& info) {
                           return info.param.name;
                         });

SwarmUpdate Report(int particle, int iteration) {
  SwarmUpdate u;
  u.swarm = "s";
  u.evaluation = Eval(particle, iteration, 0.25 + particle);
  u.audit.push_back(Audit("s", absl::StrCat("report ", particle, "/", iteration)));
  return u;
}

// What Apply acknowledged is there after PostgreSQL dies without a checkpoint (immediate
// shutdown: WAL recovery at the next start), for updates committed alone and in batches.
TEST(PostgresStoreTest, AcknowledgedUpdatesSurviveACrashOfPostgres) {
  auto server = SharedPostgresServer();
  ASSERT_TRUE(server.ok()) << server.status();
  auto conninfo = (*server)->NewSchema("durability");
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  constexpr int kReports = 20;
  {
    auto store = Open(*conninfo);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
    ASSERT_TRUE((*store)->Apply(Report(0, 0)).ok());
    // Queued together: one transaction for all of them.
    SwarmStore::Ticket last = 0;
    for (int i = 1; i < kReports; ++i) last = (*store)->Enqueue(Report(i, 0));
    ASSERT_TRUE((*store)->WaitDurable(last).ok());
    ASSERT_TRUE((*server)->Stop(PostgresServer::Shutdown::kImmediate).ok());
  }
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->log_path();
  auto store = Open(*conninfo);
  ASSERT_TRUE(store.ok()) << store.status();
  auto evaluations = (*store)->ListEvaluations("s");
  ASSERT_TRUE(evaluations.ok()) << evaluations.status();
  ASSERT_EQ(evaluations->size(), size_t{kReports});
  for (int i = 0; i < kReports; ++i) EXPECT_EQ((*evaluations)[i], Eval(i, 0, 0.25 + i));
  EXPECT_EQ((*store)->ListAudit("s")->size(), size_t{kReports + 1});
  EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
}

// The store's connection dies with PostgreSQL; the next call reconnects. While PostgreSQL
// is down, calls fail with Unavailable naming the server, and the store recovers once it is
// back.
TEST(PostgresStoreTest, AStoreOutlivesARestartOfPostgres) {
  auto server = SharedPostgresServer();
  ASSERT_TRUE(server.ok()) << server.status();
  auto conninfo = (*server)->NewSchema("restart");
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  auto store = Open(*conninfo);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateSwarm(Swarm("s"), Audit("s", "create")).ok());
  ASSERT_TRUE((*store)->Apply(Report(0, 0)).ok());

  ASSERT_TRUE((*server)->Stop(PostgresServer::Shutdown::kImmediate).ok());
  ASSERT_TRUE((*server)->Restart().ok());
  EXPECT_TRUE((*store)->Apply(Report(1, 0)).ok());
  EXPECT_EQ((*store)->ListEvaluations("s")->size(), 2u);

  ASSERT_TRUE((*server)->Stop(PostgresServer::Shutdown::kFast).ok());
  const absl::Status down = (*store)->Apply(Report(2, 0));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_NE(down.message().find(absl::StrCat("127.0.0.1:", (*server)->port())), std::string::npos)
      << down;
  EXPECT_EQ((*store)->GetSwarm("s").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*server)->Restart().ok());
  (*store)->ResumeAfterFailure();
  EXPECT_TRUE((*store)->Apply(Report(2, 0)).ok());
  EXPECT_EQ((*store)->ListEvaluations("s")->size(), 3u);
}

// Sets the stored schema version as a newer server would have left it.
void SetSchemaVersion(const std::string& conninfo, int version, int compatible) {
  auto conn = db::pg::Connection::Open(conninfo);
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE((*conn)
                  ->Execute(absl::StrCat("UPDATE meta SET value = ", version,
                                         " WHERE key = 'version'; UPDATE meta SET value = ",
                                         compatible, " WHERE key = 'compatible_version'"))
                  .ok());
}

TEST(PostgresStoreTest, ANewerIncompatibleSchemaIsRefused) {
  const std::string conninfo = NewSchema("newer_schema");
  ASSERT_TRUE(Open(conninfo).ok());
  SetSchemaVersion(conninfo, 99, 99);
  auto store = Open(conninfo);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("schema version 99"), std::string::npos)
      << store.status();
  EXPECT_NE(store.status().message().find("upgrade wxp-server"), std::string::npos)
      << store.status();
}

TEST(PostgresStoreTest, ANewerCompatibleSchemaIsAccepted) {
  const std::string conninfo = NewSchema("compatible_schema");
  ASSERT_TRUE(Open(conninfo).ok());
  SetSchemaVersion(conninfo, 99, 1);
  auto store = Open(conninfo);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->ListSwarms().ok());
}

// Nothing listens on a bound socket that was never listen()ed on: connecting is refused.
TEST(PostgresStoreTest, ARefusedConnectionNamesTheServerButNotThePassword) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  auto store = Open(absl::StrCat("postgresql://wxp:s3cret-pw@127.0.0.1:", port, "/wxp"));
  close(fd);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  const std::string message(store.status().message());
  EXPECT_NE(message.find(absl::StrCat("127.0.0.1:", port)), std::string::npos) << message;
  EXPECT_NE(message.find("refused"), std::string::npos) << message;
  EXPECT_EQ(message.find("s3cret-pw"), std::string::npos) << message;

  auto bad = Open("host=127.0.0.1 password=s3cret-pw nonsense");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("s3cret-pw"), std::string::npos) << bad.status();
}

// As with SQLite: a role the server does not know is refused when read.
TEST(PostgresStoreTest, AnUnknownStoredRoleIsDataLoss) {
  const std::string conninfo = NewSchema("role");
  auto store = Open(conninfo);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->TouchClient({"firm-a", Role::kAgent}, 10).ok());
  ASSERT_TRUE((*store)->TouchClient({"audit-1", Role::kAuditor}, 10).ok());
  auto conn = db::pg::Connection::Open(conninfo);
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE(
      (*conn)->Execute("UPDATE clients SET role = 'wizard' WHERE identity = 'firm-a'").ok());
  EXPECT_EQ((*store)->GetClient("audit-1")->client.role, Role::kAuditor);
  absl::StatusOr<ClientRecord> bad = (*store)->GetClient("firm-a");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("unknown role 'wizard'"), std::string::npos)
      << bad.status();
  EXPECT_EQ((*store)->ListClients().status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace wxp::store
