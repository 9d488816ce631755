// wxp-server's read-only web dashboard (SPEC 11): a page and its assets, compiled into the
// binary, and a JSON API over the coordinator's admin views. It adds routes to the metrics
// HTTP listener (common/metrics_http.h), so it is served on --metrics_address and shares
// its access rule: loopback unless remote access is explicitly allowed.
//
//   GET /                            the page (index.html)
//   GET /assets/NAME                 its CSS and JS
//   GET /api/swarms                  ListSwarmsResponse
//   GET /api/swarms/NAME             {"status": SwarmStatus, "history": GetHistoryResponse,
//                                     "weights": UtilityWeights}
//   GET /api/swarms/NAME/particles   ListParticlesResponse
//
// API answers are the JSON `wxpctl ... --output json` prints (common/proto_json.h). An
// unknown swarm is 404, an unknown path 404; failures other than NotFound are 500 with
// {"error": "..."}; the listener answers 405 to anything but GET/HEAD.
#ifndef WXP_SERVER_DASHBOARD_DASHBOARD_H_
#define WXP_SERVER_DASHBOARD_DASHBOARD_H_

#include <string>
#include <vector>

#include "common/metrics_http.h"
#include "server/coordinator/coordinator.h"

namespace wxp::server {

class Dashboard {
 public:
  // `coordinator` is not owned and must outlive every request the routes answer.
  explicit Dashboard(Coordinator* coordinator) : coordinator_(coordinator) {}
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // The routes to add to MetricsHttpServer::Options::routes. Thread-safe (the coordinator
  // is); they capture `this`.
  std::vector<metrics::HttpRoute> Routes();

  // The answer to GET `path` (URL-decoded, query string removed).
  metrics::HttpResponse Get(const std::string& path);

 private:
  metrics::HttpResponse Api(const std::string& path);

  Coordinator* coordinator_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_DASHBOARD_DASHBOARD_H_
