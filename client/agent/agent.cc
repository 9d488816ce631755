#include "client/agent/agent.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/agent/blob_cache.h"
#include "client/agent/coefficient_space.h"
#include "client/agent/internal/agent_impl.h"
#include "client/agent/particle_state.h"
#include "client/agent/position_files.h"
#include "client/net/blob_transfer.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/backoff.h"
#include "common/dp_record.h"
#include "common/dtype_proto.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/swarm_engine.h"
#include "common/text_proto.h"

namespace wxp::agent {
namespace fs = std::filesystem;

namespace {

// SPEC 12: OK if the expert's metadata records DP training within `max_epsilon` (0: any).
absl::Status CheckPrivateExpert(const std::string& path, const SafetensorsMetadata& metadata,
                                double max_epsilon) {
  absl::StatusOr<std::optional<dp::PrivacyRecord>> r = dp::FindPrivacyRecord(metadata);
  if (!r.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("expert ", path, ": its privacy record is invalid (", r.status().message(),
                     "), and this agent requires private experts (require_private_experts)"));
  }
  if (!r->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert ", path, " was not trained with differential privacy (its metadata has no '",
        dp::kMetadataKey,
        "' record), and this agent requires private experts (require_private_experts): "
        "train it with `wxpctl legal finetune --dp-epsilon E --dp-delta D` or drop the option"));
  }
  if (max_epsilon > 0 && (*r)->epsilon > max_epsilon) {
    return absl::FailedPreconditionError(
        absl::StrFormat("expert %s was trained with epsilon %.4g (delta %g), above this agent's "
                        "max_expert_epsilon %.4g",
                        path, (*r)->epsilon, (*r)->delta, max_epsilon));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(
    AgentOptions options, client::Connection* connection,
    std::unique_ptr<CandidateEvaluator> evaluator) {
  if (options.swarm.empty()) return absl::InvalidArgumentError("no swarm named");
  if (options.expert_paths.empty()) {
    return absl::InvalidArgumentError("no expert adapters given (expert_paths)");
  }
  if (options.capacity < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity must be >= 1, not ", options.capacity));
  }
  if (options.work_dir.empty()) return absl::InvalidArgumentError("no work directory given");
  if (options.clock == nullptr) return absl::InvalidArgumentError("no clock given");
  if (!(options.max_expert_epsilon >= 0 && std::isfinite(options.max_expert_epsilon))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_expert_epsilon must be a finite number >= 0, not ", options.max_expert_epsilon));
  }
  if (options.backoff_initial <= absl::ZeroDuration() ||
      options.backoff_max < options.backoff_initial) {
    return absl::InvalidArgumentError("reconnect backoff must be > 0 and initial <= max");
  }
  auto impl = std::make_unique<Impl>();
  impl->o = std::move(options);
  impl->conn = connection;
  impl->evaluator = std::move(evaluator);
  impl->backoff_seed = impl->o.backoff_seed != 0 ? impl->o.backoff_seed : std::random_device{}();
  for (const std::string& e : impl->o.expert_paths) {
    // Validated here so a bad file is named before anything goes on the wire.
    absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(WeightsFile(e));
    if (!f.ok()) {
      return absl::Status(f.status().code(),
                          absl::StrCat("expert ", e, ": ", f.status().message()));
    }
    if (impl->o.require_private_experts) {
      WXP_RETURN_IF_ERROR(CheckPrivateExpert(e, f->metadata(), impl->o.max_expert_epsilon));
    }
  }
  const std::string& wd = impl->o.work_dir;
  WXP_RETURN_IF_ERROR(MakeDirs(wd));
  fs::permissions(wd, fs::perms::owner_all, fs::perm_options::replace);
  impl->lock_fd = open((wd + "/LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->lock_fd < 0) return ErrnoStatus(errno, "cannot create", wd + "/LOCK");
  if (flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    close(impl->lock_fd);
    return absl::FailedPreconditionError(
        absl::StrCat("work directory ", wd, " is in use by another wxp-agent"));
  }
  WXP_ASSIGN_OR_RETURN(BlobCache blobs, BlobCache::Open(wd + "/blobs"));
  impl->blobs = std::move(blobs);
  impl->state_dir = wd + "/swarms/" + impl->o.swarm;
  impl->scratch_dir = wd + "/scratch";
  WXP_RETURN_IF_ERROR(MakeDirs(impl->state_dir));
  WXP_RETURN_IF_ERROR(MakeDirs(impl->scratch_dir));
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() {
  if (impl_->lock_fd >= 0) close(impl_->lock_fd);
}

void Agent::Stop() {
  if (!impl_->stop.HasBeenNotified()) impl_->stop.Notify();
}

absl::Status Agent::Impl::Move(ParticleState& s, const wxp::v1::GetTargetsResponse& t) {
  WXP_ASSIGN_OR_RETURN(const std::string g, PositionId(t.global_best()));
  WXP_ASSIGN_OR_RETURN(const std::string gw, PositionId(t.global_worst()));
  WXP_ASSIGN_OR_RETURN(const std::string server_p, PositionId(t.personal_best()));
  WXP_RETURN_IF_ERROR(Fetch(g));
  WXP_RETURN_IF_ERROR(Fetch(gw));
  // The server's p_i wins (it may have re-ranked after a utility weight change).
  if (!server_p.empty() && server_p != s.p) {
    WXP_RETURN_IF_ERROR(Fetch(server_p));
    s.p = server_p;
  }
  const int k = t.iteration();
  const int64_t n = schema.total_params();
  if (s.toward_best) {
    WXP_ASSIGN_OR_RETURN(FlatReader target, FlatReader::Position(BlobPath(g), schema));
    WXP_ASSIGN_OR_RETURN(FlatReader x, FlatReader::Position(BlobPath(s.x), schema));
    s.v = absl::StrCat("v-", s.id, "-0.f32");
    WXP_ASSIGN_OR_RETURN(VelocityWriter w, VelocityWriter::Create(BlobPath(s.v)));
    WXP_RETURN_IF_ERROR(StreamDifference(target, x, w));
    WXP_RETURN_IF_ERROR(w.Finish());
    s.toward_best = false;
  }
  WXP_ASSIGN_OR_RETURN(FlatReader x, FlatReader::Position(BlobPath(s.x), schema));
  FlatReader v = FlatReader::Zeros(n);
  if (!s.v.empty()) {
    WXP_ASSIGN_OR_RETURN(v, FlatReader::Velocity(BlobPath(s.v), n));
  }
  WXP_ASSIGN_OR_RETURN(FlatReader p, FlatReader::Position(BlobPath(s.p), schema));
  WXP_ASSIGN_OR_RETURN(FlatReader gr, FlatReader::Position(BlobPath(g), schema));
  WXP_ASSIGN_OR_RETURN(FlatReader gwr, FlatReader::Position(BlobPath(gw), schema));
  WXP_ASSIGN_OR_RETURN(PositionWriter xw, PositionWriter::Create(blobs->dir(), schema, metadata));
  PendingMove m;
  m.iteration = k;
  m.v = absl::StrCat("v-", s.id, "-", k, ".f32");
  WXP_ASSIGN_OR_RETURN(VelocityWriter vw, VelocityWriter::Create(BlobPath(m.v)));
  const auto& c = t.coefficients();
  const MoveCoefficients mc{static_cast<float>(c.a()), static_cast<float>(c.b()),
                            static_cast<float>(c.c()), static_cast<float>(c.d()),
                            static_cast<float>(c.step())};
  WXP_RETURN_IF_ERROR(StreamMove(mc, t.restart(), {&x, &v, &p, &gr, &gwr}, xw, vw));
  WXP_ASSIGN_OR_RETURN(m.x, xw.Finish());
  WXP_RETURN_IF_ERROR(vw.Finish());
  // Before the state is saved: a crash mid-training recomputes move and training alike.
  if (!space && LocalTrainingDue(training.every_k, k)) {
    WXP_RETURN_IF_ERROR(TrainMoved(s.id, mc.step, m));
  }
  if (space) {
    // The server names alpha by its canonical blob: use the same name here.
    WXP_ASSIGN_OR_RETURN(std::vector<float> alpha, ReadAlphaBlob(BlobPath(m.x)));
    WXP_ASSIGN_OR_RETURN(m.x, PutAlphaBlob(*blobs, alpha));
  }
  s.pending = m;
  return Save(s);  // from here on the move is never recomputed
}

absl::Status Agent::Impl::EvaluatePending(ParticleState& s) {
  PendingMove& m = *s.pending;
  {
    absl::MutexLock l(&hb_mu);
    working.insert(s.id);
  }
  const absl::Time start = o.clock->Now();
  absl::StatusOr<Scores> scores;
  if (space && space->options().kind == SpaceKind::kTokenMixture) {
    // Alpha itself is scored: the experts are loaded, nothing is decoded.
    absl::StatusOr<std::vector<float>> alpha = ReadAlphaBlob(BlobPath(m.x));
    scores =
        alpha.ok() ? evaluator->EvaluateTokenMixture(s.id, m.iteration, *alpha) : alpha.status();
  } else if (space) {
    // Only the evaluator sees the adapter alpha decodes to; it is not kept.
    const std::string decoded_path = absl::StrCat(scratch_dir, "/decoded-", s.id, ".safetensors");
    absl::StatusOr<Adapter> decoded = DecodeToFile(*space, BlobPath(m.x), decoded_path);
    if (decoded.ok()) {
      scores = evaluator->Evaluate(
          {s.id, m.iteration, decoded_path, &decoded->schema, decoded->config_json.value_or("")});
    } else {
      scores = decoded.status();
    }
    std::error_code ec;
    fs::remove(decoded_path, ec);
  } else {
    scores = evaluator->Evaluate({s.id, m.iteration, BlobPath(m.x), &schema});
  }
  m.seconds = absl::ToDoubleSeconds(o.clock->Now() - start);
  {
    absl::MutexLock l(&hb_mu);
    working.erase(s.id);
  }
  m.evaluated = true;
  if (o.observer != nullptr) o.observer->EvaluationDone(m.seconds, !scores.ok());
  if (scores.ok()) {
    m.scores = *scores;
  } else {
    if (m.iteration == 0) {
      // The pool cannot be ranked without it: this is a broken evaluator, not a bad
      // candidate. Leave the particle unevaluated and let the operator fix it.
      m.evaluated = false;
      return absl::FailedPreconditionError(
          absl::StrCat("the evaluator failed on particle ", s.id,
                       "'s initial position: ", scores.status().message()));
    }
    m.failed = true;
    m.reason = Utf8Prefix(scores.status().message(), kMaxReasonBytes);
    ++summary.evaluations_failed;
    Log(absl::StrCat("event=evaluation_failed particle=", s.id, " iteration=", m.iteration,
                     " reason=\"", m.reason, "\""));
  }
  return Save(s);  // a retried report must carry exactly these scores
}

absl::StatusOr<absl::Duration> Agent::Impl::ReportPending(ParticleState& s) {
  PendingMove& m = *s.pending;
  wxp::v1::ReportRequest req;
  req.set_swarm(o.swarm);
  req.set_particle_id(s.id);
  req.set_iteration(m.iteration);
  if (space) {
    // Alpha names the position (the server derives its id), so neither the id field nor
    // the key repeats the 64-character id: a retry after a restart is recognised by its
    // payload, the key is only a label.
    WXP_ASSIGN_OR_RETURN(std::vector<float> alpha, ReadAlphaBlob(BlobPath(m.x)));
    req.mutable_position_alpha()->Assign(alpha.begin(), alpha.end());
    req.set_idempotency_key(absl::StrCat(s.id, ":", m.iteration));
  } else {
    req.set_position_blob_id(m.x);
    req.set_idempotency_key(absl::StrCat(s.id, ":", m.iteration, ":", m.x));
  }
  if (m.failed) {
    req.set_evaluation_failed(true);
    req.set_failure_reason(m.reason);
  } else {
    for (const auto& [k, v] : m.scores) (*req.mutable_scores())[k] = v;
  }
  req.set_evaluation_seconds(m.seconds);
  if (m.training_failed) {
    req.set_training_failed(true);
    req.set_training_failure_reason(m.training_reason);
  }
  wxp::v1::ReportResponse resp;
  absl::Status st = WithRetry("Report", [&] {
    return FromGrpc(conn->agent().Report(conn->NewContext().get(), req, &resp));
  });
  if (st.code() == absl::StatusCode::kInvalidArgument && !m.failed && m.iteration > 0) {
    // The scores are unusable for this swarm (a component missing or out of range): that
    // is a failed evaluation, which the server can take without ranking anything.
    m.failed = true;
    m.reason =
        Utf8Prefix(absl::StrCat("scores refused by the server: ", st.message()), kMaxReasonBytes);
    m.scores.clear();
    ++summary.evaluations_failed;
    Log(absl::StrCat("event=evaluation_failed particle=", s.id, " iteration=", m.iteration,
                     " reason=\"", m.reason, "\""));
    WXP_RETURN_IF_ERROR(Save(s));
    return absl::ZeroDuration();
  }
  if (st.code() == absl::StatusCode::kFailedPrecondition && m.iteration > 0) {
    // Sync straggler: the round closed without us. The move is void; the server moves
    // this particle to the open round with its next targets.
    Log(absl::StrCat("event=report_stale particle=", s.id, " iteration=", m.iteration, " reason=\"",
                     st.message(), "\""));
    s.pending.reset();
    WXP_RETURN_IF_ERROR(Save(s));
    return absl::ZeroDuration();
  }
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("report of particle ", s.id, " iteration ",
                                                m.iteration, ": ", st.message()));
  }
  // Acknowledged: commit.
  s.iteration = m.iteration;
  s.x = m.x;
  s.v = m.v;
  if (resp.new_personal_best() || m.iteration == 0) s.p = m.x;
  if (resp.upload_requested()) s.uploads.push_back(m.x);
  s.pending.reset();
  WXP_RETURN_IF_ERROR(Save(s));
  ++summary.iterations_reported;
  if (o.observer != nullptr) o.observer->ReportAcknowledged();
  const uint64_t up0 = summary.bytes_uploaded;
  std::string uploaded = resp.upload_requested() ? "yes" : "no";
  while (!s.uploads.empty()) {
    absl::Status u = Upload(s.uploads.front());
    if (!u.ok()) {
      if (u.code() == absl::StatusCode::kCancelled) {
        uploaded = "pending";
        break;
      }
      return u;
    }
    s.uploads.erase(s.uploads.begin());
    WXP_RETURN_IF_ERROR(Save(s));
  }
  Log(absl::StrCat("event=iteration particle=", s.id, " iteration=", s.iteration,
                   " utility=", m.failed ? "failed" : absl::StrFormat("%.6g", resp.utility()),
                   " g=", absl::StrFormat("%.6g", resp.global_best_utility()),
                   resp.new_personal_best() ? " new_personal_best=1" : "",
                   resp.new_global_best() ? " new_global_best=1" : "", " uploaded=", uploaded,
                   " bytes_up=", summary.bytes_uploaded - up0,
                   " eval_s=", absl::StrFormat("%.3f", m.seconds)));
  CollectGarbage();
  return absl::ZeroDuration();
}

absl::StatusOr<absl::Duration> Agent::Impl::Step(ParticleState& s) {
  // Uploads the server asked for come first: other particles may wait on them (g, g_w).
  while (!s.uploads.empty()) {
    WXP_RETURN_IF_ERROR(Upload(s.uploads.front()));
    s.uploads.erase(s.uploads.begin());
    WXP_RETURN_IF_ERROR(Save(s));
  }
  if (!s.pending) {
    wxp::v1::GetTargetsRequest req;
    req.set_swarm(o.swarm);
    req.set_particle_id(s.id);
    req.set_iteration(s.iteration + 1);
    wxp::v1::GetTargetsResponse t;
    WXP_RETURN_IF_ERROR(WithRetry("GetTargets", [&] {
      return FromGrpc(conn->agent().GetTargets(conn->NewContext().get(), req, &t));
    }));
    switch (t.status()) {
      case wxp::v1::GetTargetsResponse::DONE:
        s.done = true;
        WXP_RETURN_IF_ERROR(Save(s));
        Log(absl::StrCat("event=particle_done particle=", s.id, " iteration=", s.iteration,
                         " swarm_state=", wxp::v1::SwarmState_Name(t.swarm_state())));
        return absl::ZeroDuration();
      case wxp::v1::GetTargetsResponse::WAIT:
        return absl::Milliseconds(std::max<int64_t>(t.retry_after_ms(), 20));
      case wxp::v1::GetTargetsResponse::READY:
        break;
      default:
        return absl::InternalError("GetTargets answered without a status");
    }
    const uint64_t down0 = summary.bytes_downloaded;
    WXP_RETURN_IF_ERROR(Move(s, t));
    if (summary.bytes_downloaded > down0) {
      Log(absl::StrCat("event=fetched particle=", s.id, " iteration=", t.iteration(),
                       " bytes_down=", summary.bytes_downloaded - down0));
    }
  }
  if (!s.pending->evaluated) WXP_RETURN_IF_ERROR(EvaluatePending(s));
  return ReportPending(s);
}

absl::StatusOr<AgentSummary> Agent::Run() {
  Impl& m = *impl_;
  WXP_RETURN_IF_ERROR(m.JoinSwarm());
  WXP_ASSIGN_OR_RETURN(bool running, m.Assign());
  if (!running) {
    m.summary.swarm_done = true;
    m.Log("event=swarm_done (before this agent had work)");
    return m.summary;
  }
  absl::Notification hb_stop;
  std::thread heartbeat([&] {
    while (!hb_stop.WaitForNotificationWithTimeout(m.o.heartbeat_interval)) {
      wxp::v1::HeartbeatRequest req;
      req.set_swarm(m.o.swarm);
      {
        absl::MutexLock l(&m.hb_mu);
        for (int id : m.working) req.add_particle_ids(id);
      }
      wxp::v1::HeartbeatResponse resp;
      m.conn->agent().Heartbeat(m.conn->NewContext().get(), req, &resp);
    }
  });
  absl::Status result;
  while (!m.stop.HasBeenNotified()) {
    bool any_left = false;
    absl::Duration wait = absl::InfiniteDuration();
    for (auto& [id, s] : m.particles) {
      if (s.done) continue;
      absl::StatusOr<absl::Duration> w = m.Step(s);
      if (!w.ok()) {
        result = w.status();
        break;
      }
      any_left = any_left || !s.done;
      wait = std::min(wait, *w);
      if (m.stop.HasBeenNotified()) break;
    }
    if (!result.ok() || !any_left) break;
    if (wait > absl::ZeroDuration() && !m.Sleep(wait)) break;
  }
  hb_stop.Notify();
  heartbeat.join();
  if (result.code() == absl::StatusCode::kCancelled && m.stop.HasBeenNotified()) {
    result = absl::OkStatus();
  }
  WXP_RETURN_IF_ERROR(result);
  m.summary.swarm_done =
      !m.particles.empty() && std::all_of(m.particles.begin(), m.particles.end(),
                                          [](const auto& kv) { return kv.second.done; });
  m.Log(absl::StrCat("event=agent_summary swarm=", m.o.swarm, " done=", m.summary.swarm_done,
                     " reports=", m.summary.iterations_reported,
                     " failed_evaluations=", m.summary.evaluations_failed,
                     m.summary.trainings + m.summary.trainings_failed > 0
                         ? absl::StrCat(" trainings=", m.summary.trainings,
                                        " failed_trainings=", m.summary.trainings_failed)
                         : "",
                     " bytes_up=", m.summary.bytes_uploaded, " (experts ",
                     m.summary.expert_bytes_uploaded, ")",
                     " bytes_down=", m.summary.bytes_downloaded));
  return m.summary;
}

}  // namespace wxp::agent