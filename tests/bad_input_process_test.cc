// SPEC 5.4 over the wire, against the real wxp-server binary: every refusal gets its
// specific status code and a message, and leaves the SQLite database and the blob store
// exactly as they were (compared table by table and file by file). An identical retry of a
// report is acknowledged as a duplicate, and changes nothing either.
#include <signal.h>
#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/sha256.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/processes.h"

namespace wxp {
namespace {
namespace fs = std::filesystem;
using grpc::StatusCode;

Schema TestSchema() { return Schema({{"m.lora_A.weight", DType::kF32, {4, 8}}}); }

std::string Blob(float value, Schema schema = TestSchema()) {
  Adapter a;
  a.values.assign(schema.total_params(), value);
  a.schema = std::move(schema);
  return *SerializeAdapter(a);
}

// Every table except `clients` (its last_seen column records that someone called, which a
// refused call did) as text, plus every stored blob with its hash.
std::string Snapshot(const std::string& dir) {
  std::string out;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2((dir + "/wxp.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  std::vector<std::string> tables;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", -1, &st,
                     nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  }
  sqlite3_finalize(st);
  for (const std::string& t : tables) {
    if (t == "clients") continue;
    absl::StrAppend(&out, "[", t, "]\n");
    sqlite3_prepare_v2(db, ("SELECT * FROM " + t).c_str(), -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const void* b = sqlite3_column_blob(st, c);
        absl::StrAppend(
            &out, std::string(static_cast<const char*>(b ? b : ""), sqlite3_column_bytes(st, c)),
            "|");
      }
      out += "\n";
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  std::vector<std::string> blobs;
  for (const auto& f : fs::recursive_directory_iterator(dir + "/blobs/blobs")) {
    if (f.is_regular_file()) {
      blobs.push_back(f.path().filename().string() + "=" + *Sha256File(f.path().string()));
    }
  }
  std::sort(blobs.begin(), blobs.end());
  for (const auto& b : blobs) absl::StrAppend(&out, b, "\n");
  return out;
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/bad_input";
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string config = dir_ + "/server.textproto";
    std::ofstream(config) << "limits { max_blob_bytes: 100000 max_chunk_bytes: 65536 }\n";
    server_ = std::make_unique<proc::ServerProcess>(
        dir_ + "/data", std::vector<std::string>{"--plaintext", "--config=" + config});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    admin_ = Connect("ops", Role::kAdmin);
    a_ = Connect("firm-a", Role::kAgent);
    b_ = Connect("firm-b", Role::kAgent);
  }
  void TearDown() override { server_->Kill(SIGTERM); }

  std::unique_ptr<client::Connection> Connect(const std::string& name, Role role) {
    client::ConnectionOptions o;
    o.server_address = server_->address();
    o.plaintext = true;
    o.identity = name;
    o.role = role;
    return *client::Connection::Open(o, absl::Now());
  }

  grpc::Status Upload(client::Connection& c, const std::string& bytes, std::string id = "",
                      uint64_t first_offset = 0, size_t chunk = 1000) {
    if (id.empty()) id = Sha256Hex(bytes);
    auto ctx = c.NewContext();
    wxp::v1::UploadBlobResponse resp;
    auto w = c.agent().UploadBlob(ctx.get(), &resp);
    wxp::v1::UploadBlobRequest h;
    h.mutable_header()->set_blob_id(id);
    h.mutable_header()->set_total_size(bytes.size());
    w->Write(h);
    for (uint64_t off = first_offset; off < bytes.size(); off += chunk) {
      wxp::v1::UploadBlobRequest r;
      r.mutable_chunk()->set_offset(off);
      r.mutable_chunk()->set_data(bytes.substr(off, chunk));
      if (!w->Write(r)) break;
    }
    w->WritesDone();
    return w->Finish();
  }

  void CreateSwarm(const std::string& name, int min_experts) {
    wxp::v1::CreateSwarmRequest req;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        absl::StrCat("spec { name: '", name, "' mode: ASYNC min_experts: ", min_experts,
                     " utility { name: 'acc' weight: 1 min_value: 0 max_value: 1 } ",
                     "hyperparameters { pool_size: ", std::max(2, min_experts), " seed: 1 } }"),
        &req));
    wxp::v1::CreateSwarmResponse resp;
    grpc::Status s = admin_->admin().CreateSwarm(admin_->NewContext().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  wxp::v1::JoinRequest JoinReq(const std::string& swarm, const std::string& bytes) {
    wxp::v1::JoinRequest j;
    j.set_swarm(swarm);
    j.add_expert_blob_ids(Sha256Hex(bytes));
    j.set_capacity(1);
    return j;
  }

  wxp::v1::ReportRequest ReportReq(int particle, int k, const std::string& blob, double acc) {
    wxp::v1::ReportRequest r;
    r.set_swarm("s");
    r.set_particle_id(particle);
    r.set_iteration(k);
    r.set_position_blob_id(blob);
    (*r.mutable_scores())["acc"] = acc;
    return r;
  }

  // Runs `call`, expects `code`, a message, and no change to the state on disk.
  template <typename F>
  void ExpectRefused(const std::string& what, StatusCode code, F call) {
    const std::string before = Snapshot(dir_ + "/data");
    grpc::Status s = call();
    EXPECT_EQ(s.error_code(), code) << what << ": " << s.error_message();
    EXPECT_FALSE(s.error_message().empty()) << what;
    EXPECT_EQ(Snapshot(dir_ + "/data"), before) << what << " changed the state";
  }

  std::string dir_;
  std::unique_ptr<proc::ServerProcess> server_;
  std::unique_ptr<client::Connection> admin_, a_, b_;
};

TEST_F(BadInputTest, EveryRefusalHasItsCodeAndChangesNothing) {
  // A running swarm "s": firm-a hosts particle 0, firm-b particle 1, both reported
  // iteration 0. A pending swarm "p" still takes joins.
  CreateSwarm("s", 2);
  CreateSwarm("p", 5);
  const std::string xa = Blob(0.1f), xb = Blob(0.5f);
  // The pool orders experts by blob id: firm-a's must sort first to be particle 0.
  ASSERT_LT(Sha256Hex(xa), Sha256Hex(xb));
  ASSERT_TRUE(Upload(*a_, xa).ok());
  ASSERT_TRUE(Upload(*b_, xb).ok());
  wxp::v1::JoinResponse jr;
  ASSERT_TRUE(a_->agent().Join(a_->NewContext().get(), JoinReq("s", xa), &jr).ok());
  ASSERT_TRUE(b_->agent().Join(b_->NewContext().get(), JoinReq("s", xb), &jr).ok());
  wxp::v1::ReportResponse rr;
  ASSERT_TRUE(
      a_->agent().Report(a_->NewContext().get(), ReportReq(0, 0, Sha256Hex(xa), 0.2), &rr).ok());
  ASSERT_TRUE(
      b_->agent().Report(b_->NewContext().get(), ReportReq(1, 0, Sha256Hex(xb), 0.4), &rr).ok());
  wxp::v1::GetTargetsRequest tr;
  tr.set_swarm("s");
  tr.set_particle_id(0);
  tr.set_iteration(1);
  wxp::v1::GetTargetsResponse t;
  ASSERT_TRUE(a_->agent().GetTargets(a_->NewContext().get(), tr, &t).ok());
  ASSERT_EQ(t.status(), wxp::v1::GetTargetsResponse::READY);
  const std::string moved = Blob(0.3f);

  auto targets = [&](client::Connection& c, const std::string& swarm, int particle, int k) {
    wxp::v1::GetTargetsRequest r;
    r.set_swarm(swarm);
    r.set_particle_id(particle);
    r.set_iteration(k);
    return c.agent().GetTargets(c.NewContext().get(), r, &t);
  };
  auto report = [&](client::Connection& c, wxp::v1::ReportRequest r) {
    return c.agent().Report(c.NewContext().get(), r, &rr);
  };
  auto join = [&](wxp::v1::JoinRequest j) {
    return a_->agent().Join(a_->NewContext().get(), j, &jr);
  };

  ExpectRefused("unknown swarm", StatusCode::NOT_FOUND, [&] { return targets(*a_, "nope", 0, 1); });
  ExpectRefused("unknown particle", StatusCode::NOT_FOUND, [&] { return targets(*a_, "s", 9, 1); });
  ExpectRefused("another agent's particle", StatusCode::PERMISSION_DENIED,
                [&] { return targets(*b_, "s", 0, 1); });
  ExpectRefused("another agent's report", StatusCode::PERMISSION_DENIED,
                [&] { return report(*b_, ReportReq(0, 1, Sha256Hex(moved), 0.3)); });
  ExpectRefused("agent on the admin service", StatusCode::PERMISSION_DENIED, [&] {
    wxp::v1::SwarmControlRequest r;
    r.set_swarm("s");
    wxp::v1::SwarmStatus st;
    return a_->admin().StopSwarm(a_->NewContext().get(), r, &st);
  });
  ExpectRefused("future iteration", StatusCode::FAILED_PRECONDITION,
                [&] { return targets(*a_, "s", 0, 5); });
  ExpectRefused("report of an iteration not started", StatusCode::FAILED_PRECONDITION,
                [&] { return report(*b_, ReportReq(1, 1, Sha256Hex(moved), 0.3)); });
  ExpectRefused("NaN score", StatusCode::INVALID_ARGUMENT,
                [&] { return report(*a_, ReportReq(0, 1, Sha256Hex(moved), std::nan(""))); });
  ExpectRefused("score out of its range", StatusCode::INVALID_ARGUMENT,
                [&] { return report(*a_, ReportReq(0, 1, Sha256Hex(moved), 1.5)); });
  ExpectRefused("missing component", StatusCode::INVALID_ARGUMENT, [&] {
    auto r = ReportReq(0, 1, Sha256Hex(moved), 0.3);
    r.mutable_scores()->clear();
    (*r.mutable_scores())["other"] = 0.3;
    return report(*a_, r);
  });
  ExpectRefused("duplicate report, different payload", StatusCode::ALREADY_EXISTS,
                [&] { return report(*a_, ReportReq(0, 0, Sha256Hex(xa), 0.9)); });
  {
    const std::string before = Snapshot(dir_ + "/data");
    ASSERT_TRUE(report(*a_, ReportReq(0, 0, Sha256Hex(xa), 0.2)).ok());
    EXPECT_TRUE(rr.duplicate());
    EXPECT_EQ(Snapshot(dir_ + "/data"), before) << "an identical retry changed the state";
  }

  // Joins (pending swarm "p"): not uploaded, another schema, non-finite weights, and a
  // join after the pool exists.
  const std::string other_schema = Blob(0.1f, Schema({{"m.lora_A.weight", DType::kF32, {8, 4}}}));
  Adapter nan_adapter;
  nan_adapter.schema = TestSchema();
  nan_adapter.values.assign(32, 0.1f);
  nan_adapter.values[7] = std::numeric_limits<float>::infinity();
  const std::string non_finite = *SerializeAdapter(nan_adapter);
  ASSERT_TRUE(Upload(*a_, other_schema).ok());
  ASSERT_TRUE(Upload(*a_, non_finite).ok());
  ASSERT_TRUE(join(JoinReq("p", xa)).ok());  // fixes p's schema
  ExpectRefused("expert not uploaded", StatusCode::NOT_FOUND,
                [&] { return join(JoinReq("p", Blob(0.77f))); });
  ExpectRefused("schema mismatch", StatusCode::INVALID_ARGUMENT,
                [&] { return join(JoinReq("p", other_schema)); });
  ExpectRefused("non-finite weights", StatusCode::INVALID_ARGUMENT,
                [&] { return join(JoinReq("p", non_finite)); });
  ExpectRefused("join after the pool exists", StatusCode::FAILED_PRECONDITION,
                [&] { return join(JoinReq("s", other_schema)); });

  // Uploads: hash mismatch, over the size limit, chunk out of order, chunk too large.
  const std::string payload(5000, 'w');
  ExpectRefused("hash mismatch", StatusCode::INVALID_ARGUMENT,
                [&] { return Upload(*a_, payload, Sha256Hex("something else")); });
  ExpectRefused("blob over the size limit", StatusCode::RESOURCE_EXHAUSTED,
                [&] { return Upload(*a_, std::string(200000, 'x')); });
  ExpectRefused("chunk out of order", StatusCode::FAILED_PRECONDITION,
                [&] { return Upload(*a_, payload, "", /*first_offset=*/1000); });
  ExpectRefused("chunk over the limit", StatusCode::RESOURCE_EXHAUSTED,
                [&] { return Upload(*a_, std::string(90000, 'y'), "", 0, 90000); });
}

}  // namespace
}  // namespace wxp
