// wxpctl against the real wxp-server binary over mutual TLS, with certificates made by
// `wxpctl certs`: every admin command, success and failure, while two in-test agents (on
// client/net, with their own agent certificates) drive a small swarm to its end. The
// wxpctl binary runs as a child process, so exit codes, stdout and stderr are what an
// operator sees. The server reads the example config of deploy/examples and wxpctl the
// example swarm spec, so both stay loadable by the real binaries.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/net/blob_transfer.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/swarm_move.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kDim = 96;
constexpr char kSwarm[] = "tiny";
constexpr char kExampleSwarm[] = "legal-assistant-q4";

std::string Runfile(const std::string& path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"), "/", path);
}

struct Result {
  int code = -1;
  std::string out, err;
};

// Runs `program args...` with `env` added to the environment (a value of "" unsets).
Result RunProgram(const std::string& program, const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env = {}) {
  const std::string base = absl::StrCat(::testing::TempDir(), "/run.", getpid());
  const std::string out_path = base + ".out", err_path = base + ".err";
  const pid_t pid = fork();
  if (pid == 0) {
    freopen(out_path.c_str(), "w", stdout);
    freopen(err_path.c_str(), "w", stderr);
    for (const auto& [k, v] : env) {
      if (v.empty()) {
        unsetenv(k.c_str());
      } else {
        setenv(k.c_str(), v.c_str(), 1);
      }
    }
    std::vector<char*> argv = {const_cast<char*>(program.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(out_path).value_or("");
  r.err = ReadFile(err_path).value_or("");
  return r;
}

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Polls `done` until it holds or `limit` passes. The limit only bounds a hung child: a
// sanitized or loaded machine starts processes seconds late, so waits are on the event.
bool WaitUntil(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return true;
}

bool FileContains(const std::string& path, const std::string& needle) {
  return ReadFile(path).value_or("").find(needle) != std::string::npos;
}

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

// The real server, mTLS, on a free loopback port.
class Server {
 public:
  ~Server() { Stop(SIGKILL); }
  // TLS with the certificates in `cert_dir`, or plaintext (loopback) when it is empty; on
  // `listen_port` (0: a free one). The port it listens on, 0 if it did not start.
  int Start(const std::string& data_dir, const std::string& cert_dir, int listen_port = 0) {
    const std::string port_file = data_dir + ".port";
    fs::remove(port_file);
    pid_ = fork();
    if (pid_ == 0) {
      const std::string bin = Runfile("server/app/wxp-server");
      // The example config supplies everything; the flags override what a test must.
      std::vector<std::string> args = {bin,
                                       "--config=" + Runfile("deploy/examples/server.textproto"),
                                       "--listen=127.0.0.1:" + std::to_string(listen_port),
                                       "--data_dir=" + data_dir, "--port_file=" + port_file};
      if (cert_dir.empty()) {
        args.push_back("--plaintext");
      } else {
        args.push_back("--tls_cert=" + cert_dir + "/server.crt");
        args.push_back("--tls_key=" + cert_dir + "/server.key");
        args.push_back("--tls_ca=" + cert_dir + "/ca.crt");
      }
      std::vector<char*> argv;
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      freopen((data_dir + ".log").c_str(), "w", stderr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    for (int i = 0; i < 400 && !fs::exists(port_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));  // process start-up
    }
    int port = 0;
    std::ifstream(port_file) >> port;
    return port;
  }
  int Stop(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

std::string Serialize(const std::vector<float>& v) {
  Adapter a;
  a.schema = Schema({{"m.lora_A.weight", DType::kF32, {8, 12}}});
  a.values = v;
  return *SerializeAdapter(a);
}

std::vector<float> Deserialize(const std::string& bytes) {
  return AdapterFromSafetensors(*SafetensorsFile::FromBytes(bytes)).values;
}

// What wxp-agent does, reduced to the protocol: upload experts, join, evaluate, move,
// report, upload when asked. Over client/net with the agent's own certificate.
class TinyAgent {
 public:
  TinyAgent(std::string name, int port, const std::string& cert_dir,
            const std::vector<float>* optimum)
      : name_(std::move(name)), optimum_(optimum), dir_(::testing::TempDir() + "/" + name_) {
    fs::create_directories(dir_);
    client::ConnectionOptions o;
    o.server_address = absl::StrCat("127.0.0.1:", port);
    o.tls.cert_file = cert_dir + "/" + name_ + ".crt";
    o.tls.key_file = cert_dir + "/" + name_ + ".key";
    o.tls.ca_file = cert_dir + "/ca.crt";
    o.role = Role::kAgent;
    auto conn = client::Connection::Open(o, absl::Now());
    EXPECT_TRUE(conn.ok()) << conn.status();
    conn_ = *std::move(conn);
  }

  absl::Status Join(const std::vector<std::vector<float>>& experts) {
    v1::JoinRequest j;
    j.set_swarm(kSwarm);
    j.set_capacity(3);
    j.set_adapter_config_json(R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16})");
    for (size_t i = 0; i < experts.size(); ++i) {
      const std::string path = absl::StrCat(dir_, "/expert", i, ".safetensors");
      if (absl::Status s = WriteFileAtomically(path, Serialize(experts[i])); !s.ok()) return s;
      auto up = client::UploadFile(*conn_, path, "", kSwarm);
      if (!up.ok()) return up.status();
      j.add_expert_blob_ids(up->blob_id);
    }
    v1::JoinResponse resp;
    return FromGrpc(conn_->agent().Join(conn_->NewContext().get(), j, &resp));
  }

  // Takes the assignment and reports the initial evaluations.
  absl::Status Init() {
    v1::GetAssignmentRequest r;
    r.set_swarm(kSwarm);
    v1::GetAssignmentResponse a;
    if (auto s = FromGrpc(conn_->agent().GetAssignment(conn_->NewContext().get(), r, &a));
        !s.ok()) {
      return s;
    }
    if (a.status() != v1::GetAssignmentResponse::ASSIGNED) {
      return absl::FailedPreconditionError("not assigned");
    }
    for (const auto& p : a.particles()) {
      Particle& mine = particles_[p.particle_id()];
      auto x = Fetch(p.initial_position_blob_id());
      if (!x.ok()) return x.status();
      mine.x = *x;
      mine.v.assign(kDim, 0.0f);
      if (p.initial_velocity().has_partner_blob_id()) {
        auto partner = Fetch(p.initial_velocity().partner_blob_id());
        if (!partner.ok()) return partner.status();
        Difference(partner->data(), mine.x.data(), mine.v.data(), kDim);
      }
      mine.p = mine.x;
      if (auto s = Report(p.particle_id(), 0, mine.x); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // One pass over the particles; false once every particle is done.
  absl::StatusOr<bool> Step() {
    bool alive = false;
    for (auto& [id, mine] : particles_) {
      if (mine.done) continue;
      alive = true;
      auto t = Targets(id, mine.iteration + 1);
      if (!t.ok()) return t.status();
      if (t->status() == v1::GetTargetsResponse::DONE) {
        mine.done = true;
        continue;
      }
      if (t->status() != v1::GetTargetsResponse::READY) continue;
      auto g = Fetch(t->global_best().blob_id());
      auto gw = Fetch(t->global_worst().blob_id());
      if (!g.ok()) return g.status();
      if (!gw.ok()) return gw.status();
      if (t->restart()) RestartParticle(mine.x.data(), mine.v.data(), mine.p.data(), kDim);
      const auto& k = t->coefficients();
      MoveParticle({static_cast<float>(k.a()), static_cast<float>(k.b()), static_cast<float>(k.c()),
                    static_cast<float>(k.d()), static_cast<float>(k.step())},
                   mine.x.data(), mine.v.data(), mine.p.data(), g->data(), gw->data(), kDim);
      mine.iteration = t->iteration();
      if (auto s = Report(id, mine.iteration, mine.x); !s.ok()) return s;
    }
    return alive;
  }

  absl::StatusOr<v1::GetTargetsResponse> Targets(int id, int iteration) {
    v1::GetTargetsRequest r;
    r.set_swarm(kSwarm);
    r.set_particle_id(id);
    r.set_iteration(iteration);
    v1::GetTargetsResponse t;
    absl::Status s = FromGrpc(conn_->agent().GetTargets(conn_->NewContext().get(), r, &t));
    if (!s.ok()) return s;
    return t;
  }

  // The blob's values, downloaded once (then cached in the agent's directory).
  absl::StatusOr<std::vector<float>> Fetch(const std::string& blob_id) {
    const std::string path = dir_ + "/" + blob_id;
    if (!fs::exists(path)) {
      auto d = client::DownloadToFile(*conn_, blob_id, path);
      if (!d.ok()) return d.status();
    }
    auto bytes = ReadFile(path);
    if (!bytes.ok()) return bytes.status();
    return Deserialize(*bytes);
  }

  void Disconnect() { conn_.reset(); }

  int first_particle() const { return particles_.begin()->first; }
  int next_iteration(int id) const { return particles_.at(id).iteration + 1; }

 private:
  struct Particle {
    std::vector<float> x, v, p;
    int iteration = 0;
    bool done = false;
  };

  absl::Status Report(int id, int iteration, const std::vector<float>& x) {
    const std::string bytes = Serialize(x);
    v1::ReportRequest r;
    r.set_swarm(kSwarm);
    r.set_particle_id(id);
    r.set_iteration(iteration);
    r.set_position_blob_id(Sha256Hex(bytes));
    (*r.mutable_scores())["closeness"] = NegativeRmsDistance(x, *optimum_);
    (*r.mutable_scores())["spare"] = 0;
    v1::ReportResponse resp;
    absl::Status s = FromGrpc(conn_->agent().Report(conn_->NewContext().get(), r, &resp));
    if (!s.ok()) return s;
    if (resp.new_personal_best()) particles_[id].p = x;
    if (resp.upload_requested()) {
      const std::string path = dir_ + "/" + r.position_blob_id();
      if (absl::Status w = WriteFileAtomically(path, bytes); !w.ok()) return w;
      auto up = client::UploadFile(*conn_, path, r.position_blob_id(), kSwarm);
      if (!up.ok()) return up.status();
    }
    return absl::OkStatus();
  }

  std::string name_;
  const std::vector<float>* optimum_;
  std::string dir_;
  std::unique_ptr<client::Connection> conn_;
  std::map<int, Particle> particles_;
};

class WxpctlAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/wxpctl_admin";
    fs::remove_all(root_);
    fs::create_directories(root_);
    wxpctl_ = Runfile("client/wxpctl");
  }

  Result Ctl(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    if (!env.count("WXPCTL_CONFIG")) env["WXPCTL_CONFIG"] = config_;
    return RunProgram(wxpctl_, args, env);
  }
  // A read command with --output json: exit 0 and the parsed document.
  json CtlJson(std::vector<std::string> args) {
    args.push_back("--output=json");
    Result r = Ctl(args);
    EXPECT_EQ(r.code, 0) << r;
    EXPECT_TRUE(json::accept(r.out)) << r;
    return json::accept(r.out) ? json::parse(r.out) : json();
  }
  // Exit 1, nothing on stdout, and stderr naming the server's refusal.
  void ExpectRefused(const std::vector<std::string>& args, const std::string& code,
                     const std::string& message_part) {
    Result r = Ctl(args);
    EXPECT_EQ(r.code, 1) << r;
    EXPECT_EQ(r.out, "") << r;
    EXPECT_EQ(r.err.rfind("wxpctl: ", 0), 0u) << r;
    EXPECT_NE(r.err.find(code), std::string::npos) << r;
    EXPECT_NE(r.err.find(message_part), std::string::npos) << r;
  }

  std::string root_, wxpctl_, config_;
};

TEST_F(WxpctlAdminTest, EveryCommandAgainstTheRealServerOverMutualTls) {
  // --- certificates, as an operator makes them.
  const std::string ca = root_ + "/ca", certs = root_ + "/certs";
  ASSERT_EQ(Ctl({"certs", "init-ca", "--dir", ca}).code, 0);
  for (const auto& [role, name] :
       std::vector<std::pair<std::string, std::string>>{{"server", "server"},
                                                        {"admin", "ops"},
                                                        {"agent", "firm-a"},
                                                        {"agent", "firm-b"},
                                                        {"auditor", "audit-1"}}) {
    Result r = Ctl({"certs", "issue", "--ca", ca, "--role", role, "--name", name, "--out", certs,
                    "--dns", "localhost", "--ip=127.0.0.1"});
    if (role != "server") {
      // Host names belong to server certificates only: a usage mistake the library refuses.
      EXPECT_EQ(r.code, 1) << r;
      r = Ctl({"certs", "issue", "--ca", ca, "--role", role, "--name", name, "--out", certs});
    }
    ASSERT_EQ(r.code, 0) << r;
    struct stat st;
    ASSERT_EQ(stat((certs + "/" + name + ".key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
    EXPECT_TRUE(fs::exists(certs + "/" + name + ".crt"));
  }
  EXPECT_TRUE(fs::exists(certs + "/ca.crt"));
  Result again =
      Ctl({"certs", "issue", "--ca", ca, "--role", "admin", "--name", "ops", "--out", certs});
  EXPECT_EQ(again.code, 1) << again;
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again;
  EXPECT_EQ(Ctl({"certs", "issue", "--ca", ca, "--role", "admin", "--name", "ops", "--out", certs,
                 "--force"})
                .code,
            0);
  EXPECT_EQ(Ctl({"certs", "init-ca", "--dir", ca}).code, 1);
  EXPECT_EQ(
      Ctl({"certs", "issue", "--ca", ca, "--role", "boss", "--name", "x", "--out", certs}).code, 2);
  // Another authority, whose admin the server must not trust.
  ASSERT_EQ(Ctl({"certs", "init-ca", "--dir", root_ + "/ca2"}).code, 0);
  ASSERT_EQ(Ctl({"certs", "issue", "--ca", root_ + "/ca2", "--role", "admin", "--name", "mallory",
                 "--out", root_ + "/other"})
                .code,
            0);

  // --- the server, and wxpctl's config file (paths relative to the file).
  Server server;
  const int port = server.Start(root_ + "/data", certs);
  ASSERT_GT(port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  config_ = root_ + "/wxpctl.conf";
  ASSERT_TRUE(WriteFileAtomically(config_, absl::StrCat("# test admin\nserver = ", address,
                                                        "\ntls_cert = certs/ops.crt\n"
                                                        "tls_key = certs/ops.key\n"
                                                        "tls_ca = certs/ca.crt\n"))
                  .ok());

  // --- create: the tiny swarm, and the annotated example spec as shipped.
  const std::string spec = root_ + "/tiny.textproto";
  ASSERT_TRUE(WriteFileAtomically(spec, absl::StrCat("name: '", kSwarm,
                                                     "'\n"
                                                     "min_experts: 3\n"
                                                     "mode: SYNC\n"
                                                     "utility { name: 'closeness' weight: 1 }\n"
                                                     "utility { name: 'spare' weight: 0 }\n"
                                                     "hyperparameters { pool_size: 4 seed: 11 "
                                                     "max_iterations: 4 patience: 10 }\n"))
                  .ok());
  Result created = Ctl({"swarm", "create", "--spec", spec});
  ASSERT_EQ(created.code, 0) << created;
  EXPECT_NE(created.out.find("swarm tiny created"), std::string::npos) << created;
  json example = CtlJson({"swarm", "create", "--spec", Runfile("deploy/examples/swarm.textproto")});
  EXPECT_EQ(example["spec"]["name"], kExampleSwarm);
  EXPECT_EQ(example["state"], "PENDING_EXPERTS");
  ExpectRefused({"swarm", "create", "--spec", spec}, "ALREADY_EXISTS", "tiny");
  ASSERT_TRUE(WriteFileAtomically(root_ + "/bad.textproto", "name: 'x' bogus_field: 1\n").ok());
  Result bad_spec = Ctl({"swarm", "create", "--spec", root_ + "/bad.textproto"});
  EXPECT_EQ(bad_spec.code, 1) << bad_spec;
  EXPECT_NE(bad_spec.err.find("line 1"), std::string::npos) << bad_spec;

  // --- read commands before anything happened.
  json list = CtlJson({"swarm", "list"});
  ASSERT_EQ(list["swarms"].size(), 2u) << list;
  EXPECT_EQ(list["swarms"][0]["name"], kExampleSwarm);
  EXPECT_EQ(list["swarms"][1]["name"], kSwarm);
  Result table = Ctl({"swarm", "list"});
  EXPECT_EQ(table.code, 0);
  EXPECT_EQ(table.out.rfind("NAME", 0), 0u) << table;
  EXPECT_NE(table.out.find("PENDING_EXPERTS"), std::string::npos) << table;
  EXPECT_EQ(CtlJson({"swarm", "status", kSwarm})["state"], "PENDING_EXPERTS");
  ExpectRefused({"swarm", "status", "nope"}, "NOT_FOUND", "nope");
  ExpectRefused({"particles", "nope"}, "NOT_FOUND", "nope");
  ExpectRefused({"history", "nope"}, "NOT_FOUND", "nope");
  ExpectRefused({"weights", "show", "nope"}, "NOT_FOUND", "nope");
  ExpectRefused({"export", "nope", "--out", root_ + "/nope"}, "NOT_FOUND", "nope");
  EXPECT_FALSE(fs::exists(root_ + "/nope"));
  ExpectRefused({"swarm", "pause", kSwarm}, "FAILED_PRECONDITION", "");
  ExpectRefused({"export", kSwarm, "--out", root_ + "/early"}, "FAILED_PRECONDITION", "");
  EXPECT_TRUE(CtlJson({"particles", kSwarm})["particles"].empty());

  // --- who may call: an agent certificate, an untrusted CA, a usage mistake.
  Result as_agent = Ctl(
      {"swarm", "list", "--tls-cert", certs + "/firm-a.crt", "--tls-key", certs + "/firm-a.key"});
  EXPECT_EQ(as_agent.code, 1) << as_agent;
  EXPECT_NE(as_agent.err.find("PERMISSION_DENIED"), std::string::npos) << as_agent;
  EXPECT_NE(as_agent.err.find("admin"), std::string::npos) << as_agent;
  // An auditor certificate is issued, but no RPC admits the role yet.
  Result as_auditor = Ctl(
      {"swarm", "list", "--tls-cert", certs + "/audit-1.crt", "--tls-key", certs + "/audit-1.key"});
  EXPECT_EQ(as_auditor.code, 1) << as_auditor;
  EXPECT_NE(as_auditor.err.find("PERMISSION_DENIED"), std::string::npos) << as_auditor;
  EXPECT_NE(as_auditor.err.find("has role auditor"), std::string::npos) << as_auditor;
  Result foreign =
      Ctl({"swarm", "list", "--tls-cert", root_ + "/other/mallory.crt", "--tls-key",
           root_ + "/other/mallory.key", "--tls-ca", root_ + "/other/ca.crt", "--timeout=5"});
  EXPECT_EQ(foreign.code, 1) << foreign;
  EXPECT_NE(foreign.err.find("UNAVAILABLE"), std::string::npos) << foreign;
  EXPECT_EQ(foreign.out, "");
  Result no_server = Ctl({"swarm", "list"}, {{"WXPCTL_CONFIG", ""}});
  EXPECT_EQ(no_server.code, 2) << no_server;
  // Flags win over the config file; global flags may precede the command.
  Result override = Ctl({"--server", "127.0.0.1:1", "--timeout=3", "swarm", "list"});
  EXPECT_EQ(override.code, 1) << override;
  Result all_flags =
      RunProgram(wxpctl_,
                 {"--server", address, "--tls_cert", certs + "/ops.crt", "--tls_key",
                  certs + "/ops.key", "--tls_ca", certs + "/ca.crt", "swarm", "status", kSwarm},
                 {{"WXPCTL_CONFIG", ""}});
  EXPECT_EQ(all_flags.code, 0) << all_flags;
  EXPECT_NE(all_flags.out.find("PENDING_EXPERTS"), std::string::npos) << all_flags;

  // --- agents join; the pool is built and the initial evaluation reported.
  const auto experts = MakeRandomExperts(3, kDim, 5);
  const auto optimum = *MakeHiddenOptimum(experts, 5, 0.0005);
  TinyAgent a("firm-a", port, certs, &optimum), b("firm-b", port, certs, &optimum);
  ASSERT_EQ(a.Join({experts[0], experts[1]}), absl::OkStatus());
  ASSERT_EQ(b.Join({experts[2]}), absl::OkStatus());
  ASSERT_EQ(a.Init(), absl::OkStatus());
  ASSERT_EQ(b.Init(), absl::OkStatus());
  json status = CtlJson({"swarm", "status", kSwarm});
  EXPECT_EQ(status["state"], "RUNNING") << status;
  EXPECT_EQ(status["particles"], 4);
  EXPECT_EQ(status["experts_joined"], 3);
  // A spec that names no space runs (and shows) WEIGHTS, with no coefficients.
  EXPECT_EQ(status["space"], "WEIGHTS") << status;
  EXPECT_EQ(status["decoder"], "COEFFICIENT_DECODER_UNSPECIFIED") << status;
  EXPECT_EQ(status["svd_rank"], 0) << status;
  EXPECT_EQ(status["per_module"], false) << status;
  EXPECT_EQ(status["expert_sharing"], "ALLOWED") << status;
  EXPECT_EQ(status["coefficient_dimension"], 0) << status;
  EXPECT_TRUE(status["global_best"].value("alpha", json::array()).empty()) << status;
  Result running = Ctl({"swarm", "status", kSwarm});
  EXPECT_NE(running.out.find("\nspace            WEIGHTS\n"), std::string::npos) << running;
  EXPECT_EQ(running.out.find("g alpha"), std::string::npos) << running;

  // A coefficient swarm shows its space from creation on (its dimension once the pool
  // exists, which this one, waiting for experts, does not).
  ASSERT_TRUE(WriteFileAtomically(root_ + "/coef.textproto",
                                  "name: 'coef' min_experts: 2 utility { name: 'closeness' "
                                  "weight: 1 }\n")
                  .ok());
  ASSERT_EQ(Ctl({"swarm", "create", "--spec", root_ + "/coef.textproto", "--space", "coefficients",
                 "--decoder", "lora_product_svd", "--svd-rank", "8", "--per-module"})
                .code,
            0);
  json coef = CtlJson({"swarm", "status", "coef"});
  EXPECT_EQ(coef["space"], "EXPERT_COEFFICIENTS") << coef;
  EXPECT_EQ(coef["decoder"], "LORA_PRODUCT_SVD") << coef;
  EXPECT_EQ(coef["svd_rank"], 8) << coef;
  EXPECT_EQ(coef["per_module"], true) << coef;
  EXPECT_EQ(coef["expert_sharing"], "ALLOWED") << coef;
  EXPECT_EQ(coef["coefficient_dimension"], 0) << coef;
  Result coef_table = Ctl({"swarm", "status", "coef"});
  EXPECT_NE(coef_table.out.find("\nspace            EXPERT_COEFFICIENTS (decoder LORA_PRODUCT_SVD, "
                                "svd rank 8, per module, experts shared)\n"),
            std::string::npos)
      << coef_table;
  // Local training from the command line (SPEC 4.4): the flag overrides the spec; its form
  // is checked before anything is sent, the space by the server.
  ASSERT_TRUE(WriteFileAtomically(root_ + "/lt.textproto",
                                  "name: 'lt' min_experts: 2 utility { name: 'closeness' "
                                  "weight: 1 }\n")
                  .ok());
  Result lt_bad =
      Ctl({"swarm", "create", "--spec", root_ + "/lt.textproto", "--local_training", "2:20:0.005"});
  EXPECT_EQ(lt_bad.code, 2) << lt_bad;
  EXPECT_NE(lt_bad.err.find("EVERY_K:STEPS:LR:BATCH"), std::string::npos) << lt_bad;
  Result lt_coef =
      Ctl({"swarm", "create", "--spec", root_ + "/lt.textproto", "--space", "coefficients",
           "--decoder", "linear_ab", "--local_training", "2:20:0.005:64"});
  EXPECT_EQ(lt_coef.code, 1) << lt_coef;
  EXPECT_NE(lt_coef.err.find("local_training"), std::string::npos) << lt_coef;
  ASSERT_EQ(Ctl({"swarm", "create", "--spec", root_ + "/lt.textproto", "--local_training",
                 "2:20:0.005:64"})
                .code,
            0);
  json lt = CtlJson({"swarm", "status", "lt"});
  EXPECT_EQ(lt["local_training"]["every_k"], 2) << lt;
  EXPECT_EQ(lt["local_training"]["steps"], 20) << lt;
  EXPECT_EQ(lt["local_training"]["learning_rate"], 0.005) << lt;
  EXPECT_EQ(lt["local_training"]["batch"], 64) << lt;

  json particles = CtlJson({"particles", kSwarm});
  ASSERT_EQ(particles["particles"].size(), 4u) << particles;
  std::map<std::string, int> owners;
  for (const json& p : particles["particles"]) {
    ++owners[p["owner"]];
    EXPECT_EQ(p["iteration"], 0) << p;
    EXPECT_LT(p["utility"].get<double>(), 0) << p;
  }
  EXPECT_GE(owners["firm-a"], 2);
  EXPECT_GE(owners["firm-b"], 1);
  Result ptable = Ctl({"particles", kSwarm});
  EXPECT_NE(ptable.out.find("firm-b"), std::string::npos) << ptable;
  EXPECT_NE(ptable.out.find("LAST REPORT"), std::string::npos) << ptable;

  // --- weights: show, a change (version 2), refusals.
  json weights = CtlJson({"weights", "show", kSwarm});
  EXPECT_EQ(weights["version"], 1);
  ASSERT_EQ(weights["components"].size(), 2u);
  json changed = CtlJson({"weights", "set", kSwarm, "closeness=2", "spare=0.5"});
  EXPECT_EQ(changed["version"], 2) << changed;
  EXPECT_EQ(changed["components"][0]["weight"], 2.0);
  ExpectRefused({"weights", "set", kSwarm, "unknown=1"}, "INVALID_ARGUMENT", "unknown");
  EXPECT_EQ(Ctl({"weights", "set", kSwarm, "closeness"}).code, 2);
  Result wtable = Ctl({"weights", "show", kSwarm});
  EXPECT_NE(wtable.out.find("weight version 2"), std::string::npos) << wtable;
  // A change scheduled for an iteration that cannot come is refused by the server; a
  // malformed --after-iteration by wxpctl, before any call.
  ExpectRefused({"weights", "set", kSwarm, "spare=1", "--after-iteration", "4"}, "INVALID_ARGUMENT",
                "would never come");
  EXPECT_EQ(Ctl({"weights", "set", kSwarm, "spare=1", "--after-iteration", "0"}).code, 2);
  EXPECT_EQ(Ctl({"weights", "set", kSwarm, "spare=1", "--after-iteration", "two"}).code, 2);
  EXPECT_FALSE(CtlJson({"weights", "show", kSwarm}).contains("scheduled"));

  // --- pause holds the agents, resume releases them.
  json paused = CtlJson({"swarm", "pause", kSwarm, "--reason", "lunch"});
  EXPECT_EQ(paused["state"], "PAUSED") << paused;
  EXPECT_EQ(paused["space"], "WEIGHTS") << paused;
  auto held = a.Targets(a.first_particle(), a.next_iteration(a.first_particle()));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->status(), v1::GetTargetsResponse::WAIT);
  Result resumed = Ctl({"swarm", "resume", kSwarm});
  EXPECT_EQ(resumed.code, 0) << resumed;
  EXPECT_NE(resumed.out.find("RUNNING"), std::string::npos) << resumed;
  ExpectRefused({"swarm", "resume", kSwarm}, "FAILED_PRECONDITION", "");

  // --- watch follows the run to its end, then exits 0.
  const std::string watch_out = root_ + "/watch.out";
  const pid_t watcher = fork();
  if (watcher == 0) {
    freopen(watch_out.c_str(), "w", stdout);
    setenv("WXPCTL_CONFIG", config_.c_str(), 1);
    execl(wxpctl_.c_str(), wxpctl_.c_str(), "watch", kSwarm, "--interval=0.2",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // The agents move only once watch has shown the running swarm (a loaded machine may
  // start it late).
  EXPECT_TRUE(WaitUntil([&] { return FileContains(watch_out, "RUNNING"); }));
  bool alive = true;
  for (int steps = 0; alive && steps < 200; ++steps) {
    auto sa = a.Step();
    auto sb = b.Step();
    ASSERT_TRUE(sa.ok()) << sa.status();
    ASSERT_TRUE(sb.ok()) << sb.status();
    alive = *sa || *sb;
  }
  EXPECT_FALSE(alive);
  int watch_status = -1;
  for (int i = 0; i < 200; ++i) {
    if (waitpid(watcher, &watch_status, WNOHANG) == watcher) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // watch's next refresh
    if (i == 199) {
      kill(watcher, SIGKILL);
      waitpid(watcher, &watch_status, 0);
    }
  }
  ASSERT_TRUE(WIFEXITED(watch_status));
  EXPECT_EQ(WEXITSTATUS(watch_status), 0);
  const std::string watched = ReadFile(watch_out).value_or("");
  EXPECT_NE(watched.find("RUNNING"), std::string::npos) << watched;
  EXPECT_NE(watched.find("FINISHED"), std::string::npos) << watched;

  // --- the finished swarm: status, history, plot.
  status = CtlJson({"swarm", "status", kSwarm});
  EXPECT_EQ(status["state"], "FINISHED") << status;
  EXPECT_EQ(status["termination_reason"], "max_iterations") << status;
  EXPECT_EQ(status["iteration"], 4);
  EXPECT_EQ(status["utility_weight_version"], 2);
  const std::string g_blob = status["global_best"]["blob_id"];
  Result stable = Ctl({"swarm", "status", kSwarm});
  EXPECT_NE(stable.out.find("FINISHED (max_iterations)"), std::string::npos) << stable;
  EXPECT_NE(stable.out.find("g history"), std::string::npos) << stable;
  EXPECT_NE(stable.out.find("agents online"), std::string::npos) << stable;

  json history = CtlJson({"history", kSwarm});
  int v2_entries = 0;
  double last_g = -1e300;
  for (const json& e : history["entries"]) {
    if (e["utility_weight_version"] != 2) continue;
    ++v2_entries;
    const double g = e["global_best_utility"];
    EXPECT_GE(g, last_g) << "g is all-time: it never drops";
    EXPECT_GE(g, e["mean_utility"].get<double>());
    EXPECT_GE(e["mean_utility"].get<double>(), e["global_worst_utility"].get<double>());
    last_g = g;
  }
  EXPECT_EQ(v2_entries, 5) << history;  // iterations 0..4
  EXPECT_EQ(last_g, status["global_best"]["utility"].get<double>());
  Result json_flag = Ctl({"history", kSwarm, "--json"});
  EXPECT_EQ(json::parse(json_flag.out), history);
  Result csv = Ctl({"history", kSwarm, "--csv"});
  ASSERT_EQ(csv.code, 0) << csv;
  std::vector<std::string> lines = absl::StrSplit(csv.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), history["entries"].size() + 1) << csv;
  EXPECT_EQ(lines[0].rfind("weight_version,iteration,global_best_utility", 0), 0u);
  EXPECT_EQ(lines.back().rfind("2,4,", 0), 0u) << csv;
  EXPECT_EQ(Ctl({"history", kSwarm, "--csv", "--json"}).code, 2);
  const std::string svg_path = root_ + "/history.svg";
  Result plot = Ctl({"history", kSwarm, "--plot", svg_path});
  ASSERT_EQ(plot.code, 0) << plot;
  const std::string svg = ReadFile(svg_path).value_or("");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  // Both readings of g: v1 as the run went (iteration 0 only: the weights changed after
  // it), v2 over the whole run; the change is marked.
  EXPECT_EQ(Count(svg, "<polyline"), 3) << "g under v2, g_w and mean";
  EXPECT_EQ(Count(svg, "<circle"), 1) << "g under v1, one point";
  EXPECT_NE(svg.find(">g (weights v1)</text>"), std::string::npos) << "legend";
  EXPECT_NE(svg.find(">g (weights v2)</text>"), std::string::npos) << "legend";
  EXPECT_NE(svg.find(">weights v2</text>"), std::string::npos) << "the change's marker";
  EXPECT_NE(svg.find(">mean</text>"), std::string::npos) << "legend";
  EXPECT_EQ(plot.out.find("<svg"), std::string::npos) << "the chart goes to the file only";
  if (const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
    fs::copy_file(svg_path, std::string(outputs) + "/history.svg",
                  fs::copy_options::overwrite_existing);  // for a look at the chart
  }

  // --- export: verified against g's blob id, atomic, no silent overwrite.
  const std::string out_dir = root_ + "/best";
  json exported = CtlJson({"export", kSwarm, "--out", out_dir});
  EXPECT_EQ(exported["blob_id"], g_blob) << exported;
  EXPECT_EQ(*Sha256File(out_dir + "/adapter_model.safetensors"), g_blob);
  const std::string config_json = ReadFile(out_dir + "/adapter_config.json").value_or("");
  EXPECT_NE(config_json.find("LORA"), std::string::npos) << config_json;
  auto best = LoadAdapter(out_dir);
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(NegativeRmsDistance(best->values, optimum),
            status["global_best"]["utility"].get<double>() / 2)
      << "g's utility is 2 x closeness under weights v2";
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root_)) {
    entries += e.path().filename().string().find(".wxpctl-") != std::string::npos;
  }
  EXPECT_EQ(entries, 0) << "no staging directory left behind";
  Result refused = Ctl({"export", kSwarm, "--out", out_dir});
  EXPECT_EQ(refused.code, 1) << refused;
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused;
  ASSERT_TRUE(WriteFileAtomically(out_dir + "/stale.txt", "old").ok());
  Result forced = Ctl({"export", kSwarm, "--out", out_dir, "--force"});
  EXPECT_EQ(forced.code, 0) << forced;
  EXPECT_NE(forced.out.find(g_blob), std::string::npos) << forced;
  EXPECT_FALSE(fs::exists(out_dir + "/stale.txt")) << "the directory is replaced as a whole";

  // --- a swarm whose schema comes from a template adapter (uploaded by wxpctl).
  ASSERT_TRUE(WriteFileAtomically(root_ + "/templated.textproto",
                                  "name: 'templated' utility { name: 'closeness' weight: 1 }\n")
                  .ok());
  std::vector<float> template_values(kDim, 0.25f);
  const std::string template_path = root_ + "/template.safetensors";
  ASSERT_TRUE(WriteFileAtomically(template_path, Serialize(template_values)).ok());
  json templated = CtlJson(
      {"swarm", "create", "--spec", root_ + "/templated.textproto", "--template", template_path});
  const std::string template_id = Sha256Hex(Serialize(template_values));
  EXPECT_EQ(templated["spec"]["template_blob_id"], template_id) << templated;
  auto fetched = a.Fetch(template_id);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(*fetched, template_values) << "the template was uploaded as it is on disk";
  // (Deriving the schema from the template is the server's part and not checked here.)
  Result not_adapter =
      Ctl({"swarm", "create", "--spec", root_ + "/templated.textproto", "--template", spec});
  EXPECT_EQ(not_adapter.code, 1) << not_adapter;
  EXPECT_EQ(not_adapter.err.find("ALREADY_EXISTS"), std::string::npos)
      << "refused locally, before any call: " << not_adapter;
  EXPECT_EQ(Ctl({"swarm", "stop", "templated"}).code, 0);

  // --- the final state refuses changes.
  ExpectRefused({"weights", "set", kSwarm, "closeness=1"}, "FAILED_PRECONDITION", "");
  ExpectRefused({"swarm", "stop", kSwarm}, "FAILED_PRECONDITION", "");

  // --- stop ends a pending swarm; watch on a final swarm returns at once.
  EXPECT_EQ(CtlJson({"swarm", "stop", kExampleSwarm, "--reason", "test"})["state"], "STOPPED");
  Result watch_stopped = Ctl({"watch", kExampleSwarm});
  EXPECT_EQ(watch_stopped.code, 0) << watch_stopped;
  EXPECT_NE(watch_stopped.out.find("STOPPED (stopped)"), std::string::npos) << watch_stopped;
  ExpectRefused({"watch", "nope"}, "NOT_FOUND", "nope");

  // --- clients: list, revoke (and what revocation does to the agent).
  json clients = CtlJson({"clients", "list"});
  std::map<std::string, std::string> roles;
  for (const json& c : clients["clients"]) roles[c["identity"]] = c["role"];
  EXPECT_EQ(roles["ops"], "admin");
  EXPECT_EQ(roles["firm-a"], "agent");
  EXPECT_EQ(roles["firm-b"], "agent");
  EXPECT_EQ(roles.count("mallory"), 0u) << "refused in the handshake, never seen";
  EXPECT_EQ(roles.count("audit-1"), 0u) << "refused by role before it is recorded";
  json revoked = CtlJson({"clients", "revoke", "firm-b"});
  EXPECT_EQ(revoked["revoked"], true) << revoked;
  auto refused_agent = b.Targets(0, 1);
  EXPECT_EQ(refused_agent.status().code(), absl::StatusCode::kPermissionDenied);
  Result ctable = Ctl({"clients", "list"});
  EXPECT_NE(ctable.out.find("REVOKED"), std::string::npos) << ctable;
  EXPECT_NE(ctable.out.find("yes"), std::string::npos) << ctable;
  ExpectRefused({"clients", "revoke", "ops"}, "INVALID_ARGUMENT", "");
  ExpectRefused({"clients", "revoke", "nobody"}, "NOT_FOUND", "nobody");

  // Open client channels hold the server's graceful shutdown for most of its 10 s grace.
  a.Disconnect();
  b.Disconnect();
  const int exit_status = server.Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(exit_status));
  EXPECT_EQ(WEXITSTATUS(exit_status), 0);
}

TEST_F(WxpctlAdminTest, PlaintextIdentityAgainstALocalServer) {
  Server server;
  const int port = server.Start(root_ + "/plain", "");
  ASSERT_GT(port, 0);
  const std::vector<std::string> conn = {"--server", absl::StrCat("127.0.0.1:", port),
                                         "--plaintext", "--identity", "alice"};
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), conn.begin(), conn.end());
    return RunProgram(wxpctl_, args, {{"WXPCTL_CONFIG", ""}});
  };
  Result created = ctl({"swarm", "create", "--spec", Runfile("deploy/examples/swarm.textproto")});
  ASSERT_EQ(created.code, 0) << created;
  Result clients = ctl({"clients", "list", "--output", "json"});
  ASSERT_EQ(clients.code, 0) << clients;
  json j = json::parse(clients.out);
  ASSERT_EQ(j["clients"].size(), 1u) << j;
  EXPECT_EQ(j["clients"][0]["identity"], "alice");
  EXPECT_EQ(j["clients"][0]["role"], "admin");
  // Plaintext without a name, or mixed with certificates, is a usage mistake.
  Result anonymous = RunProgram(
      wxpctl_, {"swarm", "list", "--server", absl::StrCat("127.0.0.1:", port), "--plaintext"},
      {{"WXPCTL_CONFIG", ""}});
  EXPECT_EQ(anonymous.code, 2) << anonymous;
  EXPECT_NE(anonymous.err.find("--identity"), std::string::npos) << anonymous;
  Result mixed = ctl({"swarm", "list", "--tls-cert", "x.crt"});
  EXPECT_EQ(mixed.code, 2) << mixed;

  // watch waits out a server restart (one line on stderr), then sees the stop and exits 0.
  const std::string watch_out = root_ + "/plain_watch.out", watch_err = root_ + "/plain_watch.err";
  const pid_t watcher = fork();
  if (watcher == 0) {
    freopen(watch_out.c_str(), "w", stdout);
    freopen(watch_err.c_str(), "w", stderr);
    std::vector<std::string> args = {wxpctl_};
    args.insert(args.end(), conn.begin(), conn.end());
    for (const char* a : {"watch", kExampleSwarm, "--interval=0.1"}) args.push_back(a);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(wxpctl_.c_str(), argv.data());
    _exit(127);
  }
  // The outage must start after watch's first refresh and last until watch has met it, or
  // there is nothing to retry (a slow start-up, e.g. under a sanitizer, would skip it).
  EXPECT_TRUE(WaitUntil([&] { return !ReadFile(watch_out).value_or("").empty(); }));
  server.Stop(SIGKILL);
  EXPECT_TRUE(WaitUntil([&] { return FileContains(watch_err, "(retrying)"); }));
  ASSERT_EQ(server.Start(root_ + "/plain", "", port), port);
  ASSERT_EQ(ctl({"swarm", "stop", kExampleSwarm}).code, 0);
  int watch_status = -1;
  WaitUntil([&] { return waitpid(watcher, &watch_status, WNOHANG) == watcher; });
  if (!WIFEXITED(watch_status)) {
    kill(watcher, SIGKILL);
    waitpid(watcher, &watch_status, 0);
  }
  ASSERT_TRUE(WIFEXITED(watch_status)) << "watch did not end after the stop";
  EXPECT_EQ(WEXITSTATUS(watch_status), 0);
  const std::string watch_errors = ReadFile(watch_err).value_or("");
  EXPECT_EQ(Count(watch_errors, "(retrying)"), 1) << watch_errors;
  EXPECT_NE(ReadFile(watch_out).value_or("").find("STOPPED"), std::string::npos);
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace wxp
