// wxp-server's Prometheus metrics (SPEC 11; the names and labels are listed in
// deploy/README.md): every RPC by method and status code with its latency, reports by
// outcome, local trainings the agents report failed, blob bytes in and out, store commits,
// and each swarm's state read from the
// coordinator at every scrape. WxpServer creates one when --metrics_address is set and
// serves registry() with common/metrics_http.
//
// Labels stay bounded: methods are the services' own (any other path counts as
// "unknown"), codes are gRPC's 17, swarms are the server's swarms.
//
// Thread-safety: everything is thread-safe.
#ifndef WXP_SERVER_APP_SERVER_METRICS_H_
#define WXP_SERVER_APP_SERVER_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/coordinator/coordinator.h"
#include "server/service/service_observer.h"

namespace wxp::server {

class ServerMetrics final : public ServiceObserver {
 public:
  // Registers every family and starts observing the process's store commits
  // (store::UpdatePipeline's commit observers) until destruction.
  ServerMetrics();
  ~ServerMetrics() override;
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  metrics::Registry& registry() { return *registry_; }

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators: records every call's
  // status code and duration under its method. `method_paths` ("/pkg.Service/Method") are
  // the methods counted by name. The factory uses this object, which must outlive the
  // gRPC server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcInterceptorFactory(
      const std::vector<std::string>& method_paths);

  // Reads every swarm's status and particles from `coordinator` at each scrape. Not owned:
  // it must outlive every scrape (stop the HTTP server first).
  void WatchCoordinator(Coordinator* coordinator);

  // ServiceObserver.
  void BlobBytesIn(uint64_t bytes) override;
  void BlobBytesOut(uint64_t bytes) override;
  // Also counts a stored (not duplicate) report's training_failed under its swarm.
  void ReportAnswered(const wxp::v1::ReportRequest& request, const grpc::Status& status,
                      const wxp::v1::ReportResponse& response) override;

  // A round of `swarm` closed after `seconds` (Coordinator::Options::on_round_closed).
  void RoundClosed(const std::string& swarm, double seconds);

  // One RPC's outcome (the interceptor's record; public for tests).
  void RecordRpc(const std::string& method_path, int code, double seconds);

 private:
  void CollectSwarms(Coordinator* coordinator);

  // Shared with the store's commit observer, which may run on a commit thread of another
  // store in the process while this object is destroyed.
  std::shared_ptr<metrics::Registry> registry_;
  std::vector<std::string> known_methods_;  // set before serving, read-only afterwards
  uint64_t commit_observer_ = 0;

  metrics::Family<metrics::Counter>& rpcs_;
  metrics::Family<metrics::Histogram>& rpc_seconds_;
  metrics::Counter& reports_accepted_;
  metrics::Counter& reports_duplicate_;
  metrics::Family<metrics::Counter>& reports_refused_;
  metrics::Family<metrics::Counter>& training_failures_;
  metrics::Counter& blob_in_;
  metrics::Counter& blob_out_;
  metrics::Family<metrics::Gauge>& iteration_;
  metrics::Family<metrics::Gauge>& step_length_;
  metrics::Family<metrics::Gauge>& global_best_;
  metrics::Family<metrics::Gauge>& global_worst_;
  metrics::Family<metrics::Gauge>& mean_utility_;
  metrics::Family<metrics::Gauge>& particles_;
  metrics::Family<metrics::Gauge>& agents_online_;
  metrics::Family<metrics::Gauge>& swarm_state_;
  metrics::Family<metrics::Gauge>& weight_version_;
  metrics::Counter& collect_errors_;
  metrics::Family<metrics::Histogram>& round_seconds_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_APP_SERVER_METRICS_H_
