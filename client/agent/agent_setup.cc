// wxp-agent's setup steps (SPEC 5.2 step 3): joining with the experts, taking the
// assignment, and initialising each particle (and, in a coefficient space, the space).
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
#include "client/agent/internal/agent_impl.h"
#include "client/agent/particle_state.h"
#include "client/agent/position_files.h"
#include "client/net/blob_transfer.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/backoff.h"
#include "common/dtype_proto.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/local_training_proto.h"
#include "common/model_description.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace wxp::agent {
namespace fs = std::filesystem;

std::string WeightsFile(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) ? path + "/" + kPeftWeightsFile : path;
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
    // Each expert's own config (its rank and scaling decode it in a coefficient space); a
    // bare .safetensors file has none.
    std::string config;
    if (fs::is_directory(e)) {
      absl::StatusOr<std::string> cfg = ReadFile(e + "/" + kPeftConfigFile);
      if (cfg.ok()) config = *std::move(cfg);
    }
    // A token-swarm expert brings its base model (SPEC 4.5): uploaded like the adapter, so
    // every agent of the swarm can fetch it by the id the config names.
    if (absl::StatusOr<std::string> base_id = BaseModelBlobId(config); base_id.ok()) {
      const std::string base_file = e + "/" + kExpertBaseModelFile;
      if (fs::exists(base_file)) {
        WXP_ASSIGN_OR_RETURN(std::string got, Sha256File(base_file));
        if (got != *base_id) {
          return absl::InvalidArgumentError(
              absl::StrCat(base_file, " is not the base model its adapter_config.json names (",
                           kBaseModelBlobKey, " ", *base_id, ", the file's SHA-256 is ", got, ")"));
        }
        WXP_RETURN_IF_ERROR(blobs->AddLocalFile(base_file, got));
        WXP_RETURN_IF_ERROR(Upload(got));
        Log(absl::StrCat("event=base_model_uploaded path=", base_file,
                         " blob=", got.substr(0, 12)));
      }
    }
    req.add_expert_adapter_configs(std::move(config));
    Log(absl::StrCat("event=expert_uploaded path=", e, " blob=", id.substr(0, 12),
                     " bytes=", summary.bytes_uploaded - before));
  }
  // The first expert's config also in the one-config field, for servers that predate the
  // per-expert configs (the server checks the two agree).
  req.set_adapter_config_json(req.expert_adapter_configs(0));
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
  if (space ||
      (resp.space() != wxp::v1::EXPERT_COEFFICIENTS && resp.space() != wxp::v1::TOKEN_MIXTURE)) {
    return absl::OkStatus();
  }
  std::vector<std::string> files;
  expert_ids.assign(resp.expert_blob_ids().begin(), resp.expert_blob_ids().end());
  for (const std::string& id : expert_ids) {
    WXP_RETURN_IF_ERROR(Fetch(id));  // our own are in the cache already
    files.push_back(BlobPath(id));
  }
  WXP_ASSIGN_OR_RETURN(std::unique_ptr<ParticleSpace> s, MakeAgentSpace(resp, files));
  if (resp.space() == wxp::v1::TOKEN_MIXTURE) {
    // Whole models: each expert's base model is a blob its config names, fetched once.
    std::vector<TokenExpertFiles> experts;
    for (size_t j = 0; j < expert_ids.size(); ++j) {
      const std::string config = static_cast<int>(j) < resp.expert_adapter_configs_size()
                                     ? resp.expert_adapter_configs(j)
                                     : "";
      absl::StatusOr<std::string> base = BaseModelBlobId(config);
      if (!base.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("token swarm expert ", expert_ids[j], ": ", base.status().message()));
      }
      WXP_RETURN_IF_ERROR(Fetch(*base));
      experts.push_back({files[j], config, BlobPath(*base)});
    }
    absl::Status prepared = evaluator->PrepareTokenMixture(experts, s->options().combination);
    if (!prepared.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot run the token swarm's particles: ", prepared.message()));
    }
  }
  space = std::move(s);
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

absl::StatusOr<std::string> Agent::Impl::PositionId(const wxp::v1::PositionRef& ref) {
  if (!space || ref.alpha().empty()) return ref.blob_id();
  WXP_ASSIGN_OR_RETURN(std::string id, PutAlphaBlob(*blobs, ref.alpha()));
  if (!ref.blob_id().empty() && ref.blob_id() != id) {
    return absl::DataLossError(absl::StrCat("the server sent an alpha whose blob is ", id,
                                            " for position ", ref.blob_id()));
  }
  return id;
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
    training = LocalTrainingFromProto(resp.local_training());
    swarm_seed = resp.hyperparameters().seed();
    swarm_max_iterations = resp.hyperparameters().max_iterations();
    swarm_pool_size = resp.pool_size();
    if (training.enabled() && o.require_private_experts &&
        resp.status() != wxp::v1::GetAssignmentResponse::DONE) {
      // SPEC 12: local training reads this site's data again and what it trains is
      // uploaded: only DP training, within the budget this site accepts for its experts,
      // keeps their guarantee meaningful.
      if (!training.private_training()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "swarm ", o.swarm, " asks for local training (every ", training.every_k,
            " iterations, ", training.steps,
            " steps) without differential privacy (local_training.dp_epsilon 0); this agent's "
            "configuration requires private experts (require_private_experts), so it does not "
            "take part"));
      }
      if (o.max_expert_epsilon > 0 && training.dp_epsilon > o.max_expert_epsilon) {
        return absl::FailedPreconditionError(
            absl::StrCat("swarm ", o.swarm, "'s local training spends up to epsilon ",
                         training.dp_epsilon, ", above this agent's max_expert_epsilon ",
                         o.max_expert_epsilon, ", so it does not take part"));
      }
    }
    if (training.enabled() && !evaluator->CanTrain() &&
        resp.status() != wxp::v1::GetAssignmentResponse::DONE) {
      // Refused before any particle work (WAIT answers carry the setting too): skipping the
      // training would silently run another search than the spec asks for, and the in-process
      // runner's equality would not hold.
      return absl::FailedPreconditionError(absl::StrCat(
          "swarm ", o.swarm, " asks for local training (every ", training.every_k, " iterations, ",
          training.steps,
          " steps) but this agent's evaluator cannot train (an external command cannot by "
          "itself): configure a train_command, or builtin_legal_text with a shard, or "
          "synthetic, then start the agent again (its state is kept)"));
    }
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
                     " params=", schema.total_params(),
                     training.enabled() ? absl::StrCat(" local_training_every=", training.every_k,
                                                       " steps=", training.steps)
                                        : ""));
    return resp.status() != wxp::v1::GetAssignmentResponse::DONE || !particles.empty();
  }
}

}  // namespace wxp::agent
