#include "common/metrics_http.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "httplib.h"

namespace wxp::metrics {
namespace {

// Prometheus scrapes one request at a time per target; two threads leave room for a person
// with curl beside it.
constexpr size_t kThreads = 2;

struct HostPort {
  std::string host;
  int port = 0;
};

absl::StatusOr<HostPort> ParseAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' is not host:port"));
  }
  HostPort hp;
  hp.host = address.substr(0, colon);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), &hp.port) || hp.port < 0 || hp.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address '", address, "' has no valid port"));
  }
  return hp;
}

// The TLS context of Options::tls: this server's certificate chain and key, and a required,
// verified client certificate from the CA (OpenSSL checks the chain, the dates and, on a
// server, the clientAuth purpose during the handshake).
bool SetUpTls(SSL_CTX& ctx, const MetricsHttpServer::Options::Tls& tls) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, tls.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(&ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1 ||
      SSL_CTX_load_verify_locations(&ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
    return false;
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
  if (names == nullptr) return false;
  SSL_CTX_set_client_CA_list(&ctx, names);
  SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return true;
}

// The verified client certificate of `req`'s connection as PEM; empty if there is none.
std::string PeerCertificatePem(const httplib::Request& req) {
  if (req.ssl == nullptr) return "";
  X509* cert = SSL_get1_peer_certificate(req.ssl);
  if (cert == nullptr) return "";
  std::string pem;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr && PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    if (size > 0) pem.assign(data, static_cast<size_t>(size));
  }
  BIO_free(bio);
  X509_free(cert);
  return pem;
}

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  return absl::StartsWith(address, "127.") || absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

struct MetricsHttpServer::Impl {
  std::unique_ptr<httplib::Server> http;
  std::thread thread;
  int port = 0;
  bool stopped = false;
};

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const Options& options) {
  if (options.registry == nullptr) return absl::InvalidArgumentError("no metrics registry");
  for (const HttpRoute& route : options.routes) {
    if (!route.handle) return absl::InvalidArgumentError("an HTTP route without a handler");
  }
  absl::StatusOr<HostPort> hp = ParseAddress(options.address);
  if (!hp.ok()) return hp.status();
  if (!options.allow_remote && !IsLoopbackAddress(options.address)) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics listen on loopback only; ", options.address,
                     " is not loopback (allow remote metrics explicitly if you really mean it)"));
  }
  if (options.tls && !options.authorize) {
    return absl::InvalidArgumentError("HTTPS metrics without an authorization check");
  }
  auto impl = std::make_unique<Impl>();
  if (options.tls) {
    const Options::Tls tls = *options.tls;
    auto https =
        std::make_unique<httplib::SSLServer>([tls](SSL_CTX& ctx) { return SetUpTls(ctx, tls); });
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot serve HTTPS with certificate ", tls.cert_file, ", key ", tls.key_file,
          " and client CA ", tls.client_ca_file, " (unreadable, not PEM, or not a pair)"));
    }
    // Before any route: nothing is answered to a client the caller has not admitted.
    https->set_pre_routing_handler(
        [authorize = options.authorize](const httplib::Request& req, httplib::Response& res) {
          const absl::Status allowed = authorize(req.path, PeerCertificatePem(req));
          if (allowed.ok()) return httplib::Server::HandlerResponse::Unhandled;
          res.status = 403;
          res.set_content(absl::StrCat("forbidden: ", allowed.message(), "\n"),
                          "text/plain; charset=utf-8");
          return httplib::Server::HandlerResponse::Handled;
        });
    impl->http = std::move(https);
  } else {
    impl->http = std::make_unique<httplib::Server>();
  }
  Registry* registry = options.registry;
  impl->http->new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  // httplib's default also sets SO_REUSEPORT, which would let a second process bind the same
  // port and take half the scrapes: only SO_REUSEADDR (a restart rebinds at once).
  impl->http->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  impl->http->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  impl->http->Get(".*",
                  [routes = options.routes](const httplib::Request& req, httplib::Response& res) {
                    for (const HttpRoute& route : routes) {
                      if (!absl::StartsWith(req.path, route.prefix)) continue;
                      HttpResponse answer = route.handle(req.path);
                      res.status = answer.status;
                      res.set_content(std::move(answer.body), answer.content_type);
                      return;
                    }
                    res.status = 404;
                    res.set_content("not found\n", "text/plain; charset=utf-8");
                  });
  // Everything served is read-only: say so instead of httplib's 404 for an unrouted method.
  const auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_content("method not allowed\n", "text/plain; charset=utf-8");
  };
  impl->http->Post(".*", not_allowed);
  impl->http->Put(".*", not_allowed);
  impl->http->Patch(".*", not_allowed);
  impl->http->Delete(".*", not_allowed);
  if (hp->port == 0) {
    impl->port = impl->http->bind_to_any_port(hp->host);
  } else if (impl->http->bind_to_port(hp->host, hp->port)) {
    impl->port = hp->port;
  }
  if (impl->port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address));
  }
  httplib::Server* http = impl->http.get();
  impl->thread = std::thread([http] { http->listen_after_bind(); });
  // stop() only acts on a running server: wait until the loop runs, so that a Stop() right
  // after Start() cannot be lost. It takes microseconds; the bound only guards a broken
  // library.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!http->is_running() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(1));
  if (!http->is_running()) {
    http->stop();
    impl->thread.join();
    return absl::InternalError("the metrics HTTP server did not start");
  }
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(impl)));
}

int MetricsHttpServer::port() const { return impl_->port; }

void MetricsHttpServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->http->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

}  // namespace wxp::metrics
