#include "client/agent/auditor.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "client/agent/blob_cache.h"
#include "client/agent/coefficient_space.h"
#include "client/net/blob_transfer.h"
#include "common/backoff.h"
#include "common/fault_hook.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/model_description.h"
#include "common/safetensors.h"
#include "common/schema.h"
#include "common/status_macros.h"

namespace wxp::agent {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxReasonBytes = 1024;

// The longest prefix of `s` of at most `max` bytes that does not cut a UTF-8 character.
std::string Utf8Prefix(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

struct Auditor::Impl {
  AuditorOptions o;
  client::Connection* conn = nullptr;
  std::unique_ptr<CandidateEvaluator> evaluator;
  std::optional<BlobCache> blobs;
  std::string scratch_dir;
  absl::Notification stop;
  uint64_t retry_loops = 0;
  AuditorSummary summary;
  // Coefficient and token spaces: the space of the experts it was built for (a swarm's
  // experts never change once its pool exists).
  std::vector<std::string> space_experts;
  std::unique_ptr<ParticleSpace> space;

  void Log(const std::string& line) {
    if (o.log) {
      o.log(line);
    } else {
      std::cerr << "wxp-agent(auditor): " << line << std::endl;
    }
  }

  // As the agent's (client/agent/internal/agent_impl.h): backoff, failover, cancellation.
  absl::Status WithRetry(absl::string_view what, const std::function<absl::Status()>& fn) {
    RetryOptions r;
    r.clock = o.clock;
    r.backoff.initial = o.backoff_initial;
    r.backoff.max = o.backoff_max;
    r.backoff.seed = retry_loops++;
    r.cancel = &stop;
    r.on_retry = [&](int attempt, absl::Duration wait, const absl::Status& s) {
      if (attempt == 1 || attempt % 10 == 0) {
        Log(absl::StrCat("event=retry call=", what, " attempt=", attempt,
                         " wait_s=", absl::StrFormat("%.2f", absl::ToDoubleSeconds(wait)),
                         " error=\"", s.message(), "\""));
      }
    };
    absl::Status s = RetryWithBackoff(r, [&] {
      absl::Status attempt = fn();
      if (!attempt.ok()) conn->Failover(attempt);
      return attempt;
    });
    if (absl::IsCancelled(s) && stop.HasBeenNotified()) {
      return absl::CancelledError("auditor stopping");
    }
    return s;
  }

  absl::Status Fetch(const std::string& id) {
    if (blobs->Has(id)) return absl::OkStatus();
    return WithRetry("DownloadBlob", [&]() -> absl::Status {
      return client::DownloadToFile(*conn, id, blobs->Path(id)).status();
    });
  }

  // The task's space over its experts, built once.
  absl::Status LearnSpace(const wxp::v1::AuditTask& t) {
    std::vector<std::string> ids(t.expert_blob_ids().begin(), t.expert_blob_ids().end());
    if (space && ids == space_experts) return absl::OkStatus();
    wxp::v1::GetAssignmentResponse as;  // what MakeAgentSpace reads: the space's settings
    as.set_space(t.space());
    as.set_decoder(t.decoder());
    as.set_svd_rank(t.svd_rank());
    as.set_per_module(t.per_module());
    as.set_combination(t.combination());
    *as.mutable_expert_blob_ids() = t.expert_blob_ids();
    *as.mutable_expert_adapter_configs() = t.expert_adapter_configs();
    std::vector<std::string> files;
    for (const std::string& id : ids) {
      WXP_RETURN_IF_ERROR(Fetch(id));
      files.push_back(blobs->Path(id));
    }
    WXP_ASSIGN_OR_RETURN(std::unique_ptr<ParticleSpace> s, MakeAgentSpace(as, files));
    if (t.space() == wxp::v1::TOKEN_MIXTURE) {
      std::vector<TokenExpertFiles> experts;
      for (size_t j = 0; j < ids.size(); ++j) {
        const std::string config = static_cast<int>(j) < t.expert_adapter_configs_size()
                                       ? t.expert_adapter_configs(static_cast<int>(j))
                                       : "";
        WXP_ASSIGN_OR_RETURN(std::string base, BaseModelBlobId(config));
        WXP_RETURN_IF_ERROR(Fetch(base));
        experts.push_back({files[j], config, blobs->Path(base)});
      }
      WXP_RETURN_IF_ERROR(evaluator->PrepareTokenMixture(experts, s->options().combination));
    }
    space = std::move(s);
    space_experts = std::move(ids);
    return absl::OkStatus();
  }

  // The auditor's own scores of the task's position, as an agent would evaluate it.
  absl::StatusOr<Scores> Evaluate(const wxp::v1::AuditTask& t) {
    if (t.space() == wxp::v1::EXPERT_COEFFICIENTS || t.space() == wxp::v1::TOKEN_MIXTURE) {
      WXP_RETURN_IF_ERROR(LearnSpace(t));
      if (t.space() == wxp::v1::TOKEN_MIXTURE) {
        return evaluator->EvaluateTokenMixture(
            t.particle_id(), t.iteration(),
            {t.position_alpha().data(), static_cast<size_t>(t.position_alpha_size())});
      }
      WXP_ASSIGN_OR_RETURN(std::string alpha_id, PutAlphaBlob(*blobs, t.position_alpha()));
      const std::string decoded_path = absl::StrCat(scratch_dir, "/audit-decoded.safetensors");
      WXP_ASSIGN_OR_RETURN(Adapter decoded,
                           DecodeToFile(*space, blobs->Path(alpha_id), decoded_path));
      absl::StatusOr<Scores> scores =
          evaluator->Evaluate({t.particle_id(), t.iteration(), decoded_path, &decoded.schema,
                               decoded.config_json.value_or("")});
      std::error_code ec;
      fs::remove(decoded_path, ec);
      return scores;
    }
    WXP_RETURN_IF_ERROR(Fetch(t.position_blob_id()));
    const std::string path = blobs->Path(t.position_blob_id());
    WXP_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
    std::vector<TensorSpec> specs;
    for (const TensorView& v : f.tensors()) specs.push_back({v.name, v.dtype, v.shape});
    WXP_ASSIGN_OR_RETURN(Schema schema, Schema::Create(std::move(specs)));
    return evaluator->Evaluate({t.particle_id(), t.iteration(), path, &schema});
  }

  // One task: evaluate and report. Returns the verdict.
  absl::Status Audit(const wxp::v1::AuditTask& t) {
    absl::StatusOr<Scores> scores = Evaluate(t);
    if (absl::IsCancelled(scores.status()) && stop.HasBeenNotified()) return scores.status();
    // Tests: hold here, the claim evaluated and not yet decided, for a kill -9 (of this
    // process or of the server) to land mid-audit.
    HoldIfArmed("WXP_FAULT_HOLD_AUDIT_MARKER");
    wxp::v1::ReportAuditRequest req;
    req.set_swarm(t.swarm());
    req.set_particle_id(t.particle_id());
    req.set_iteration(t.iteration());
    if (scores.ok()) {
      for (const auto& [name, v] : *scores) (*req.mutable_scores())[name] = v;
    } else {
      req.set_evaluation_failed(true);
      req.set_failure_reason(Utf8Prefix(std::string(scores.status().message()), kMaxReasonBytes));
    }
    wxp::v1::ReportAuditResponse resp;
    absl::Status st = WithRetry("ReportAudit", [&] {
      resp.Clear();
      return FromGrpc(conn->agent().ReportAudit(conn->NewContext().get(), req, &resp));
    });
    if (st.code() == absl::StatusCode::kInvalidArgument && scores.ok()) {
      // Scores this swarm cannot take (a component missing or out of range): the
      // evaluator's failure, not the claim's.
      ++summary.failed;
      Log(absl::StrCat("event=audit_refused swarm=", t.swarm(), " particle=", t.particle_id(),
                       " iteration=", t.iteration(), " reason=\"", st.message(), "\""));
      return absl::OkStatus();
    }
    WXP_RETURN_IF_ERROR(st);
    const char* verdict = "pending";
    if (!scores.ok()) {
      ++summary.failed;
    } else if (resp.verdict() == wxp::v1::AUDIT_CONFIRMED) {
      ++summary.confirmed;
      verdict = "confirmed";
    } else if (resp.verdict() == wxp::v1::AUDIT_DISPUTED) {
      ++summary.disputed;
      verdict = "disputed";
    }
    Log(absl::StrCat("event=audit swarm=", t.swarm(), " particle=", t.particle_id(),
                     " iteration=", t.iteration(), " verdict=", verdict,
                     resp.already_decided() ? " already_decided=1" : "",
                     resp.reporter_quarantined() ? " reporter_quarantined=1" : "",
                     scores.ok() ? ""
                                 : absl::StrCat(" evaluation_failed=\"",
                                                absl::CEscape(scores.status().message()), "\"")));
    return absl::OkStatus();
  }
};

Auditor::Auditor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Auditor::~Auditor() = default;

absl::StatusOr<std::unique_ptr<Auditor>> Auditor::Create(
    AuditorOptions options, client::Connection* connection,
    std::unique_ptr<CandidateEvaluator> evaluator) {
  if (options.swarm.empty()) return absl::InvalidArgumentError("an auditor needs a swarm");
  if (options.work_dir.empty()) return absl::InvalidArgumentError("an auditor needs a work_dir");
  auto impl = std::make_unique<Impl>();
  impl->o = std::move(options);
  impl->conn = connection;
  impl->evaluator = std::move(evaluator);
  WXP_ASSIGN_OR_RETURN(BlobCache cache, BlobCache::Open(impl->o.work_dir + "/blobs"));
  impl->blobs = std::move(cache);
  impl->scratch_dir = impl->o.work_dir + "/scratch";
  WXP_RETURN_IF_ERROR(MakeDirs(impl->scratch_dir));
  return std::unique_ptr<Auditor>(new Auditor(std::move(impl)));
}

void Auditor::Stop() {
  if (!impl_->stop.HasBeenNotified()) impl_->stop.Notify();
}

absl::StatusOr<AuditorSummary> Auditor::Run() {
  Impl& m = *impl_;
  m.Log(absl::StrCat("event=auditor_started swarm=", m.o.swarm));
  wxp::v1::PullAuditTaskRequest req;
  req.set_swarm(m.o.swarm);
  while (!m.stop.HasBeenNotified()) {
    wxp::v1::PullAuditTaskResponse resp;
    absl::Status st = m.WithRetry("PullAuditTask", [&] {
      resp.Clear();
      return FromGrpc(m.conn->agent().PullAuditTask(m.conn->NewContext().get(), req, &resp));
    });
    if (absl::IsCancelled(st) && m.stop.HasBeenNotified()) break;
    WXP_RETURN_IF_ERROR(st);
    if (resp.status() == wxp::v1::PullAuditTaskResponse::TASK) {
      absl::Status a = m.Audit(resp.task());
      if (absl::IsCancelled(a) && m.stop.HasBeenNotified()) break;
      WXP_RETURN_IF_ERROR(a);
      // Evaluations leave candidates behind: keep the cache to the experts in use.
      m.blobs->CollectGarbage({m.space_experts.begin(), m.space_experts.end()});
      continue;
    }
    if (resp.swarm_state() == wxp::v1::FINISHED || resp.swarm_state() == wxp::v1::STOPPED) {
      m.summary.swarm_done = true;
      break;
    }
    const absl::Duration wait = absl::Milliseconds(std::max<int64_t>(resp.retry_after_ms(), 100));
    if (!m.o.clock->SleepUntil(m.o.clock->Now() + wait, m.stop)) break;
  }
  m.Log(absl::StrCat("event=auditor_done swarm=", m.o.swarm, " confirmed=", m.summary.confirmed,
                     " disputed=", m.summary.disputed, " failed=", m.summary.failed,
                     " swarm_done=", m.summary.swarm_done ? 1 : 0));
  return m.summary;
}

}  // namespace wxp::agent
