// wxp-agent's local training step (SPEC 4.4): between a particle's move and its evaluation,
// in the iterations the swarm's local_training makes due, the evaluator's trainer moves the
// position and the particle follows it by the engine's rule (FollowTrainedPosition), with
// the seed the engine derives, so a federated swarm trains exactly as the in-process runner
// (common/runner.cc) does.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/agent/internal/agent_impl.h"
#include "client/agent/position_files.h"
#include "common/fault_hook.h"
#include "common/swarm_engine.h"
#include "common/swarm_move.h"
#include "common/text_proto.h"

namespace wxp::agent {

absl::Status Agent::Impl::TrainMoved(int id, float step, PendingMove& m) {
  const int64_t n = schema.total_params();
  // Training works on whole vectors (trainers take the position in memory), unlike the
  // streamed move.
  WXP_ASSIGN_OR_RETURN(std::vector<float> x, LoadFlat(BlobPath(m.x), schema));
  std::vector<float> v(n, 0.f);
  if (!m.v.empty()) {
    WXP_ASSIGN_OR_RETURN(FlatReader vr, FlatReader::Velocity(BlobPath(m.v), n));
    WXP_RETURN_IF_ERROR(vr.Read(v.data(), n));
  }
  const TrainingRequest request = MakeTrainingRequest(training, swarm_seed, swarm_max_iterations,
                                                      swarm_pool_size, id, m.iteration, x);
  {
    absl::MutexLock l(&hb_mu);
    working.insert(id);
  }
  absl::StatusOr<std::vector<float>> trained =
      evaluator->Train(request, {id, m.iteration, BlobPath(m.x), &schema, adapter_config_json});
  {
    absl::MutexLock l(&hb_mu);
    working.erase(id);
  }
  // The same checks as the runner's: anything but a finite position of the right length
  // leaves the moved one.
  if (trained.ok() && static_cast<int64_t>(trained->size()) != n) {
    trained = absl::InternalError(
        absl::StrCat("the trainer returned ", trained->size(), " values, expected ", n));
  }
  if (trained.ok()) {
    for (float f : *trained) {
      if (!std::isfinite(f)) {
        trained = absl::InternalError("the trainer returned a non-finite value");
        break;
      }
    }
  }
  if (!trained.ok()) {
    ++summary.trainings_failed;
    m.training_failed = true;
    m.training_reason = Utf8Prefix(trained.status().message(), kMaxReasonBytes);
    Log(absl::StrCat("event=local_training_failed particle=", id, " iteration=", m.iteration,
                     " reason=\"", m.training_reason, "\""));
    return absl::OkStatus();
  }
  FollowTrainedPosition(trained->data(), step, x.data(), v.data(), n);
  WXP_ASSIGN_OR_RETURN(PositionWriter xw, PositionWriter::Create(blobs->dir(), schema, metadata));
  WXP_RETURN_IF_ERROR(xw.Write(x.data(), n));
  WXP_ASSIGN_OR_RETURN(m.x, xw.Finish());
  // Test fault hook (tests/local_training_process_test): a kill held here lands between the
  // trained position and the velocity it implies, the worst moment for a restart.
  HoldIfArmed("WXP_FAULT_HOLD_TRAINING_MARKER");
  // Replaces the move's velocity file (written by this same step, never reported).
  WXP_ASSIGN_OR_RETURN(VelocityWriter vw, VelocityWriter::Create(BlobPath(m.v)));
  WXP_RETURN_IF_ERROR(vw.Write(v.data(), n));
  WXP_RETURN_IF_ERROR(vw.Finish());
  ++summary.trainings;
  Log(absl::StrCat("event=local_training particle=", id, " iteration=", m.iteration,
                   " steps=", training.steps));
  return absl::OkStatus();
}

}  // namespace wxp::agent
