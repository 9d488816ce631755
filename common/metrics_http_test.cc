#include "common/metrics_http.h"

#include "gtest/gtest.h"
#include "httplib.h"

namespace wxp::metrics {
namespace {

TEST(MetricsHttpTest, ServesTheRegistryOnGetMetrics) {
  Registry registry;
  registry.AddCounter("wxp_hits_total", "Hits.").Get().Increment(3);
  auto server = MetricsHttpServer::Start({"127.0.0.1:0", false, &registry});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(res->body, registry.Render());
  EXPECT_NE(res->body.find("wxp_hits_total 3\n"), std::string::npos) << res->body;

  httplib::Result other = client.Get("/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  httplib::Result post = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_NE(post->status, 200);

  (*server)->Stop();
  (*server)->Stop();  // idempotent
  httplib::Client after("127.0.0.1", (*server)->port());
  EXPECT_FALSE(after.Get("/metrics"));
}

TEST(MetricsHttpTest, ServesExtraRoutesBesideMetricsAndRefusesWrites) {
  Registry registry;
  MetricsHttpServer::Options options{"127.0.0.1:0", false, &registry};
  options.routes.push_back({"/api/", [](const std::string& path) {
                              return HttpResponse{200, "application/json", "\"" + path + "\""};
                            }});
  options.routes.push_back({"/", [](const std::string& path) {
                              if (path != "/") return HttpResponse{404, "text/plain", "no"};
                              return HttpResponse{200, "text/html", "<p>page</p>"};
                            }});
  auto server = MetricsHttpServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result api = client.Get("/api/swarms/a%20b");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 200);
  EXPECT_EQ(api->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(api->body, "\"/api/swarms/a b\"");
  httplib::Result page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->body, "<p>page</p>");
  httplib::Result missing = client.Get("/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  httplib::Result metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->body, registry.Render());
  httplib::Result writes[] = {client.Post("/api/swarms", "x", "text/plain"),
                              client.Put("/", "x", "text/plain"), client.Delete("/api/swarms")};
  for (const httplib::Result& r : writes) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(r->get_header_value("Allow"), "GET, HEAD");
  }

  MetricsHttpServer::Options broken{"127.0.0.1:0", false, &registry};
  broken.routes.push_back({"/", nullptr});
  EXPECT_EQ(MetricsHttpServer::Start(broken).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsHttpTest, RefusesNonLoopbackUnlessAllowed) {
  Registry registry;
  auto refused = MetricsHttpServer::Start({"0.0.0.0:0", false, &registry});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  auto allowed = MetricsHttpServer::Start({"0.0.0.0:0", true, &registry});
  EXPECT_TRUE(allowed.ok()) << allowed.status();
}

TEST(MetricsHttpTest, HttpsNeedsAnAuthorizationCheckAndLoadableFiles) {
  Registry registry;
  MetricsHttpServer::Options options{"127.0.0.1:0", false, &registry};
  options.tls = MetricsHttpServer::Options::Tls{"/nonexistent/server.crt",
                                                "/nonexistent/server.key", "/nonexistent/ca.crt"};
  EXPECT_EQ(MetricsHttpServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.authorize = [](const std::string&, const std::string&) { return absl::OkStatus(); };
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> unloadable = MetricsHttpServer::Start(options);
  EXPECT_EQ(unloadable.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unloadable.status().message().find("/nonexistent/server.crt"), std::string::npos)
      << unloadable.status();
}

TEST(MetricsHttpTest, RefusesMalformedAddressesAndABusyPort) {
  Registry registry;
  EXPECT_EQ(MetricsHttpServer::Start({"127.0.0.1", false, &registry}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start({"127.0.0.1:http", false, &registry}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start({"127.0.0.1:0", false, nullptr}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = MetricsHttpServer::Start({"127.0.0.1:0", false, &registry});
  ASSERT_TRUE(first.ok());
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  EXPECT_EQ(MetricsHttpServer::Start({taken, false, &registry}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(MetricsHttpTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:9464"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:9464"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:9464"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:9464"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:9464"));
  EXPECT_FALSE(IsLoopbackAddress("metrics.example:9464"));
}

}  // namespace
}  // namespace wxp::metrics
