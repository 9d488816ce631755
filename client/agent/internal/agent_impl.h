// The state and steps of wxp-agent's engine (client/agent/agent.h), shared by the files
// that implement it: agent.cc (creation, the particle loop: move, evaluate, report) and
// agent_setup.cc (join, assignment, particle and space initialisation). Internal to
// client/agent.
#ifndef WXP_CLIENT_AGENT_INTERNAL_AGENT_IMPL_H_
#define WXP_CLIENT_AGENT_INTERNAL_AGENT_IMPL_H_

#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/agent/agent.h"
#include "client/agent/blob_cache.h"
#include "client/agent/particle_state.h"
#include "client/net/blob_transfer.h"
#include "common/backoff.h"
#include "common/local_trainer.h"
#include "common/particle_space.h"
#include "common/safetensors.h"
#include "common/schema.h"
#include "common/status_macros.h"
#include "proto/wxp.pb.h"

namespace wxp::agent {

// The most a failure reason may hold on the wire (ReportRequest.failure_reason and
// training_failure_reason); cut with Utf8Prefix so the string stays valid UTF-8.
inline constexpr size_t kMaxReasonBytes = 1024;

// The expert's weights file (a PEFT directory holds it under a fixed name).
std::string WeightsFile(const std::string& path);

struct Agent::Impl {
  AgentOptions o;
  client::Connection* conn;
  std::unique_ptr<CandidateEvaluator> evaluator;
  int lock_fd = -1;
  std::optional<BlobCache> blobs;
  std::string state_dir, scratch_dir;
  absl::Notification stop;
  uint64_t backoff_seed = 0;
  uint64_t retry_loops = 0;  // each loop jitters differently

  // Swarm facts, known after the first assignment.
  Schema schema;  // layout and transport dtypes of positions
  SafetensorsMetadata metadata;
  std::string adapter_config_json;
  // EXPERT_COEFFICIENTS (SPEC 4.3): positions are alpha blobs of `schema`, decoded with
  // `space` over the experts (kept in the cache as `expert_ids`) for evaluation only.
  std::unique_ptr<ParticleSpace> space;
  std::vector<std::string> expert_ids;
  std::map<int, ParticleState> particles;
  // Local training (SPEC 4.4; GetAssignmentResponse.local_training) and the swarm seed its
  // per-training seeds derive from. Off unless the swarm asks for it.
  LocalTrainingParams training;
  uint64_t swarm_seed = 0;
  int swarm_max_iterations = 0;  // bound DP local training's budget (MakeTrainingRequest)
  int swarm_pool_size = 0;
  AgentSummary summary;

  absl::Mutex hb_mu;
  std::set<int> working ABSL_GUARDED_BY(hb_mu);

  void Log(const std::string& line) {
    if (o.log) {
      o.log(line);
    } else {
      std::cerr << absl::FormatTime("%Y-%m-%dT%H:%M:%E3S ", absl::Now(), absl::LocalTimeZone())
                << line << std::endl;
    }
  }

  // Sleeps up to `d`; false if Stop() was called.
  bool Sleep(absl::Duration d) { return o.clock->SleepUntil(o.clock->Now() + d, stop); }

  // Calls `fn` until it succeeds or fails permanently (common/retry.h), backing off between
  // retryable failures and failing over between servers (client::Connection::Failover).
  // Cancelled if the agent stops meanwhile.
  absl::Status WithRetry(absl::string_view what, const std::function<absl::Status()>& fn) {
    RetryOptions r;
    r.clock = o.clock;
    r.backoff.initial = o.backoff_initial;
    r.backoff.max = o.backoff_max;
    r.backoff.seed = backoff_seed + retry_loops++;
    r.cancel = &stop;
    r.on_retry = [&](int attempt, absl::Duration wait, const absl::Status& s) {
      if (o.observer != nullptr) o.observer->Retrying(what, s);
      if (attempt == 1 || attempt % 10 == 0) {
        Log(absl::StrCat("event=retry call=", what, " attempt=", attempt,
                         " wait_s=", absl::StrFormat("%.2f", absl::ToDoubleSeconds(wait)),
                         " error=\"", s.message(), "\""));
      }
    };
    // With several servers (SPEC 6.1) each failure may move the connection on: to the
    // leader a redirect names, or past a replica that is down. The retry goes there.
    absl::Status s = RetryWithBackoff(r, [&] {
      absl::Status attempt = fn();
      if (!attempt.ok() && conn->Failover(attempt)) {
        Log(absl::StrCat("event=failover call=", what, " server=", conn->current_address()));
      }
      return attempt;
    });
    if (absl::IsCancelled(s) && stop.HasBeenNotified()) {
      return absl::CancelledError("agent stopping");
    }
    return s;
  }

  std::string BlobPath(const std::string& id) const { return blobs->Path(id); }
  std::string StatePath(int id) const { return absl::StrCat(state_dir, "/particle-", id, ".json"); }

  absl::Status Save(const ParticleState& s) { return SaveParticleState(StatePath(s.id), s); }

  // Makes sure blob `id` is in the cache, downloading it if not.
  absl::Status Fetch(const std::string& id) {
    if (blobs->Has(id)) {
      Touch(id);
      return absl::OkStatus();
    }
    WXP_RETURN_IF_ERROR(WithRetry("DownloadBlob", [&]() -> absl::Status {
      absl::StatusOr<client::TransferResult> r = client::DownloadToFile(*conn, id, BlobPath(id));
      if (!r.ok()) return r.status();
      summary.bytes_downloaded += r->bytes_moved;
      if (o.observer != nullptr) o.observer->BytesDownloaded(r->bytes_moved);
      return absl::OkStatus();
    }));
    Touch(id);
    return absl::OkStatus();
  }

  // Downloaded blobs stay for reuse a while: a neighbour's position is often needed again.
  void Touch(const std::string& id) { blobs->Touch(id, 4 + 2 * particles.size()); }

  absl::Status Upload(const std::string& id) {
    return WithRetry("UploadBlob", [&]() -> absl::Status {
      absl::StatusOr<client::TransferResult> r =
          client::UploadFile(*conn, BlobPath(id), id, o.swarm);
      if (!r.ok()) return r.status();
      summary.bytes_uploaded += r->bytes_moved;
      if (o.observer != nullptr) o.observer->BytesUploaded(r->bytes_moved);
      return absl::OkStatus();
    });
  }

  // Removes cached blobs and velocity files no particle refers to.
  void CollectGarbage() {
    std::set<std::string> keep;
    for (const auto& [id, s] : particles) {
      keep.insert({s.x, s.p, s.v});
      keep.insert(s.uploads.begin(), s.uploads.end());
      if (s.pending) keep.insert({s.pending->x, s.pending->v});
    }
    keep.insert(expert_ids.begin(), expert_ids.end());
    blobs->CollectGarbage(keep);
  }

  absl::Status JoinSwarm();
  absl::StatusOr<bool> Assign();  // false: the swarm is already done
  absl::Status InitParticle(const wxp::v1::ParticleAssignment& a, int transport);
  absl::Status LearnSchema(const std::string& position_id, int transport);
  // Fetches every expert once and builds the space; the positions' schema becomes alpha's.
  absl::Status LearnSpace(const wxp::v1::GetAssignmentResponse& resp);
  // Keeps an alpha that came inline as its blob, checking it is the blob `id` names.
  absl::Status PutAlpha(const google::protobuf::RepeatedField<float>& alpha, const std::string& id);
  // The cache id of a target position. EXPERT_COEFFICIENTS: alpha's canonical blob, stored
  // from the inline alpha (the server leaves blob_id empty; a server that sets it must
  // name that blob, DataLoss otherwise). WEIGHTS: blob_id as sent.
  absl::StatusOr<std::string> PositionId(const wxp::v1::PositionRef& ref);
  // One unit of work on a particle; returns how long to wait before it can progress
  // (zero: it progressed).
  absl::StatusOr<absl::Duration> Step(ParticleState& s);
  absl::Status Move(ParticleState& s, const wxp::v1::GetTargetsResponse& t);
  // Trains particle `id`'s moved position m.x (velocity m.v) of iteration m.iteration with
  // the evaluator and follows it (agent_training.cc): m.x names the trained position and
  // m.v holds the followed velocity. A failed training is logged, marked in m
  // (training_failed, for the report) and otherwise leaves m as it was (OK); errors are
  // local I/O only.
  absl::Status TrainMoved(int id, float step, PendingMove& m);
  absl::Status EvaluatePending(ParticleState& s);
  absl::StatusOr<absl::Duration> ReportPending(ParticleState& s);
};

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_INTERNAL_AGENT_IMPL_H_
