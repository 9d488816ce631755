// `wxpctl swarm create|list|status|pause|resume|stop`, `wxpctl particles` and
// `wxpctl watch`: a swarm's life cycle and progress.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/remote.h"
#include "client/admin/views.h"
#include "client/net/blob_transfer.h"
#include "common/adapter.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/local_trainer.h"
#include "common/retry.h"
#include "common/text_proto.h"
#include "common/token_combination.h"

namespace wxp::admin {
namespace {

// The g history for the status sparkline; empty (no sparkline) if it cannot be read.
std::vector<double> TryGHistory(RemoteCommand& rc, const std::string& swarm) {
  v1::GetHistoryRequest req;
  req.set_swarm(swarm);
  v1::GetHistoryResponse resp;
  if (!rc.conn
           ->CallWithFailover(
               [&] { return rc.conn->admin().GetHistory(rc.conn->NewContext().get(), req, &resp); })
           .ok())
    return {};
  return GlobalBestHistory(resp);
}

// Uploads the weights file of a template adapter (a PEFT directory or a .safetensors
// file) as it is on disk; its blob id.
absl::StatusOr<std::string> UploadTemplate(client::Connection& conn, const std::string& path) {
  std::error_code ec;
  const std::string file =
      std::filesystem::is_directory(path, ec) ? absl::StrCat(path, "/", kPeftWeightsFile) : path;
  // Refuse what is not an adapter here, with the local path in the message, rather than
  // as an opaque schema error from the server.
  if (absl::StatusOr<Adapter> a = LoadAdapter(path); !a.ok()) return a.status();
  absl::StatusOr<client::TransferResult> up = client::UploadFile(conn, file, "", "");
  if (!up.ok()) return RpcError(up.status(), "template upload");
  return up->blob_id;
}

// The particle-space flags (SPEC 4.3, the spellings of `wxpctl simulate`) over the spec
// file's fields; the server validates the combination.
absl::Status ApplySpaceFlags(const cli::ParsedArgs& a, v1::SwarmSpec& spec) {
  if (a.Has("space")) {
    const std::string v = a.Get("space");
    if (v == "weights") {
      spec.set_space(v1::WEIGHTS);
    } else if (v == "coefficients") {
      spec.set_space(v1::EXPERT_COEFFICIENTS);
    } else if (v == "token_mixture") {
      spec.set_space(v1::TOKEN_MIXTURE);
    } else {
      return absl::InvalidArgumentError("--space must be weights, coefficients or token_mixture");
    }
  }
  if (a.Has("combination")) {
    absl::StatusOr<TokenCombination> c = ParseTokenCombination(a.Get("combination"));
    if (!c.ok()) return c.status();
    spec.set_combination(*c == TokenCombination::kMixture ? v1::MIXTURE : v1::LOG_LINEAR);
  }
  if (a.Has("decoder")) {
    const std::string v = a.Get("decoder");
    if (v == "linear_ab") {
      spec.set_decoder(v1::LINEAR_AB);
    } else if (v == "lora_product") {
      spec.set_decoder(v1::LORA_PRODUCT);
    } else if (v == "lora_product_svd") {
      spec.set_decoder(v1::LORA_PRODUCT_SVD);
    } else {
      return absl::InvalidArgumentError(
          "--decoder must be linear_ab, lora_product or lora_product_svd");
    }
  }
  if (a.Has("svd-rank")) {
    int k = 0;
    if (!absl::SimpleAtoi(a.Get("svd-rank"), &k)) {
      return absl::InvalidArgumentError("--svd-rank must be an integer");
    }
    spec.set_svd_rank(k);
  }
  if (a.GetBool("per-module")) spec.set_per_module(true);
  if (a.Has("expert-sharing")) {
    const std::string v = a.Get("expert-sharing");
    if (v == "allowed") {
      spec.set_expert_sharing(v1::ALLOWED);
    } else if (v == "forbidden") {
      spec.set_expert_sharing(v1::FORBIDDEN);
    } else {
      return absl::InvalidArgumentError("--expert-sharing must be allowed or forbidden");
    }
  }
  return absl::OkStatus();
}

// "; space coefficients/lora_product_svd k=8/per_module" for a coefficient swarm,
// "; space token_mixture/mixture" for a token swarm, "" else.
std::string SpaceNote(const v1::SwarmSpec& spec) {
  if (spec.space() == v1::TOKEN_MIXTURE) {
    return absl::StrCat("; space token_mixture/",
                        spec.combination() == v1::LOG_LINEAR ? "log_linear" : "mixture");
  }
  if (spec.space() != v1::EXPERT_COEFFICIENTS) return "";
  std::string decoder = v1::CoefficientDecoder_Name(spec.decoder());
  for (char& c : decoder) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return absl::StrCat(
      "; space coefficients/", decoder,
      spec.decoder() == v1::LORA_PRODUCT_SVD ? absl::StrCat(" k=", spec.svd_rank()) : "",
      spec.per_module() ? "/per_module" : "");
}

int SwarmCreate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args,
      {{"spec", "text-format wxp.v1.SwarmSpec file"},
       {"template", "PEFT directory or .safetensors whose tensors fix the schema (uploaded)"},
       {"space",
        "where the swarm searches: weights, coefficients or token_mixture (overrides the "
        "spec's space)"},
       {"combination", "token_mixture space: mixture (the default) or log_linear (SPEC 4.5)"},
       {"decoder", "coefficients space: linear_ab, lora_product or lora_product_svd"},
       {"svd-rank", "lora_product_svd: the rank each module is truncated to"},
       {"per-module", "coefficients space: one coefficient per expert and LoRA module", true},
       {"expert-sharing", "allowed or forbidden (forbidden allows only the weights space)"},
       {"local-training",
        "EVERY_K:STEPS:LR:BATCH[:DP_EPSILON:DP_DELTA[:DP_CLIP]], e.g. 2:20:0.005:64: train "
        "particles between iterations (SPEC 4.4; weights space; overrides the spec's "
        "local_training); with DP_EPSILON, DP-SGD within that budget per site (SPEC 12)"}},
      {"swarm create",
       "--spec FILE [--template ADAPTER] [--space weights|coefficients] [--decoder NAME] "
       "[--svd-rank K] [--per-module] [--expert-sharing allowed|forbidden] "
       "[--local_training EVERY_K:STEPS:LR:BATCH[:DP_EPSILON:DP_DELTA[:DP_CLIP]]] "
       "[--output table|json]",
       0, 0, true},
      out, err, &code);
  if (!rc) return code;
  if (!rc->args.Has("spec")) return UsageError(err, "swarm create", "missing --spec FILE");
  const std::string path = rc->args.Get("spec");
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return Fail(err, text.status());
  v1::CreateSwarmRequest req;
  if (absl::Status parsed = ParseTextProto(*text, path, req.mutable_spec()); !parsed.ok()) {
    return Fail(err, parsed);
  }
  if (absl::Status flags = ApplySpaceFlags(rc->args, *req.mutable_spec()); !flags.ok()) {
    return UsageError(err, "swarm create", std::string(flags.message()));
  }
  if (rc->args.Has("local-training")) {
    // The form is checked here; whether the spec's space allows it is the server's call.
    absl::StatusOr<LocalTrainingParams> t = ParseLocalTraining(rc->args.Get("local-training"));
    if (!t.ok()) return UsageError(err, "swarm create", std::string(t.status().message()));
    v1::LocalTraining* lt = req.mutable_spec()->mutable_local_training();
    lt->set_every_k(t->every_k);
    lt->set_steps(t->steps);
    lt->set_learning_rate(t->learning_rate);
    lt->set_batch(t->batch);
    lt->set_dp_epsilon(t->dp_epsilon);
    lt->set_dp_delta(t->dp_delta);
    lt->set_dp_clip_norm(t->dp_clip_norm);
  }
  if (rc->args.Has("template")) {
    absl::StatusOr<std::string> blob_id = UploadTemplate(*rc->conn, rc->args.Get("template"));
    if (!blob_id.ok()) return Fail(err, blob_id.status());
    req.mutable_spec()->set_template_blob_id(*blob_id);
  }
  v1::CreateSwarmResponse resp;
  grpc::Status s = rc->conn->CallWithFailover(
      [&] { return rc->conn->admin().CreateSwarm(rc->conn->NewContext().get(), req, &resp); });
  return Reply(
      *rc, s, "swarm create", resp,
      [](const v1::CreateSwarmResponse& r) {
        return absl::StrCat("swarm ", r.spec().name(), " created (", StateName(r.state()),
                            ", waiting for ", r.spec().min_experts(), " experts; seed ",
                            r.spec().hyperparameters().seed(), SpaceNote(r.spec()), ")\n");
      },
      out, err);
}

int SwarmList(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc =
      OpenRemote(args, {}, {"swarm list", "[--output table|json]", 0, 0, true}, out, err, &code);
  if (!rc) return code;
  v1::ListSwarmsResponse resp;
  grpc::Status s = rc->conn->CallWithFailover([&] {
    return rc->conn->admin().ListSwarms(rc->conn->NewContext().get(), v1::ListSwarmsRequest(),
                                        &resp);
  });
  return Reply(*rc, s, "swarm list", resp, RenderSwarmList, out, err);
}

// Fetches and prints one swarm's status; the status through `*status` when given.
absl::Status PrintStatus(RemoteCommand& rc, const std::string& swarm, std::ostream& out,
                         v1::SwarmStatus* status = nullptr) {
  v1::GetSwarmStatusRequest req;
  req.set_swarm(swarm);
  v1::SwarmStatus resp;
  grpc::Status s = rc.conn->CallWithFailover(
      [&] { return rc.conn->admin().GetSwarmStatus(rc.conn->NewContext().get(), req, &resp); });
  if (!s.ok()) return RpcError(s, "swarm status");
  if (rc.json) {
    out << ProtoJson(resp) << "\n";
  } else {
    out << RenderSwarmStatus(resp, TryGHistory(rc, swarm), absl::Now());
  }
  if (status) *status = resp;
  return absl::OkStatus();
}

int SwarmStatus(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args, {}, {"swarm status", "NAME [--output table|json]", 1, 1, true}, out, err, &code);
  if (!rc) return code;
  absl::Status s = PrintStatus(*rc, rc->args.positional()[0], out);
  return s.ok() ? kExitOk : Fail(err, s);
}

enum class Control { kPause, kResume, kStop };

int SwarmControl(Control what, const std::vector<std::string>& args, std::ostream& out,
                 std::ostream& err) {
  const std::string verb = what == Control::kPause    ? "pause"
                           : what == Control::kResume ? "resume"
                                                      : "stop";
  const std::string command = "swarm " + verb;
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args, {{"reason", "why, for the audit log"}},
      {command, "NAME [--reason TEXT] [--output table|json]", 1, 1, true}, out, err, &code);
  if (!rc) return code;
  v1::SwarmControlRequest req;
  req.set_swarm(rc->args.positional()[0]);
  req.set_reason(rc->args.Get("reason"));
  v1::SwarmStatus resp;
  grpc::Status s = rc->conn->CallWithFailover([&] {
    auto ctx = rc->conn->NewContext();
    v1::AdminService::Stub& admin = rc->conn->admin();
    return what == Control::kPause    ? admin.PauseSwarm(ctx.get(), req, &resp)
           : what == Control::kResume ? admin.ResumeSwarm(ctx.get(), req, &resp)
                                      : admin.StopSwarm(ctx.get(), req, &resp);
  });
  return Reply(
      *rc, s, command, resp,
      [](const v1::SwarmStatus& r) {
        return absl::StrCat("swarm ", r.name(), ": ", StateName(r.state()), "\n");
      },
      out, err);
}

}  // namespace

int Swarm(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return DispatchSubcommand(
      "swarm", args,
      {{"create", SwarmCreate},
       {"list", SwarmList},
       {"status", SwarmStatus},
       {"pause",
        [](const auto& a, auto& o, auto& e) { return SwarmControl(Control::kPause, a, o, e); }},
       {"resume",
        [](const auto& a, auto& o, auto& e) { return SwarmControl(Control::kResume, a, o, e); }},
       {"stop",
        [](const auto& a, auto& o, auto& e) { return SwarmControl(Control::kStop, a, o, e); }}},
      out, err);
}

int Particles(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args, {}, {"particles", "NAME [--output table|json]", 1, 1, true}, out, err, &code);
  if (!rc) return code;
  v1::ListParticlesRequest req;
  req.set_swarm(rc->args.positional()[0]);
  v1::ListParticlesResponse resp;
  grpc::Status s = rc->conn->CallWithFailover(
      [&] { return rc->conn->admin().ListParticles(rc->conn->NewContext().get(), req, &resp); });
  return Reply(
      *rc, s, "particles", resp, [](const auto& r) { return RenderParticles(r, absl::Now()); }, out,
      err);
}

int Watch(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args, {{"interval", "seconds between refreshes", false, "2"}},
      {"watch", "NAME [--interval S] [--output table|json]", 1, 1, true}, out, err, &code);
  if (!rc) return code;
  absl::StatusOr<double> interval = rc->args.GetDouble("interval");
  if (!interval.ok() || *interval <= 0) {
    return UsageError(err, "watch", "--interval needs a positive number of seconds");
  }
  // Redraw in place on a terminal; append (one block per refresh) when piped to a log.
  const bool tty = &out == &std::cout && isatty(STDOUT_FILENO) && !rc->json;
  const std::string swarm = rc->args.positional()[0];
  bool failing = false;
  Clock* clock = Clock::Real();
  // During an outage the refreshes back off (from the interval, up to a minute), so a
  // server coming back is not met by every watcher at once.
  BackoffOptions outage;
  outage.initial = absl::Seconds(*interval);
  outage.max = std::max(absl::Seconds(*interval), absl::Minutes(1));
  outage.seed = static_cast<uint64_t>(getpid());
  Backoff backoff(outage);
  for (;;) {
    if (tty) out << "\033[H\033[2J";
    v1::SwarmStatus status;
    absl::Status s = PrintStatus(*rc, swarm, out, &status);
    // A server restart should not end the watch; anything else (unknown swarm, refused
    // certificate) will not get better by waiting.
    if (!s.ok() && !IsRetryable(s)) return Fail(err, s);
    // One line per outage, not one per refresh.
    if (!s.ok() && !failing) err << "wxpctl: " << s.message() << " (retrying)\n";
    failing = !s.ok();
    if (s.ok() && IsFinal(status.state())) return kExitOk;
    if (!tty && !rc->json) out << "\n";
    out.flush();
    if (!failing) backoff.Reset();
    clock->SleepUntil(clock->Now() + (failing ? backoff.Next() : absl::Seconds(*interval)));
  }
}

}  // namespace wxp::admin
