// Audits of reported scores (SPEC 12) through the real processes on loopback: wxp-server,
// wxp-agent agents and a wxp-agent with role auditor. An honest swarm with an auditor (one
// that comes late, and a server SIGKILLed while a claim is being audited) ends exactly as
// the in-process runner does without audits; an agent whose external evaluator multiplies
// its scores never has a claim accepted as g and ends quarantined until an admin lifts it.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/file_util.h"
#include "common/runner.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"
#include "tests/testing/synthetic_experts.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using proc::ChildProcess;
using proc::Runfile;
using proc::ServerProcess;

class AuditProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto experts = proc::SaveRandomExperts(proc::SmallLoraSchema(), 3, 2024, root_);
    ASSERT_TRUE(experts.ok()) << experts.status();
    experts_ = experts->values;
    expert_dirs_ = experts->dirs;
    optimum_path_ = root_ + "/optimum.safetensors";
    auto optimum = proc::SaveHiddenOptimum(proc::SmallLoraSchema(), experts_, 2024, optimum_path_);
    ASSERT_TRUE(optimum.ok()) << optimum.status();
    optimum_ = *optimum;
    server_ =
        std::make_unique<ServerProcess>(root_ + "/server", std::vector<std::string>{"--plaintext"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
  }

  std::unique_ptr<client::Connection> Admin() {
    return proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
  }

  // `audit` is the AuditPolicy's fields; `extra` more SwarmSpec fields.
  void CreateSwarm(const std::string& audit, const std::string& extra = "") {
    grpc::Status s = proc::CreateSwarm(
        *Admin(), proc::SyntheticSwarmSpec(
                      "swarm", kHyperparameters,
                      absl::StrCat("audit { enabled: true tolerance { key: '", kSyntheticComponent,
                                   "' value: 1e-6 } ", audit, " } ", extra)));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::vector<std::string> AgentArgs(const std::string& name, std::vector<int> experts,
                                     const std::vector<std::string>& evaluator) {
    return proc::AgentArgv(server_->address(), "swarm", name, proc::Pick(expert_dirs_, experts),
                           root_ + "/" + name, evaluator, "");
  }

  // wxp-agent with role auditor and the vendor's (honest) evaluator; it joins with nothing.
  std::vector<std::string> AuditorArgs() {
    std::vector<std::string> argv = proc::AgentArgv(server_->address(), "swarm", "vendor", {},
                                                    root_ + "/vendor", Synthetic(), "");
    argv.erase(std::remove_if(argv.begin(), argv.end(),
                              [](const std::string& a) { return a.rfind("--expert=", 0) == 0; }),
               argv.end());
    argv.push_back("--role=auditor");
    return argv;
  }

  std::vector<std::string> Synthetic() { return {"--synthetic_optimum=" + optimum_path_}; }

  RunResult Oracle() {
    RunnerOptions o;
    o.params.seed = 99;
    o.params.max_iterations = 6;
    o.params.patience = 4;
    o.params.pool_size = 5;
    for (const auto& e : experts_) {
      o.expert_ids.push_back(*proc::BlobIdOf(proc::SmallLoraSchema(), e));
    }
    SyntheticEvaluator eval(optimum_);
    auto r =
        RunSwarm(experts_, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }

  wxp::v1::GetHistoryResponse History() {
    auto admin = Admin();
    wxp::v1::GetHistoryRequest req;
    req.set_swarm("swarm");
    wxp::v1::GetHistoryResponse resp;
    grpc::Status s = admin->admin().GetHistory(admin->NewContext().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  static void ExpectExitedOk(int status, const std::string& log) {
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << proc::Tail(log);
  }

  static constexpr char kHyperparameters[] = "seed: 99 max_iterations: 6 patience: 4 pool_size: 5";
  std::string root_;
  std::vector<std::vector<float>> experts_;
  std::vector<float> optimum_;
  std::vector<std::string> expert_dirs_;
  std::string optimum_path_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AuditProcessTest, HonestSwarmWithALateAuditorAndAServerKillMatchesTheRunner) {
  CreateSwarm("sample_rate: 0.3");
  ChildProcess a, b, auditor;
  ASSERT_TRUE(a.Start(AgentArgs("firm-a", {0, 1}, Synthetic()), root_ + "/firm-a.log"));
  ASSERT_TRUE(b.Start(AgentArgs("firm-b", {2}, Synthetic()), root_ + "/firm-b.log"));
  // No auditor yet: the initial g is a candidate, so the pool waits (delayed, not changed).
  ASSERT_TRUE(proc::PollUntil(
      [&] {
        const wxp::v1::GetHistoryResponse h = History();
        return h.audits_size() > 0 && h.audits(0).verdict() == wxp::v1::AUDIT_PENDING;
      },
      absl::Minutes(3), absl::Milliseconds(50)))
      << proc::Tail(server_->log_path());
  EXPECT_EQ(History().entries_size(), 0);  // round 0 has not closed

  // The auditor holds once it has evaluated its first claim; the server dies right there.
  const std::string marker = root_ + "/audit.marker";
  ASSERT_TRUE(auditor.Start(AuditorArgs(), root_ + "/vendor.log",
                            {"WXP_FAULT_HOLD_AUDIT_MARKER=" + marker}));
  ASSERT_TRUE(
      proc::PollUntil([&] { return fs::exists(marker); }, absl::Minutes(3), absl::Milliseconds(20)))
      << proc::Tail(root_ + "/vendor.log");
  server_->Kill(SIGKILL);
  auditor.Kill(SIGKILL);
  ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
  // The marker stays: the restarted auditor is not held again.
  ASSERT_TRUE(auditor.Start(AuditorArgs(), root_ + "/vendor.log"));

  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ExpectExitedOk(sa, root_ + "/firm-a.log");
  ExpectExitedOk(sb, root_ + "/firm-b.log");
  ExpectExitedOk(auditor.Wait(absl::Minutes(1)), root_ + "/vendor.log");

  const RunResult oracle = Oracle();
  EXPECT_EQ(proc::GlobalBestHistoryOf(*Admin(), "swarm"), proc::GlobalBestHistoryOf(oracle));
  const wxp::v1::SwarmStatus status = proc::SwarmStatusOf(*Admin(), "swarm");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.global_best().utility(), oracle.best_utility);
  EXPECT_EQ(status.global_best().blob_id(), *proc::BlobIdOf(proc::SmallLoraSchema(), oracle.best));
  // Every candidate was confirmed before it counted; no claim was disputed. (A sampled claim
  // of the last round may still wait for its position's upload when the auditor, finding
  // the swarm over and nothing to audit, leaves.)
  const wxp::v1::GetHistoryResponse history = History();
  int confirmed = 0;
  for (const wxp::v1::AuditedClaim& c : history.audits()) {
    if (c.verdict() == wxp::v1::AUDIT_PENDING) {
      EXPECT_FALSE(c.candidate()) << c.ShortDebugString();
      continue;
    }
    EXPECT_EQ(c.verdict(), wxp::v1::AUDIT_CONFIRMED) << c.ShortDebugString();
    EXPECT_EQ(c.auditor(), "vendor");
    ++confirmed;
  }
  EXPECT_GT(confirmed, 0);
  server_->Kill(SIGTERM);
  auto store = store::SqliteStore::Open({root_ + "/server/wxp.db"});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
}

TEST_F(AuditProcessTest, ALyingAgentNeverHasAClaimAcceptedAsGAndEndsQuarantined) {
  // Once the liar is refused, rounds close at the deadline without it. The deadline must
  // still leave the liar, whose evaluator starts a Python process per evaluation, time to
  // report in every round before that, on a loaded machine under ASan: 2 s was thin, 8 s
  // costs at most the few rounds after the quarantine. Every report is audited
  // (sample_rate 1): the liar's first two cost it its standing.
  CreateSwarm("quarantine_after: 2 sample_rate: 1", "quorum_count: 1 round_deadline_seconds: 8");
  ChildProcess a, liar, auditor;
  const std::string lie = "--eval_command=python3 " + Runfile("tests/testdata/eval_multiply.py") +
                          " 0.5 " + optimum_path_;
  ASSERT_TRUE(a.Start(AgentArgs("firm-a", {0, 1}, Synthetic()), root_ + "/firm-a.log"));
  ASSERT_TRUE(liar.Start(AgentArgs("firm-b", {2}, {lie}), root_ + "/firm-b.log"));
  ASSERT_TRUE(auditor.Start(AuditorArgs(), root_ + "/vendor.log"));
  ExpectExitedOk(a.Wait(absl::Minutes(3)), root_ + "/firm-a.log");
  ExpectExitedOk(auditor.Wait(absl::Minutes(1)), root_ + "/vendor.log");
  // The liar was refused once quarantined: a permanent error, not a finished swarm.
  const int sl = liar.Wait(absl::Minutes(1));
  const std::string liar_log = proc::Tail(root_ + "/firm-b.log", 1 << 20);
  EXPECT_TRUE(WIFEXITED(sl) && WEXITSTATUS(sl) == 1) << liar_log;
  EXPECT_NE(liar_log.find("quarantined"), std::string::npos) << liar_log;

  auto admin = Admin();
  wxp::v1::ListClientsResponse clients;
  ASSERT_TRUE(admin->admin().ListClients(admin->NewContext().get(), {}, &clients).ok());
  std::map<std::string, wxp::v1::ClientInfo> by_name;
  for (const auto& c : clients.clients()) by_name[c.identity()] = c;
  EXPECT_TRUE(by_name["firm-b"].quarantined());
  EXPECT_GE(by_name["firm-b"].audits_disputed(), 2);
  EXPECT_EQ(by_name["firm-b"].audits_confirmed(), 0);
  EXPECT_EQ(by_name["firm-b"].reputation(), 0);
  EXPECT_FALSE(by_name["firm-a"].quarantined());
  EXPECT_EQ(by_name["firm-a"].audits_disputed(), 0);
  EXPECT_EQ(by_name["vendor"].role(), "auditor");

  // Every claim of the liar's that was decided was disputed; none of its moves was ever g
  // (an initial position, which the pool must rank, counts only with the auditor's reading).
  // A claim whose position never reached the server (its upload refused once the liar was
  // quarantined, or a last-round sample the auditor left behind) stays pending.
  std::map<std::pair<int, int>, double> disputed;
  int liar_claims = 0, liar_pending = 0;
  const wxp::v1::GetHistoryResponse history = History();  // the loop must not outlive it
  for (const wxp::v1::AuditedClaim& c : history.audits()) {
    if (c.reporter() == "firm-b") {
      ++liar_claims;
      liar_pending += c.verdict() == wxp::v1::AUDIT_PENDING;
    }
    if (c.verdict() == wxp::v1::AUDIT_PENDING) {
      EXPECT_FALSE(c.candidate() && c.reporter() == "firm-a") << c.ShortDebugString();
      continue;
    }
    if (c.reporter() == "firm-b") {
      EXPECT_EQ(c.verdict(), wxp::v1::AUDIT_DISPUTED) << c.ShortDebugString();
      disputed[{c.particle_id(), c.iteration()}] = c.audited_scores().at(kSyntheticComponent);
    } else {
      EXPECT_EQ(c.verdict(), wxp::v1::AUDIT_CONFIRMED) << c.ShortDebugString();
    }
  }
  EXPECT_GE(disputed.size(), 2u);
  std::set<int> liars;
  {
    wxp::v1::ListParticlesRequest req;
    req.set_swarm("swarm");
    wxp::v1::ListParticlesResponse particles;
    ASSERT_TRUE(admin->admin().ListParticles(admin->NewContext().get(), req, &particles).ok());
    int shown = 0;
    for (const auto& p : particles.particles()) {
      if (p.owner() == "firm-b") liars.insert(p.particle_id());
      shown += p.disputed_claims();
    }
    EXPECT_EQ(shown, static_cast<int>(disputed.size()));
  }
  const std::string server_log = proc::Tail(server_->log_path(), 4 << 20);
  static const std::regex kG(
      R"(event=new_global_best .*particle=(\d+) iteration=(\d+) utility=(\S+))");
  int gs = 0, liar_gs = 0;
  for (absl::string_view line : absl::StrSplit(server_log, '\n')) {
    if (!absl::StrContains(line, "event=new_global_best ")) continue;
    const std::string text(line);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, kG)) << text;
    ++gs;
    const std::pair<int, int> g{std::stoi(m[1]), std::stoi(m[2])};
    if (g.second > 0) {
      EXPECT_EQ(liars.count(g.first), 0u) << text;
    }
    liar_gs += g.second > 0 && liars.count(g.first) > 0;
    auto d = disputed.find(g);
    if (d != disputed.end()) {
      EXPECT_EQ(g.second, 0) << text;
      EXPECT_NEAR(std::stod(m[3]), d->second, 1e-5 * std::fabs(d->second)) << text;
    }
  }
  EXPECT_GT(gs, 0);
  // The detection figures (SPEC 12's "how many false claims got through"), for the record.
  std::printf(
      "liar firm-b: %d claims audited or held (%zu disputed, %d pending when it was refused), "
      "%d of its moves became g (of %d new g in the run); %d disputes on record, quarantined\n",
      liar_claims, disputed.size(), liar_pending, liar_gs, gs, by_name["firm-b"].audits_disputed());

  // Quarantined until an admin lifts it: refused, then served again.
  auto firm_b = proc::ConnectAs(server_->address(), "firm-b", Role::kAgent);
  wxp::v1::HeartbeatRequest hb;
  hb.set_swarm("swarm");
  wxp::v1::HeartbeatResponse hb_resp;
  grpc::Status refused = firm_b->agent().Heartbeat(firm_b->NewContext().get(), hb, &hb_resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED) << refused.error_message();
  wxp::v1::UnquarantineClientRequest lift;
  lift.set_identity("firm-b");
  lift.set_reason("evaluator fixed");
  wxp::v1::ClientInfo lifted;
  grpc::Status ls = admin->admin().UnquarantineClient(admin->NewContext().get(), lift, &lifted);
  ASSERT_TRUE(ls.ok()) << ls.error_message();
  EXPECT_FALSE(lifted.quarantined());
  EXPECT_EQ(lifted.strikes(), 0);
  EXPECT_TRUE(firm_b->agent().Heartbeat(firm_b->NewContext().get(), hb, &hb_resp).ok());

  server_->Kill(SIGTERM);
  auto store = store::SqliteStore::Open({root_ + "/server/wxp.db"});
  ASSERT_TRUE(store.ok()) << store.status();
  int disputes = 0, quarantines = 0;
  auto swarm_log = (*store)->ListAudit("swarm");
  ASSERT_TRUE(swarm_log.ok()) << swarm_log.status();
  for (const auto& entry : *swarm_log) {
    disputes += entry.action == "audit disputed";
    quarantines += entry.action == "quarantine client";
  }
  EXPECT_EQ(disputes, static_cast<int>(disputed.size()));
  EXPECT_EQ(quarantines, 1);
  bool lift_logged = false;
  auto admin_log = (*store)->ListAudit("");
  ASSERT_TRUE(admin_log.ok()) << admin_log.status();
  for (const auto& entry : *admin_log) {
    lift_logged |= entry.action == "unquarantine client" && entry.actor == "ops";
  }
  EXPECT_TRUE(lift_logged);
}

}  // namespace
}  // namespace wxp
