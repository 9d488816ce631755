// A federation in one process for coordinator tests: simulated agents (holding x, v, p
// locally as wxp-agent does) and a server harness whose restarts are kill -9 restarts, plus
// the spec and in-process runner settings the runner-oracle tests compare against.
// Test-only; single-threaded.
#ifndef WXP_SERVER_COORDINATOR_TESTING_FEDERATION_H_
#define WXP_SERVER_COORDINATOR_TESTING_FEDERATION_H_

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/evaluator.h"
#include "common/runner.h"
#include "common/sha256.h"
#include "common/swarm_move.h"
#include "common/synthetic.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"

namespace wxp::server::coordinator_testing {

inline constexpr int kDim = 300;

inline Schema TestSchema() {
  return Schema(
      {{"m.lora_A.weight", DType::kF32, {10, 20}}, {"m.lora_B.weight", DType::kF32, {20, 5}}});
}

inline std::string Serialize(const std::vector<float>& values) {
  Adapter a;
  a.schema = TestSchema();
  a.values = values;
  return *SerializeAdapter(a);
}

inline std::vector<float> Deserialize(const std::string& bytes) {
  return AdapterFromSafetensors(*SafetensorsFile::FromBytes(bytes)).values;
}

inline wxp::v1::SwarmSpec Spec(const std::string& name, uint64_t seed,
                               const std::string& extra = "") {
  wxp::v1::SwarmSpec spec;
  const std::string text = absl::StrCat(
      "name: '", name, "' min_experts: 3 utility { name: '", kSyntheticComponent,
      "' weight: 1 } hyperparameters { seed: ", seed, " max_iterations: 12 patience: 4 } ", extra);
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec)) << text;
  return spec;
}

// The in-process runner's settings for a swarm of Spec(name, 5) over `experts`.
inline RunnerOptions OracleOptions(const std::vector<std::vector<float>>& experts) {
  RunnerOptions o;
  o.params.seed = 5;
  o.params.max_iterations = 12;
  o.params.patience = 4;
  for (const auto& e : experts) o.expert_ids.push_back(Sha256Hex(Serialize(e)));
  return o;
}

// One on-prem agent: owns particles, moves them locally, evaluates, reports, uploads.
class FakeAgent {
 public:
  FakeAgent(std::string name, std::unique_ptr<Coordinator>* c, MemoryBlobs* blobs, Evaluator* eval)
      : caller_{std::move(name), Role::kAgent}, c_(c), blobs_(blobs), eval_(eval) {}
  const Caller& caller() const { return caller_; }
  // From now on, reports after iteration 0 say the local training failed (SPEC 4.4).
  void FailTrainings(const std::string& reason) { training_failure_ = reason; }
  // From now on, every reported score is the evaluator's times `factor`: a lying agent.
  void MultiplyScores(double factor) { score_factor_ = factor; }

  void Join(const std::string& swarm, const std::vector<float>& expert, int capacity) {
    const std::string id = *blobs_->Put(Serialize(expert));
    wxp::v1::JoinRequest r;
    r.set_swarm(swarm);
    r.add_expert_blob_ids(id);
    r.set_capacity(capacity);
    auto out = (*c_)->Join(caller_, r);
    ASSERT_TRUE(out.ok()) << out.status();
  }

  // Fetches the assignment and reports the initial evaluations.
  void Start(const std::string& swarm) {
    auto a = (*c_)->GetAssignment(caller_, swarm);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ(a->status(), wxp::v1::GetAssignmentResponse::ASSIGNED);
    // The wire promises resolved values, never UNSPECIFIED.
    EXPECT_NE(a->mode(), wxp::v1::ROUND_MODE_UNSPECIFIED);
    EXPECT_NE(a->upload_policy(), wxp::v1::UPLOAD_POLICY_UNSPECIFIED);
    for (const auto& p : a->particles()) {
      Particle& mine = particles_[p.particle_id()];
      mine.x = Deserialize(*blobs_->ReadAll(p.initial_position_blob_id()));
      mine.v.assign(mine.x.size(), 0.0f);
      if (p.initial_velocity().has_partner_blob_id()) {
        const auto partner = Deserialize(*blobs_->ReadAll(p.initial_velocity().partner_blob_id()));
        Difference(partner.data(), mine.x.data(), mine.v.data(), kDim);
      }
      mine.p = mine.x;
      mine.p_id = p.initial_position_blob_id();
      Report(swarm, p.particle_id(), 0, p.initial_position_blob_id());
    }
  }

  // One step for every particle: targets, move, evaluate, report. False once all are done.
  bool Step(const std::string& swarm, bool* progressed) {
    bool any_alive = false;
    for (auto& [id, mine] : particles_) {
      if (mine.done) continue;
      any_alive = true;
      wxp::v1::GetTargetsRequest r;
      r.set_swarm(swarm);
      r.set_particle_id(id);
      r.set_iteration(mine.iteration + 1);
      auto t = (*c_)->GetTargets(caller_, r);
      EXPECT_TRUE(t.ok()) << t.status();
      if (!t.ok()) return false;
      if (t->status() == wxp::v1::GetTargetsResponse::DONE) {
        mine.done = true;
        continue;
      }
      if (t->status() == wxp::v1::GetTargetsResponse::WAIT) continue;
      // The server's p_i wins, as in wxp-agent (a report held back for an audit learns only
      // here whether it became p_i).
      const std::string& server_p = t->personal_best().blob_id();
      if (!server_p.empty() && server_p != mine.p_id) {
        mine.p = Deserialize(*blobs_->ReadAll(server_p));
        mine.p_id = server_p;
      }
      const auto g = Deserialize(*blobs_->ReadAll(t->global_best().blob_id()));
      const auto gw = Deserialize(*blobs_->ReadAll(t->global_worst().blob_id()));
      if (t->restart()) RestartParticle(mine.x.data(), mine.v.data(), mine.p.data(), kDim);
      const auto& k = t->coefficients();
      MoveParticle({static_cast<float>(k.a()), static_cast<float>(k.b()), static_cast<float>(k.c()),
                    static_cast<float>(k.d()), static_cast<float>(k.step())},
                   mine.x.data(), mine.v.data(), mine.p.data(), g.data(), gw.data(), kDim);
      mine.iteration = t->iteration();
      const std::string bytes = Serialize(mine.x);
      Report(swarm, id, mine.iteration, Sha256Hex(bytes), &bytes);
      *progressed = true;
    }
    return any_alive;
  }

 private:
  struct Particle {
    std::vector<float> x, v, p;
    std::string p_id;
    int iteration = 0;
    bool done = false;
  };

  void Report(const std::string& swarm, int id, int k, const std::string& blob_id,
              const std::string* bytes = nullptr) {
    Particle& mine = particles_[id];
    auto scores = eval_->Evaluate({id, k, mine.x});
    ASSERT_TRUE(scores.ok());
    wxp::v1::ReportRequest r;
    r.set_swarm(swarm);
    r.set_particle_id(id);
    r.set_iteration(k);
    r.set_position_blob_id(blob_id);
    for (const auto& [name, v] : *scores) (*r.mutable_scores())[name] = v * score_factor_;
    if (training_failure_ && k > 0) {
      r.set_training_failed(true);
      r.set_training_failure_reason(*training_failure_);
    }
    auto out = (*c_)->Report(caller_, r);
    ASSERT_TRUE(out.ok()) << out.status();
    if (out->new_personal_best()) {
      mine.p = mine.x;
      mine.p_id = blob_id;
    }
    if (out->upload_requested()) {
      ASSERT_NE(bytes, nullptr);
      ASSERT_EQ(*blobs_->Put(*bytes), blob_id);
      ASSERT_TRUE((*c_)->OnBlobStored(blob_id).ok());
    }
  }

  Caller caller_;
  std::optional<std::string> training_failure_;
  double score_factor_ = 1;
  std::unique_ptr<Coordinator>* c_;  // follows server restarts
  MemoryBlobs* blobs_;
  Evaluator* eval_;
  std::map<int, Particle> particles_;
};

struct Harness {
  std::unique_ptr<store::SwarmStore> store;
  MemoryBlobs blobs;
  FakeClock clock;
  std::vector<std::string> log;
  std::unique_ptr<Coordinator> coordinator;

  // A SQLite file store when `db_path` is given (the restart tests), else the fake.
  explicit Harness(const std::string& db_path = "") : db_path_(db_path) {
    OpenStore();
    Restart();
  }
  void OpenStore() {
    if (db_path_.empty()) {
      store = std::make_unique<store::MemoryStore>();
    } else {
      auto s = store::SqliteStore::Open({db_path_});
      ASSERT_TRUE(s.ok()) << s.status();
      store = *std::move(s);
    }
  }
  // A server restart: a new coordinator (and, for SQLite, a new connection) on the same
  // state, as after kill -9.
  void Restart() {
    coordinator.reset();
    if (!db_path_.empty()) OpenStore();
    auto c = Coordinator::Create(
        {store.get(), &blobs, &clock, 64, [this](const std::string& l) { log.push_back(l); }});
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator = *std::move(c);
  }

 private:
  std::string db_path_;
};

// The usual federation of two firms over three experts: `a` contributes experts 0 and 2,
// `b` expert 1 (in that order: the pool is built when the third joins), each hosting up
// to three particles; then both take their particles.
inline void JoinThreeExpertsAndStart(const std::string& swarm, FakeAgent& a, FakeAgent& b,
                                     const std::vector<std::vector<float>>& experts) {
  a.Join(swarm, experts[0], 3);
  b.Join(swarm, experts[1], 3);
  a.Join(swarm, experts[2], 3);
  a.Start(swarm);
  b.Start(swarm);
}

inline const Caller kAdmin{"ops", Role::kAdmin};

// The vendor's auditor (SPEC 12): pulls pending claims and re-evaluates each position with
// its own evaluator.
class FakeAuditor {
 public:
  FakeAuditor(std::string name, std::unique_ptr<Coordinator>* c, MemoryBlobs* blobs,
              Evaluator* eval)
      : caller_{std::move(name), Role::kAuditor}, c_(c), blobs_(blobs), eval_(eval) {}

  // Decides every claim the server hands out until it has none; returns how many.
  int AuditAll() {
    int n = 0;
    for (;;) {
      auto task = (*c_)->PullAuditTask(caller_, {});
      EXPECT_TRUE(task.ok()) << task.status();
      if (!task.ok() || task->status() != wxp::v1::PullAuditTaskResponse::TASK) return n;
      const wxp::v1::AuditTask& t = task->task();
      const auto x = Deserialize(*blobs_->ReadAll(t.position_blob_id()));
      auto scores = eval_->Evaluate({t.particle_id(), t.iteration(), x});
      EXPECT_TRUE(scores.ok()) << scores.status();
      wxp::v1::ReportAuditRequest r;
      r.set_swarm(t.swarm());
      r.set_particle_id(t.particle_id());
      r.set_iteration(t.iteration());
      for (const auto& [name, v] : *scores) (*r.mutable_scores())[name] = v;
      auto verdict = (*c_)->ReportAudit(caller_, r);
      EXPECT_TRUE(verdict.ok()) << verdict.status();
      if (!verdict.ok()) return n;
      ++n;
      verdicts_.push_back(verdict->verdict());
    }
  }
  const std::vector<wxp::v1::AuditVerdict>& verdicts() const { return verdicts_; }

 private:
  Caller caller_;
  std::unique_ptr<Coordinator>* c_;  // follows server restarts
  MemoryBlobs* blobs_;
  Evaluator* eval_;
  std::vector<wxp::v1::AuditVerdict> verdicts_;
};

}  // namespace wxp::server::coordinator_testing

#endif  // WXP_SERVER_COORDINATOR_TESTING_FEDERATION_H_
