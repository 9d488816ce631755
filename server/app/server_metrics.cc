#include "server/app/server_metrics.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "server/store/update_pipeline.h"

namespace wxp::server {
namespace {

using metrics::Counter;
using metrics::Family;
using metrics::Gauge;
using metrics::Histogram;
using metrics::Registry;

// From a quick unary call to a long blob stream.
const std::vector<double> kRpcSecondsBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5,   1,      2.5,   5,    10,    30,   60,  300};
const std::vector<double> kCommitSecondsBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

// From a synthetic swarm's sub-second rounds to the default 600 s deadline and beyond.
const std::vector<double> kRoundSecondsBuckets = {0.1, 0.5, 1,   5,    10,   30,  60,
                                                  120, 300, 600, 1200, 3600, 7200};

const char* const kSwarmStates[] = {"PENDING_EXPERTS", "RUNNING", "PAUSED", "FINISHED", "STOPPED"};

std::string CodeName(int code) {
  if (code < 0 || code > 16) return "UNKNOWN";
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// "/wxp.v1.AgentService/Report" -> {"wxp.v1.AgentService", "Report"}.
std::pair<std::string, std::string> SplitPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == 0 || slash == std::string::npos) {
    return {"unknown", "unknown"};
  }
  return {path.substr(1, slash - 1), path.substr(slash + 1)};
}

class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(ServerMetrics* metrics, const char* method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->RecordRpc(
          method_, methods->GetSendStatus().error_code(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(metrics_, info->method() == nullptr ? "" : info->method());
  }

 private:
  ServerMetrics* metrics_;
};

}  // namespace

ServerMetrics::ServerMetrics()
    : registry_(std::make_shared<Registry>()),
      rpcs_(registry_->AddCounter("wxp_rpcs_total",
                                  "RPCs answered, by method and gRPC status code.",
                                  {"service", "method", "code"})),
      rpc_seconds_(
          registry_->AddHistogram("wxp_rpc_duration_seconds",
                                  "Time from an RPC's arrival to its status being sent, by method.",
                                  kRpcSecondsBuckets, {"service", "method"})),
      reports_accepted_(
          registry_
              ->AddCounter("wxp_reports_accepted_total",
                           "Reports stored as new evaluations (failed evaluations included).")
              .Get()),
      reports_duplicate_(registry_
                             ->AddCounter("wxp_reports_duplicate_total",
                                          "Reports acknowledged as repeats of a stored one.")
                             .Get()),
      reports_refused_(registry_->AddCounter(
          "wxp_reports_refused_total",
          "Reports refused, by reason: the gRPC status code, lower case.", {"reason"})),
      training_failures_(registry_->AddCounter(
          "wxp_local_training_failures_total",
          "Stored reports whose local training failed on the agent (SPEC 4.4; "
          "ReportRequest.training_failed), by swarm.",
          {"swarm"})),
      blob_in_(registry_
                   ->AddCounter("wxp_blob_received_bytes_total",
                                "Blob bytes stored from UploadBlob streams.")
                   .Get()),
      blob_out_(registry_
                    ->AddCounter("wxp_blob_sent_bytes_total",
                                 "Blob bytes sent by DownloadBlob and ExportBest.")
                    .Get()),
      iteration_(registry_->AddGauge("wxp_swarm_iteration",
                                     "The swarm's last closed iteration (0: initial evaluation).",
                                     {"swarm"})),
      step_length_(registry_->AddGauge(
          "wxp_swarm_step_length", "Step length lambda of the swarm's next iteration.", {"swarm"})),
      global_best_(registry_->AddGauge(
          "wxp_swarm_global_best_utility",
          "Utility of the global best g under the current weights (once the pool exists).",
          {"swarm"})),
      global_worst_(registry_->AddGauge(
          "wxp_swarm_global_worst_utility",
          "Utility of the global worst g_w under the current weights (once the pool exists).",
          {"swarm"})),
      mean_utility_(registry_->AddGauge(
          "wxp_swarm_mean_utility",
          "Mean of the particles' latest utilities (once the pool exists).", {"swarm"})),
      particles_(registry_->AddGauge(
          "wxp_swarm_particles",
          "Particles by liveness: live reported in the last closed round or later.",
          {"swarm", "state"})),
      agents_online_(registry_->AddGauge("wxp_swarm_agents_online",
                                         "The swarm's agents heard from within the online window.",
                                         {"swarm"})),
      swarm_state_(registry_->AddGauge("wxp_swarm_state",
                                       "1 for the swarm's life-cycle state, 0 for the others.",
                                       {"swarm", "state"})),
      weight_version_(registry_->AddGauge("wxp_swarm_utility_weight_version",
                                          "The swarm's current utility weight version.",
                                          {"swarm"})),
      collect_errors_(registry_
                          ->AddCounter("wxp_metrics_collect_errors_total",
                                       "Scrapes whose swarm state could not be read.")
                          .Get()),
      round_seconds_(registry_->AddHistogram(
          "wxp_round_duration_seconds",
          "How long a round was open before it closed (iteration 0: from the pool's "
          "construction), by swarm.",
          kRoundSecondsBuckets, {"swarm"})) {
  Histogram* seconds =
      &registry_
           ->AddHistogram("wxp_store_commit_duration_seconds",
                          "Time of one group commit of the store (one transaction).",
                          kCommitSecondsBuckets)
           .Get();
  Histogram* batch =
      &registry_
           ->AddHistogram("wxp_store_commit_batch_size", "Updates committed together in one batch.",
                          metrics::ExponentialBuckets(1, 2, 10))
           .Get();
  Counter* failed = &registry_
                         ->AddCounter("wxp_store_commit_failures_total",
                                      "Group commits that failed as a whole (e.g. a full disk).")
                         .Get();
  commit_observer_ = store::UpdatePipeline::AddCommitObserver(
      [keep = registry_, seconds, batch, failed](const store::UpdatePipeline::CommitStats& s) {
        seconds->Observe(s.seconds);
        batch->Observe(static_cast<double>(s.updates));
        if (!s.committed) failed->Increment();
      });
}

ServerMetrics::~ServerMetrics() { store::UpdatePipeline::RemoveCommitObserver(commit_observer_); }

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerMetrics::RpcInterceptorFactory(const std::vector<std::string>& method_paths) {
  known_methods_.insert(known_methods_.end(), method_paths.begin(), method_paths.end());
  std::sort(known_methods_.begin(), known_methods_.end());
  return std::make_unique<MetricsInterceptorFactory>(this);
}

void ServerMetrics::RecordRpc(const std::string& method_path, int code, double seconds) {
  // A client may call any path; only the services' own become label values.
  const bool known = std::binary_search(known_methods_.begin(), known_methods_.end(), method_path);
  const auto [service, method] =
      known ? SplitPath(method_path) : std::pair<std::string, std::string>{"unknown", "unknown"};
  rpcs_.WithLabels({service, method, CodeName(code)}).Increment();
  rpc_seconds_.WithLabels({service, method}).Observe(seconds);
}

void ServerMetrics::BlobBytesIn(uint64_t bytes) { blob_in_.Increment(static_cast<double>(bytes)); }

void ServerMetrics::BlobBytesOut(uint64_t bytes) {
  blob_out_.Increment(static_cast<double>(bytes));
}

void ServerMetrics::ReportAnswered(const wxp::v1::ReportRequest& request,
                                   const grpc::Status& status,
                                   const wxp::v1::ReportResponse& response) {
  if (!status.ok()) {
    reports_refused_.WithLabels({absl::AsciiStrToLower(CodeName(status.error_code()))}).Increment();
  } else if (response.duplicate()) {
    reports_duplicate_.Increment();
  } else {
    reports_accepted_.Increment();
    // Only a stored report names a swarm that exists (bounded labels), and only once.
    if (request.training_failed()) training_failures_.WithLabels({request.swarm()}).Increment();
  }
}

void ServerMetrics::RoundClosed(const std::string& swarm, double seconds) {
  round_seconds_.WithLabels({swarm}).Observe(seconds);
}

void ServerMetrics::WatchCoordinator(Coordinator* coordinator) {
  registry_->AddCollector([this, coordinator] { CollectSwarms(coordinator); });
}

void ServerMetrics::CollectSwarms(Coordinator* coordinator) {
  absl::StatusOr<wxp::v1::ListSwarmsResponse> swarms = coordinator->ListSwarms();
  for (auto* f : {&iteration_, &step_length_, &global_best_, &global_worst_, &mean_utility_,
                  &particles_, &agents_online_, &swarm_state_, &weight_version_}) {
    f->Clear();
  }
  if (!swarms.ok()) {
    collect_errors_.Increment();
    return;
  }
  for (const wxp::v1::SwarmStatus& s : swarms->swarms()) {
    const std::string& name = s.name();
    iteration_.WithLabels({name}).Set(s.iteration());
    step_length_.WithLabels({name}).Set(s.step_length());
    agents_online_.WithLabels({name}).Set(s.agents_online());
    weight_version_.WithLabels({name}).Set(s.utility_weight_version());
    for (const char* state : kSwarmStates) {
      swarm_state_.WithLabels({name, state})
          .Set(wxp::v1::SwarmState_Name(s.state()) == state ? 1 : 0);
    }
    if (s.particles() == 0) continue;  // no pool yet: no g, g_w or particles
    particles_.WithLabels({name, "live"}).Set(s.particles_live());
    particles_.WithLabels({name, "stale"}).Set(s.particles_stale());
    global_best_.WithLabels({name}).Set(s.global_best().utility());
    global_worst_.WithLabels({name}).Set(s.global_worst().utility());
    absl::StatusOr<wxp::v1::ListParticlesResponse> particles = coordinator->ListParticles(name);
    if (!particles.ok()) {
      collect_errors_.Increment();
      continue;
    }
    double sum = 0;
    int evaluated = 0;
    for (const auto& p : particles->particles()) {
      if (p.iteration() < 0) continue;  // not evaluated yet: no utility
      sum += p.utility();
      ++evaluated;
    }
    if (evaluated > 0) mean_utility_.WithLabels({name}).Set(sum / evaluated);
  }
}

}  // namespace wxp::server
