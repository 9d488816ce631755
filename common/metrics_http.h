// The HTTP endpoint Prometheus scrapes: GET /metrics answers a Registry's Render() as
// `text/plain; version=0.0.4`. Callers may add further read-only GET routes by path prefix
// (wxp-server's dashboard), so one listener serves both; every other path is 404 and every
// method but GET/HEAD is 405. It is cpp-httplib (Debian's libcpp-httplib-dev) on its own
// threads, plain HTTP, read-only.
//
// Metrics tell an observer what the swarms do (names, utilities, traffic), so the endpoint
// listens on loopback unless the caller explicitly allows another address.
#ifndef WXP_COMMON_METRICS_HTTP_H_
#define WXP_COMMON_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics.h"

namespace wxp::metrics {

// What a GET route answers.
struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// A read-only route: every GET whose path starts with `prefix` (other than /metrics) goes to
// `handle` with the full, URL-decoded path. Called on the server's threads, concurrently.
struct HttpRoute {
  std::string prefix;
  std::function<HttpResponse(const std::string& path)> handle;
};

class MetricsHttpServer {
 public:
  struct Options {
    // host:port ("127.0.0.1:9464", "localhost:0", "[::1]:9464"); port 0 picks a free one.
    std::string address;
    // Without it, a host other than 127.x.y.z, localhost or ::1 is refused.
    bool allow_remote = false;
    Registry* registry = nullptr;  // required; not owned, must outlive the server
    // Tried in order; the first whose prefix matches answers. Whatever they read must
    // outlive the server (or Stop()).
    std::vector<HttpRoute> routes;
  };

  // Binds and starts serving on a background thread. Errors: InvalidArgument for a
  // malformed address, a missing registry or a route without a handler, FailedPrecondition for a
  // non-loopback address without allow_remote, Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const Options& options);
  ~MetricsHttpServer();  // Stop()
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const;
  // Stops accepting, ends open connections and joins the server's threads. Idempotent;
  // not to be called from two threads at once.
  void Stop();

 private:
  struct Impl;
  explicit MetricsHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether `address` (host:port) names a loopback host: 127.x.y.z, localhost or [::1].
bool IsLoopbackAddress(const std::string& address);

}  // namespace wxp::metrics

#endif  // WXP_COMMON_METRICS_HTTP_H_
