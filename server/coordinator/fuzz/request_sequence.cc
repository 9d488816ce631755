#include "server/coordinator/fuzz/request_sequence.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/sha256.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "tests/fuzz/fuzz_check.h"

namespace wxp::server::fuzz {
namespace {

const Caller kCallers[kNumCallers] = {{"firm-a", Role::kAgent},
                                      {"firm-b", Role::kAgent},
                                      {"firm-c", Role::kAgent},
                                      {"ops", Role::kAdmin}};
const Caller& kAdmin = kCallers[3];

Schema TestSchema() {
  return Schema(
      {{"m.lora_A.weight", DType::kF32, {2, 3}}, {"m.lora_B.weight", DType::kBF16, {3, 2}}});
}

std::string Blob(float fill) {
  Adapter a;
  a.schema = TestSchema();
  a.values.assign(static_cast<size_t>(a.schema.total_params()), fill);
  for (size_t i = 0; i < a.values.size(); ++i) a.values[i] += 0.125f * static_cast<float>(i);
  return *SerializeAdapter(a);
}

template <typename T>
T MustOk(absl::StatusOr<T> v, const char* what) {
  WXP_FUZZ_CHECK(v.ok(), absl::StrCat("setup: ", what, ": ", v.status().ToString()));
  return *std::move(v);
}

wxp::v1::SwarmSpec Spec(const std::string& text) {
  wxp::v1::SwarmSpec spec;
  WXP_FUZZ_CHECK(google::protobuf::TextFormat::ParseFromString(text, &spec), text);
  return spec;
}

std::string Text(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(m, &out);
  return out;
}

// Bytes that compare equal exactly when the messages do (map entries sorted). Cheaper than
// text, which matters: every request is bracketed by two captures.
std::string Deterministic(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

// Everything a request could change: the store's rows and the coordinator's views.
struct State {
  std::vector<store::SwarmRecord> swarms;
  std::vector<std::vector<store::ParticleRow>> particles;
  std::vector<std::vector<store::ExpertRecord>> experts;
  std::vector<std::vector<store::EvaluationRecord>> evaluations;
  std::vector<std::vector<store::HistoryRecord>> history;
  std::vector<std::vector<store::AuditRecord>> audit;
  std::vector<store::BlobRecord> blobs;
  std::vector<std::string> views;  // Deterministic() status / particles / weights per swarm
  // The same views as messages, for the finding's message only.
  std::vector<std::shared_ptr<const google::protobuf::Message>> view_messages;

  // The first part that differs, or "".
  std::string Diff(const State& o) const {
    if (!(swarms == o.swarms)) return "swarm rows";
    if (!(particles == o.particles)) return "particle rows";
    if (!(experts == o.experts)) return "expert rows";
    if (!(evaluations == o.evaluations)) return "evaluation rows";
    if (!(history == o.history)) return "history rows";
    if (!(audit == o.audit)) return "audit rows";
    if (!(blobs == o.blobs)) return "blob rows";
    for (size_t i = 0; i < views.size() && i < o.views.size(); ++i) {
      if (views[i] != o.views[i]) {
        return absl::StrCat("coordinator view ", i, " (status, particles, weights per swarm)",
                            "\n--- before\n", Text(*view_messages[i]), "--- after\n",
                            Text(*o.view_messages[i]));
      }
    }
    if (views.size() != o.views.size()) return "number of coordinator views";
    return "";
  }
};

State Capture(store::MemoryStore& st, Coordinator& c) {
  State s;
  s.swarms = MustOk(st.ListSwarms(), "ListSwarms");
  for (const store::SwarmRecord& row : s.swarms) {
    s.particles.push_back(MustOk(st.ListParticles(row.name), "ListParticles"));
    s.experts.push_back(MustOk(st.ListExperts(row.name), "ListExperts"));
    s.evaluations.push_back(MustOk(st.ListEvaluations(row.name), "ListEvaluations"));
    s.history.push_back(MustOk(st.ListHistory(row.name), "ListHistory"));
    s.audit.push_back(MustOk(st.ListAudit(row.name), "ListAudit"));
    s.view_messages.push_back(std::make_shared<wxp::v1::SwarmStatus>(
        MustOk(c.GetSwarmStatus(row.name), "GetSwarmStatus")));
    s.view_messages.push_back(std::make_shared<wxp::v1::ListParticlesResponse>(
        MustOk(c.ListParticles(row.name), "ListParticles")));
    s.view_messages.push_back(std::make_shared<wxp::v1::UtilityWeights>(
        MustOk(c.GetUtilityWeights(row.name), "GetUtilityWeights")));
  }
  for (const auto& m : s.view_messages) s.views.push_back(Deterministic(*m));
  s.blobs = MustOk(st.ListBlobs(), "ListBlobs");
  return s;
}

// Liveness is not acknowledged state: SwarmStatus.agents_online counts every call an agent
// makes (a refused one too: the agent was heard from), and after a restart it counts from the
// stored joins and reports instead (as proto/wxp.proto documents). A refused request or a
// restart may change it, nothing else.
State WithoutLiveness(State s) {
  for (size_t i = 0; i < s.view_messages.size(); ++i) {
    const auto* status = dynamic_cast<const wxp::v1::SwarmStatus*>(s.view_messages[i].get());
    if (status == nullptr) continue;
    auto copy = std::make_shared<wxp::v1::SwarmStatus>(*status);
    copy->clear_agents_online();
    s.views[i] = Deterministic(*copy);
    s.view_messages[i] = std::move(copy);
  }
  return s;
}

template <typename T>
bool ParsePayload(absl::string_view payload, T* out) {
  return out->ParseFromArray(payload.data(), static_cast<int>(payload.size()));
}

}  // namespace

const Caller& CallerOf(int who) {
  return kCallers[(who % kNumCallers + kNumCallers) % kNumCallers];
}

std::string Record(Op op, int who, absl::string_view payload) {
  const size_t n = std::min<size_t>(payload.size(), 0xFFFF);
  std::string out;
  out.push_back(static_cast<char>(op));
  out.push_back(static_cast<char>(who));
  out.push_back(static_cast<char>(n & 0xFF));
  out.push_back(static_cast<char>(n >> 8));
  out.append(payload.data(), n);
  return out;
}

std::string Record(Op op, int who, const google::protobuf::Message& request) {
  return Record(op, who, request.SerializeAsString());
}

std::unique_ptr<RequestWorld> RequestWorld::Create() {
  std::unique_ptr<RequestWorld> w(new RequestWorld);
  w->Setup();
  return w;
}

void RequestWorld::Setup() {
  c_ = MustOk(Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}}),
              "Coordinator::Create");
  const std::string utility =
      "utility { name: 'acc' weight: 1 min_value: 0 max_value: 1 } "
      "utility { name: 'ppl' direction: MINIMIZE weight: 0.1 min_value: 1 } ";
  MustOk(c_->CreateSwarm(kAdmin, Spec("name: 's' min_experts: 2 round_deadline_seconds: 60 "
                                      "quorum: 0.5 hyperparameters { seed: 3 pool_size: 3 } " +
                                      utility)),
         "create s");
  MustOk(c_->CreateSwarm(kAdmin, Spec("name: 'a' mode: ASYNC upload_policy: ALWAYS min_experts: 2 "
                                      "hyperparameters { seed: 5 pool_size: 2 max_iterations: 3 "
                                      "patience: 2 } " +
                                      utility)),
         "create a");
  MustOk(c_->CreateSwarm(kAdmin,
                         Spec("name: 'p' min_experts: 3 hyperparameters { seed: 7 } " + utility)),
         "create p");
  const std::string expert_a = Blob(0.25f), expert_b = Blob(-0.5f);
  for (const std::string& bytes : {expert_a, expert_b})
    ids_.push_back(MustOk(blobs_.Put(bytes), "put"));
  for (const char* swarm : {"s", "a"}) {
    for (int who : {0, 1}) {
      wxp::v1::JoinRequest join;
      join.set_swarm(swarm);
      join.add_expert_blob_ids(ids_[who]);
      join.set_capacity(2);
      MustOk(c_->Join(kCallers[who], join), "join");
    }
  }
  {
    wxp::v1::JoinRequest join;
    join.set_swarm("p");
    join.add_expert_blob_ids(ids_[0]);
    join.set_capacity(3);
    join.set_adapter_config_json(R"({"peft_type": "LORA", "r": 2, "target_modules": ["m"]})");
    MustOk(c_->Join(kCallers[0], join), "join p");
  }
  // Initial evaluations, so both pools are moving.
  for (const char* swarm : {"s", "a"}) {
    for (int who : {0, 1}) {
      const wxp::v1::GetAssignmentResponse as =
          MustOk(c_->GetAssignment(kCallers[who], swarm), "assign");
      for (const auto& p : as.particles()) {
        owners_[{swarm, p.particle_id()}] = who;
        ids_.push_back(p.initial_position_blob_id());
        wxp::v1::ReportRequest r;
        r.set_swarm(swarm);
        r.set_particle_id(p.particle_id());
        r.set_iteration(0);
        r.set_position_blob_id(p.initial_position_blob_id());
        (*r.mutable_scores())["acc"] = 0.2 + 0.1 * p.particle_id();
        (*r.mutable_scores())["ppl"] = 3 - 0.5 * p.particle_id();
        MustOk(c_->Report(kCallers[who], r), "initial report");
      }
    }
  }
  // Positions an agent might report next: some already stored, some only storable later.
  for (float f : {0.5f, 1.0f}) ids_.push_back(MustOk(blobs_.Put(Blob(f)), "put"));
  for (float f : {2.0f, -1.0f}) {
    prepared_.push_back(Blob(f));
    ids_.push_back(Sha256Hex(prepared_.back()));
  }
  // A well-formed blob of another schema, and one with a NaN.
  Adapter other;
  other.schema = Schema({{"m.lora_A.weight", DType::kF32, {3, 2}}});
  other.values.assign(6, 1.0f);
  prepared_.push_back(*SerializeAdapter(other));
  ids_.push_back(Sha256Hex(prepared_.back()));
  Adapter nan;
  nan.schema = TestSchema();
  nan.values.assign(static_cast<size_t>(nan.schema.total_params()), NAN);
  prepared_.push_back(*SerializeAdapter(nan));
  ids_.push_back(Sha256Hex(prepared_.back()));
}

int RequestWorld::OwnerOf(const std::string& swarm, int particle) const {
  auto it = owners_.find({swarm, particle});
  return it == owners_.end() ? 2 : it->second;
}

std::string RequestWorld::Resolve(const std::string& id) const {
  if (id.size() == 2 && id[0] == '@') return ids_[static_cast<uint8_t>(id[1]) % ids_.size()];
  return id;
}

std::optional<absl::Status> RequestWorld::Step(Op op, int who, absl::string_view payload) {
  const Caller& caller = CallerOf(who);
  absl::Status status;
  switch (op) {
    case Op::kJoin: {
      wxp::v1::JoinRequest r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      for (std::string& id : *r.mutable_expert_blob_ids()) id = Resolve(id);
      status = c_->Join(caller, r).status();
      break;
    }
    case Op::kGetAssignment: {
      wxp::v1::GetAssignmentRequest r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      status = c_->GetAssignment(caller, r.swarm()).status();
      break;
    }
    case Op::kGetTargets: {
      wxp::v1::GetTargetsRequest r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      absl::StatusOr<wxp::v1::GetTargetsResponse> t = c_->GetTargets(caller, r);
      if (t.ok() && t->status() == wxp::v1::GetTargetsResponse::READY) {
        const auto& k = t->coefficients();
        WXP_FUZZ_CHECK(std::isfinite(k.a()) && std::isfinite(k.b()) && std::isfinite(k.c()) &&
                           std::isfinite(k.d()) && std::isfinite(k.step()),
                       Text(*t));
      }
      status = t.status();
      break;
    }
    case Op::kReport: {
      wxp::v1::ReportRequest r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      r.set_position_blob_id(Resolve(r.position_blob_id()));
      absl::StatusOr<wxp::v1::ReportResponse> out = c_->Report(caller, r);
      if (out.ok()) {
        WXP_FUZZ_CHECK(
            std::isfinite(out->utility()) && std::isfinite(out->global_best_utility()),
            absl::StrCat("accepted report with a non-finite utility:\n", Text(r), Text(*out)));
      }
      status = out.status();
      break;
    }
    case Op::kCreateSwarm: {
      wxp::v1::SwarmSpec r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      status = c_->CreateSwarm(kAdmin, r).status();
      break;
    }
    case Op::kSetUtilityWeights: {
      wxp::v1::SetUtilityWeightsRequest r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      const std::map<std::string, double> weights(r.weights().begin(), r.weights().end());
      status = c_->SetUtilityWeights(kAdmin, r.swarm(), weights, r.after_iteration()).status();
      break;
    }
    case Op::kPause:
    case Op::kResume:
    case Op::kStop: {
      wxp::v1::SwarmControlRequest r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      status = op == Op::kPause    ? c_->Pause(kAdmin, r.swarm(), r.reason()).status()
               : op == Op::kResume ? c_->Resume(kAdmin, r.swarm(), r.reason()).status()
                                   : c_->Stop(kAdmin, r.swarm(), r.reason()).status();
      break;
    }
    case Op::kStoreBlob: {
      const std::string bytes = payload.size() == 1
                                    ? prepared_[static_cast<uint8_t>(payload[0]) % prepared_.size()]
                                    : std::string(payload);
      const std::string id = MustOk(blobs_.Put(bytes), "put");
      // A malformed blob is refused here (its evaluations stay not held); either way the
      // bytes stay, as they do on disk.
      (void)c_->OnBlobStored(id);
      return std::nullopt;
    }
    case Op::kTick: {
      const int steps = payload.empty() ? 1 : static_cast<uint8_t>(payload[0]);
      clock_.Advance(absl::Seconds(10 * steps));
      const absl::Status tick = c_->Tick();
      WXP_FUZZ_CHECK(tick.ok(), tick.ToString());
      return std::nullopt;
    }
    case Op::kRead: {
      wxp::v1::GetSwarmStatusRequest r;
      if (!ParsePayload(payload, &r)) return std::nullopt;
      (void)c_->GetSwarmStatus(r.swarm());
      (void)c_->ListParticles(r.swarm());
      (void)c_->GetHistory(r.swarm());
      (void)c_->GetUtilityWeights(r.swarm());
      (void)c_->Best(r.swarm());
      (void)c_->ListSwarms();
      return std::nullopt;
    }
    case Op::kRestart: {
      c_ = MustOk(Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}}),
                  "restart");
      return std::nullopt;
    }
    case Op::kNumOps:
      break;
  }
  return status;
}

void RequestWorld::Run(absl::string_view input) {
  // For writing seeds: what each record did.
  static const bool verbose = std::getenv("WXP_FUZZ_VERBOSE") != nullptr;
  while (input.size() >= 4) {
    const Op op =
        static_cast<Op>(static_cast<uint8_t>(input[0]) % static_cast<uint8_t>(Op::kNumOps));
    const int who = static_cast<uint8_t>(input[1]);
    const size_t n = std::min<size_t>(
        input.size() - 4, static_cast<uint8_t>(input[2]) | static_cast<uint8_t>(input[3]) << 8);
    const absl::string_view payload = input.substr(4, n);
    input.remove_prefix(4 + n);

    const bool is_request =
        op != Op::kStoreBlob && op != Op::kTick && op != Op::kRead && op != Op::kRestart;
    State before;
    if (is_request) before = WithoutLiveness(Capture(store_, *c_));
    const std::optional<absl::Status> status = Step(op, who, payload);
    if (verbose) {
      std::fprintf(stderr, "op %d by %s: %s\n", static_cast<int>(op), CallerOf(who).name.c_str(),
                   status ? status->ToString().c_str() : "-");
    }
    if (!status || status->ok()) continue;
    WXP_FUZZ_CHECK(!status->message().empty(),
                   absl::StrCat("refusal without a message: ", status->ToString()));
    WXP_FUZZ_CHECK(status->code() != absl::StatusCode::kInternal &&
                       status->code() != absl::StatusCode::kUnknown &&
                       status->code() != absl::StatusCode::kDataLoss,
                   absl::StrCat("a bad request is not a server error: ", status->ToString()));
    const std::string diff = before.Diff(WithoutLiveness(Capture(store_, *c_)));
    WXP_FUZZ_CHECK(diff.empty(), absl::StrCat("refused request (op ", static_cast<int>(op), ", ",
                                              status->ToString(), ") changed ", diff));
  }
  // What was acknowledged survives a restart: the store alone rebuilds the same swarms.
  const State now = WithoutLiveness(Capture(store_, *c_));
  Step(Op::kRestart, 0, "");
  const std::string diff = now.Diff(WithoutLiveness(Capture(store_, *c_)));
  WXP_FUZZ_CHECK(diff.empty(), absl::StrCat("a restart changed ", diff));
}

}  // namespace wxp::server::fuzz
