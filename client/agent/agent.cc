#include "client/agent/agent.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
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
#include "client/agent/particle_state.h"
#include "client/agent/position_files.h"
#include "client/net/blob_transfer.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/backoff.h"
#include "common/dtype_proto.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace wxp::agent {
namespace fs = std::filesystem;

namespace {

// The expert's weights file (a PEFT directory holds it under a fixed name).
std::string WeightsFile(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) ? path + "/" + kPeftWeightsFile : path;
}

}  // namespace

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
  // retryable failures. Cancelled if the agent stops meanwhile.
  absl::Status WithRetry(absl::string_view what, const std::function<absl::Status()>& fn) {
    RetryOptions r;
    r.clock = o.clock;
    r.backoff.initial = o.backoff_initial;
    r.backoff.max = o.backoff_max;
    r.backoff.seed = backoff_seed + retry_loops++;
    r.cancel = &stop;
    r.on_retry = [&](int attempt, absl::Duration wait, const absl::Status& s) {
      if (attempt == 1 || attempt % 10 == 0) {
        Log(absl::StrCat("event=retry call=", what, " attempt=", attempt,
                         " wait_s=", absl::StrFormat("%.2f", absl::ToDoubleSeconds(wait)),
                         " error=\"", s.message(), "\""));
      }
    };
    absl::Status s = RetryWithBackoff(r, fn);
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
  // One unit of work on a particle; returns how long to wait before it can progress
  // (zero: it progressed).
  absl::StatusOr<absl::Duration> Step(ParticleState& s);
  absl::Status Move(ParticleState& s, const wxp::v1::GetTargetsResponse& t);
  absl::Status EvaluatePending(ParticleState& s);
  absl::StatusOr<absl::Duration> ReportPending(ParticleState& s);
};

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

absl::Status Agent::Impl::JoinSwarm() {
  wxp::v1::JoinRequest req;
  req.set_swarm(o.swarm);
  req.set_capacity(o.capacity);
  req.set_agent_version(o.agent_version);
  for (const std::string& e : o.expert_paths) {
    const std::string file = WeightsFile(e);
    WXP_ASSIGN_OR_RETURN(std::string id, Sha256File(file));
    // Our own experts are our first positions: keep them in the cache, never download them.
    WXP_RETURN_IF_ERROR(blobs->AddLocalFile(file, id));
    uint64_t before = summary.bytes_uploaded;
    WXP_RETURN_IF_ERROR(Upload(id));
    summary.expert_bytes_uploaded += summary.bytes_uploaded - before;
    req.add_expert_blob_ids(id);
    Log(absl::StrCat("event=expert_uploaded path=", e, " blob=", id.substr(0, 12),
                     " bytes=", summary.bytes_uploaded - before));
  }
  if (fs::is_directory(o.expert_paths[0])) {
    absl::StatusOr<std::string> cfg = ReadFile(o.expert_paths[0] + "/" + kPeftConfigFile);
    if (cfg.ok()) req.set_adapter_config_json(*cfg);
  }
  adapter_config_json = req.adapter_config_json();
  wxp::v1::JoinResponse resp;
  WXP_RETURN_IF_ERROR(WithRetry(
      "Join", [&] { return FromGrpc(conn->agent().Join(conn->NewContext().get(), req, &resp)); }));
  Log(absl::StrCat("event=joined swarm=", o.swarm,
                   " state=", wxp::v1::SwarmState_Name(resp.state()),
                   " experts=", resp.experts_joined(), "/", resp.min_experts()));
  return absl::OkStatus();
}

absl::Status Agent::Impl::LearnSchema(const std::string& position_id, int transport) {
  if (schema.size() > 0) return absl::OkStatus();
  WXP_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(BlobPath(position_id)));
  std::vector<TensorSpec> specs;
  WXP_ASSIGN_OR_RETURN(const std::optional<DType> t,
                       TransportDTypeFromProto(static_cast<wxp::v1::DType>(transport)));
  for (const TensorView& v : f.tensors()) {
    specs.push_back({v.name, t.value_or(v.dtype), v.shape});
  }
  WXP_ASSIGN_OR_RETURN(schema, Schema::Create(std::move(specs)));
  metadata = f.metadata();
  return absl::OkStatus();
}

absl::Status Agent::Impl::LearnSpace(const wxp::v1::GetAssignmentResponse& resp) {
  if (space || resp.space() != wxp::v1::EXPERT_COEFFICIENTS) return absl::OkStatus();
  std::vector<std::string> files;
  expert_ids.assign(resp.expert_blob_ids().begin(), resp.expert_blob_ids().end());
  for (const std::string& id : expert_ids) {
    WXP_RETURN_IF_ERROR(Fetch(id));  // our own are in the cache already
    files.push_back(BlobPath(id));
  }
  WXP_ASSIGN_OR_RETURN(space, MakeAgentSpace(resp, files));
  schema = AlphaSchema(space->Dimension());
  metadata = {};
  Log(absl::StrCat("event=space swarm=", o.swarm, " space=", space->Describe(),
                   " experts=", expert_ids.size(), " dimension=", space->Dimension()));
  return absl::OkStatus();
}

absl::Status Agent::Impl::PutAlpha(const google::protobuf::RepeatedField<float>& alpha,
                                   const std::string& id) {
  if (!space || id.empty()) return absl::OkStatus();
  WXP_ASSIGN_OR_RETURN(std::string got, PutAlphaBlob(*blobs, alpha));
  if (got != id) {
    return absl::DataLossError(
        absl::StrCat("the server sent an alpha whose blob is ", got, " for position ", id));
  }
  return absl::OkStatus();
}

absl::Status Agent::Impl::InitParticle(const wxp::v1::ParticleAssignment& a, int transport) {
  ParticleState s;
  s.id = a.particle_id();
  const std::string path = StatePath(s.id);
  if (fs::exists(path)) {
    WXP_ASSIGN_OR_RETURN(s, LoadParticleState(path));
    WXP_RETURN_IF_ERROR(Fetch(s.x));  // normally cached; fetched if the cache was cleared
    WXP_RETURN_IF_ERROR(LearnSchema(s.x, transport));
    const int server = a.last_reported_iteration();
    const int pending = s.pending ? s.pending->iteration : -2;
    if (server != s.iteration && server != pending) {
      return absl::DataLossError(
          absl::StrCat("particle ", s.id, ": the work directory holds iteration ", s.iteration,
                       (s.pending ? absl::StrCat(" (iteration ", pending, " in flight)") : ""),
                       " but the server has iteration ", server,
                       "; this work directory is not the one that ran it"));
    }
    Log(absl::StrCat("event=resumed particle=", s.id, " iteration=", s.iteration,
                     s.pending ? absl::StrCat(" in_flight=", pending) : ""));
    particles[s.id] = std::move(s);
    return absl::OkStatus();
  }
  if (a.last_reported_iteration() >= 0) {
    return absl::DataLossError(
        absl::StrCat("particle ", s.id, " is at iteration ", a.last_reported_iteration(),
                     " on the server but has no state in ", state_dir,
                     "; restore the agent's work directory (x and v live only there)"));
  }
  const std::string x0 = a.initial_position_blob_id();
  WXP_RETURN_IF_ERROR(PutAlpha(a.initial_alpha(), x0));
  WXP_RETURN_IF_ERROR(Fetch(x0));
  WXP_RETURN_IF_ERROR(LearnSchema(x0, transport));
  s.x = s.p = x0;
  const auto& iv = a.initial_velocity();
  if (iv.has_partner_blob_id()) {
    WXP_RETURN_IF_ERROR(PutAlpha(iv.partner_alpha(), iv.partner_blob_id()));
    WXP_RETURN_IF_ERROR(Fetch(iv.partner_blob_id()));
    WXP_ASSIGN_OR_RETURN(FlatReader target,
                         FlatReader::Position(BlobPath(iv.partner_blob_id()), schema));
    WXP_ASSIGN_OR_RETURN(FlatReader x, FlatReader::Position(BlobPath(x0), schema));
    s.v = absl::StrCat("v-", s.id, "-0.f32");
    WXP_ASSIGN_OR_RETURN(VelocityWriter w, VelocityWriter::Create(BlobPath(s.v)));
    WXP_RETURN_IF_ERROR(StreamDifference(target, x, w));
    WXP_RETURN_IF_ERROR(w.Finish());
  } else if (iv.has_toward_best()) {
    s.toward_best = true;
  }
  // The initial evaluation is the move of iteration 0: nothing to compute, x is x_0.
  PendingMove m;
  m.iteration = 0;
  m.x = x0;
  m.v = s.v;
  s.pending = m;
  WXP_RETURN_IF_ERROR(Save(s));
  particles[s.id] = std::move(s);
  return absl::OkStatus();
}

absl::StatusOr<bool> Agent::Impl::Assign() {
  wxp::v1::GetAssignmentRequest req;
  req.set_swarm(o.swarm);
  for (;;) {
    wxp::v1::GetAssignmentResponse resp;
    WXP_RETURN_IF_ERROR(WithRetry("GetAssignment", [&] {
      return FromGrpc(conn->agent().GetAssignment(conn->NewContext().get(), req, &resp));
    }));
    if (resp.status() == wxp::v1::GetAssignmentResponse::WAIT) {
      if (!Sleep(absl::Milliseconds(std::max<int64_t>(resp.retry_after_ms(), 100)))) {
        return absl::CancelledError("agent stopping");
      }
      continue;
    }
    if (resp.particles_size() > 0) WXP_RETURN_IF_ERROR(LearnSpace(resp));
    for (const auto& a : resp.particles()) {
      if (resp.status() == wxp::v1::GetAssignmentResponse::DONE &&
          !fs::exists(StatePath(a.particle_id()))) {
        continue;
      }
      WXP_RETURN_IF_ERROR(InitParticle(a, resp.transport_dtype()));
    }
    Log(absl::StrCat("event=assigned swarm=", o.swarm, " particles=", resp.particles_size(),
                     " mode=", wxp::v1::RoundMode_Name(resp.mode()),
                     " upload_policy=", wxp::v1::UploadPolicy_Name(resp.upload_policy()),
                     " params=", schema.total_params()));
    return resp.status() != wxp::v1::GetAssignmentResponse::DONE || !particles.empty();
  }
}

absl::Status Agent::Impl::Move(ParticleState& s, const wxp::v1::GetTargetsResponse& t) {
  const std::string& g = t.global_best().blob_id();
  const std::string& gw = t.global_worst().blob_id();
  WXP_RETURN_IF_ERROR(PutAlpha(t.global_best().alpha(), g));
  WXP_RETURN_IF_ERROR(PutAlpha(t.global_worst().alpha(), gw));
  WXP_RETURN_IF_ERROR(PutAlpha(t.personal_best().alpha(), t.personal_best().blob_id()));
  WXP_RETURN_IF_ERROR(Fetch(g));
  WXP_RETURN_IF_ERROR(Fetch(gw));
  // The server's p_i wins (it may have re-ranked after a utility weight change).
  const std::string& server_p = t.personal_best().blob_id();
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
  if (space) {
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
    m.reason = std::string(scores.status().message()).substr(0, 1024);
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
  req.set_position_blob_id(m.x);
  if (space) {
    WXP_ASSIGN_OR_RETURN(std::vector<float> alpha, ReadAlphaBlob(BlobPath(m.x)));
    req.mutable_position_alpha()->Assign(alpha.begin(), alpha.end());
  }
  if (m.failed) {
    req.set_evaluation_failed(true);
    req.set_failure_reason(m.reason);
  } else {
    for (const auto& [k, v] : m.scores) (*req.mutable_scores())[k] = v;
  }
  req.set_evaluation_seconds(m.seconds);
  req.set_idempotency_key(absl::StrCat(s.id, ":", m.iteration, ":", m.x));
  wxp::v1::ReportResponse resp;
  absl::Status st = WithRetry("Report", [&] {
    return FromGrpc(conn->agent().Report(conn->NewContext().get(), req, &resp));
  });
  if (st.code() == absl::StatusCode::kInvalidArgument && !m.failed && m.iteration > 0) {
    // The scores are unusable for this swarm (a component missing or out of range): that
    // is a failed evaluation, which the server can take without ranking anything.
    m.failed = true;
    m.reason = absl::StrCat("scores refused by the server: ", st.message()).substr(0, 1024);
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
                     " reports=", m.summary.iterations_reported, " failed_evaluations=",
                     m.summary.evaluations_failed, " bytes_up=", m.summary.bytes_uploaded,
                     " (experts ", m.summary.expert_bytes_uploaded, ")",
                     " bytes_down=", m.summary.bytes_downloaded));
  return m.summary;
}

}  // namespace wxp::agent
