// Writes the seed corpus of coordinator_requests_fuzzer into the directory given as the only
// argument: short request sequences that reach each validation path of SPEC 5.4 from the
// fuzz world (an accepted move, a closed round, duplicates, refusals, pause/stop, weights,
// joins, uploads, deadlines, restarts). Run it after changing the world or the format:
//   bazel run //server/coordinator/fuzz:write_request_seeds --
//   "$PWD/server/coordinator/fuzz/corpus/coordinator_requests"
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "server/coordinator/fuzz/request_sequence.h"

namespace wxp::server::fuzz {
namespace {

std::string Targets(int who, const std::string& swarm, int particle, int k) {
  wxp::v1::GetTargetsRequest r;
  r.set_swarm(swarm);
  r.set_particle_id(particle);
  r.set_iteration(k);
  return Record(Op::kGetTargets, who, r);
}

std::string Report(int who, const std::string& swarm, int particle, int k, const std::string& id,
                   double acc, double ppl, bool failed = false) {
  wxp::v1::ReportRequest r;
  r.set_swarm(swarm);
  r.set_particle_id(particle);
  r.set_iteration(k);
  r.set_position_blob_id(id);
  if (failed) {
    r.set_evaluation_failed(true);
    r.set_failure_reason("evaluator timed out");
  } else {
    (*r.mutable_scores())["acc"] = acc;
    (*r.mutable_scores())["ppl"] = ppl;
  }
  r.set_evaluation_seconds(1.5);
  return Record(Op::kReport, who, r);
}

std::string Control(Op op, const std::string& swarm) {
  wxp::v1::SwarmControlRequest r;
  r.set_swarm(swarm);
  r.set_reason("fuzz seed");
  return Record(op, 3, r);
}

std::string Read(const std::string& swarm) {
  wxp::v1::GetSwarmStatusRequest r;
  r.set_swarm(swarm);
  return Record(Op::kRead, 3, r);
}

std::string At(int k) { return std::string("@") + static_cast<char>(k); }

int Main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_request_seeds DIR\n");
    return 2;
  }
  const std::unique_ptr<RequestWorld> world = RequestWorld::Create();
  auto owner = [&](const std::string& s, int p) { return world->OwnerOf(s, p); };
  // "@" ids: 0-1 experts, 2-6 initial positions, 7-8 stored positions, 9-10 positions
  // kStoreBlob can store (byte 0, 1), 11 another schema (2), 12 NaN values (3).
  std::vector<std::pair<std::string, std::string>> seeds;
  auto move = [&](const std::string& s, int p, int k, int id, double acc) {
    return Targets(owner(s, p), s, p, k) + Report(owner(s, p), s, p, k, At(id), acc, 2.0);
  };
  seeds.push_back({"sync_one_move", move("s", 0, 1, 7, 0.9)});
  seeds.push_back({"sync_round_closes", move("s", 0, 1, 7, 0.9) + move("s", 1, 1, 8, 0.4) +
                                            move("s", 2, 1, 9, 0.6) +
                                            Targets(owner("s", 0), "s", 0, 2) + Read("s")});
  seeds.push_back(
      {"sync_upload_after_report",
       move("s", 1, 1, 9, 0.95) + Record(Op::kStoreBlob, 0, std::string(1, '\0')) + Read("s")});
  seeds.push_back({"sync_deadline_tick", move("s", 0, 1, 7, 0.9) + move("s", 1, 1, 8, 0.5) +
                                             Record(Op::kTick, 0, std::string(1, '\x07')) +
                                             Read("s")});
  seeds.push_back({"async_three_moves", move("a", 0, 1, 7, 0.5) + move("a", 0, 2, 8, 0.7) +
                                            move("a", 1, 1, 8, 0.1) + move("a", 0, 3, 9, 0.8) +
                                            move("a", 1, 2, 7, 0.2) + Read("a")});
  seeds.push_back({"duplicate_and_conflict",
                   move("s", 0, 1, 7, 0.9) + Report(owner("s", 0), "s", 0, 1, At(7), 0.9, 2.0) +
                       Report(owner("s", 0), "s", 0, 1, At(8), 0.9, 2.0)});
  seeds.push_back({"failed_evaluation", Targets(owner("s", 2), "s", 2, 1) +
                                            Report(owner("s", 2), "s", 2, 1, At(8), 0, 0, true)});
  seeds.push_back(
      {"refusals", Targets(owner("s", 0), "s", 0, 1) +
                       Report(2, "s", 0, 1, At(7), 0.5, 2) +              // not the owner
                       Report(owner("s", 0), "s", 0, 5, At(7), 0.5, 2) +  // not open
                       Report(owner("s", 0), "s", 0, 1, At(7), 1.5, 2) +  // out of range
                       Report(owner("s", 0), "s", 0, 1, At(7), NAN, 2) +  // NaN
                       Report(owner("s", 0), "s", 0, 1, "abc", 0.5, 2) +  // not a digest
                       Report(owner("s", 0), "nope", 0, 1, At(7), 0.5, 2) +
                       Targets(owner("s", 0), "s", 9, 1) + Targets(owner("s", 0), "s", 0, 0)});
  seeds.push_back({"pause_resume_stop", Control(Op::kPause, "s") +
                                            Targets(owner("s", 0), "s", 0, 1) +
                                            Control(Op::kResume, "s") + move("s", 0, 1, 7, 0.3) +
                                            Control(Op::kStop, "s") + Control(Op::kResume, "s") +
                                            move("s", 1, 1, 8, 0.3) + Read("s")});
  {
    wxp::v1::SetUtilityWeightsRequest w;
    w.set_swarm("s");
    (*w.mutable_weights())["acc"] = 2;
    (*w.mutable_weights())["ppl"] = 0;
    wxp::v1::SetUtilityWeightsRequest bad = w;
    (*bad.mutable_weights())["nope"] = 1;
    seeds.push_back({"utility_weights", move("s", 0, 1, 7, 0.9) +
                                            Record(Op::kSetUtilityWeights, 3, w) +
                                            Record(Op::kSetUtilityWeights, 3, bad) +
                                            move("s", 1, 1, 8, 0.2) + Read("s")});
    // Scheduled for when round 1 closes (and its g is held), then again once it is past.
    wxp::v1::SetUtilityWeightsRequest later = w;
    later.set_after_iteration(1);
    seeds.push_back({"utility_weights_scheduled",
                     Record(Op::kSetUtilityWeights, 3, later) + move("s", 0, 1, 7, 0.9) +
                         move("s", 1, 1, 8, 0.4) + move("s", 2, 1, 9, 0.6) +
                         Record(Op::kStoreBlob, 0, std::string(1, '\0')) +
                         Targets(owner("s", 0), "s", 0, 2) +
                         Record(Op::kSetUtilityWeights, 3, later) + Read("s")});
  }
  {
    wxp::v1::JoinRequest j;
    j.set_swarm("p");
    j.add_expert_blob_ids(At(1));
    j.set_capacity(2);
    wxp::v1::JoinRequest k = j;
    k.set_expert_blob_ids(0, At(7));
    k.add_expert_blob_ids(At(8));
    k.set_adapter_config_json(R"({"r": 2, "lora_alpha": 4})");
    wxp::v1::JoinRequest wrong = j;
    wrong.set_expert_blob_ids(0, At(11));
    seeds.push_back({"join_builds_pool", Record(Op::kStoreBlob, 0, std::string(1, '\x02')) +
                                             Record(Op::kJoin, 2, wrong) + Record(Op::kJoin, 1, j) +
                                             Record(Op::kJoin, 2, k) + Record(Op::kJoin, 1, j) +
                                             Read("p")});
  }
  {
    wxp::v1::SwarmSpec spec;
    spec.set_name("n");
    auto* u = spec.add_utility();
    u->set_name("acc");
    u->set_weight(1);
    spec.set_min_experts(1);
    spec.mutable_hyperparameters()->set_pool_size(1);
    wxp::v1::JoinRequest j;
    j.set_swarm("n");
    j.add_expert_blob_ids(At(0));
    j.set_capacity(1);
    seeds.push_back({"create_join_restart", Record(Op::kCreateSwarm, 3, spec) +
                                                Record(Op::kJoin, 0, j) +
                                                Record(Op::kRestart, 0, "") + Read("n")});
  }
  seeds.push_back({"nan_blob_upload",
                   move("a", 1, 1, 12, 0.99) + Record(Op::kStoreBlob, 0, std::string(1, '\x03'))});
  for (const auto& [name, bytes] : seeds) {
    std::ofstream out(std::string(argv[1]) + "/" + name, std::ios::binary);
    out << bytes;
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", name.c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds (%zu prepared blobs)\n", seeds.size(), world->num_blobs());
  return 0;
}

}  // namespace
}  // namespace wxp::server::fuzz

int main(int argc, char** argv) { return wxp::server::fuzz::Main(argc, argv); }
