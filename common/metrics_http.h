// The HTTP endpoint Prometheus scrapes: GET /metrics answers a Registry's Render() as
// `text/plain; version=0.0.4`. Callers may add further read-only GET routes by path prefix
// (wxp-server's dashboard), so one listener serves both; every other path is 404 and every
// method but GET/HEAD is 405. It is cpp-httplib (Debian's libcpp-httplib-dev) on its own
// threads, plain HTTP, read-only.
//
// Metrics tell an observer what the swarms do (names, utilities, traffic), so the endpoint
// listens on loopback unless the caller explicitly allows another address. With Options::tls
// it is HTTPS instead: the TLS handshake refuses a client without a certificate from the
// given CA (valid now, for client authentication), and Options::authorize then decides per
// request from that certificate; a refusal answers 403 with the reason.
#ifndef WXP_COMMON_METRICS_HTTP_H_
#define WXP_COMMON_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
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
    // PEM files: this server's certificate and key, and the CA whose client certificates
    // the handshake accepts.
    struct Tls {
      std::string cert_file;
      std::string key_file;
      std::string client_ca_file;
    };
    // HTTPS with required client certificates instead of plain HTTP.
    std::optional<Tls> tls;
    // With tls, required: whether the client whose (verified) certificate is
    // `client_cert_pem` may GET `path`; a non-OK status answers 403 with its message. Called
    // on the server's threads, concurrently, for every request before it is routed.
    std::function<absl::Status(const std::string& path, const std::string& client_cert_pem)>
        authorize;
  };

  // Binds and starts serving on a background thread. Errors: InvalidArgument for a
  // malformed address, a missing registry, a route without a handler, tls without authorize
  // or TLS files that do not load, FailedPrecondition for a non-loopback address without
  // allow_remote, Unavailable if the address cannot be bound.
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
