#include "server/dashboard/dashboard.h"

#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/coordinator/position_blobs.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}});
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *std::move(c);
    dashboard_ = std::make_unique<Dashboard>(coordinator_.get());
  }

  void CreateSwarm(const std::string& name) {
    wxp::v1::SwarmSpec spec;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "name: '" + name +
            "' min_experts: 2 utility { name: 'acc' weight: 1 } "
            "hyperparameters { seed: 3 pool_size: 4 }",
        &spec));
    ASSERT_TRUE(coordinator_->CreateSwarm({"ops", Role::kAdmin}, spec).ok());
  }

  nlohmann::json GetJson(const std::string& path) {
    const metrics::HttpResponse r = dashboard_->Get(path);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
    return nlohmann::json::parse(r.body);
  }

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Dashboard> dashboard_;
};

TEST_F(DashboardTest, ServesThePageAndItsAssetsFromTheBinary) {
  const metrics::HttpResponse page = dashboard_->Get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("/assets/dashboard.js"), std::string::npos);
  EXPECT_NE(page.body.find("/assets/dashboard.css"), std::string::npos);
  // Nothing from elsewhere: no absolute URLs in the page.
  EXPECT_EQ(page.body.find("http://"), std::string::npos);
  EXPECT_EQ(page.body.find("https://"), std::string::npos);
  const metrics::HttpResponse js = dashboard_->Get("/assets/dashboard.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(js.body.find("/api/swarms"), std::string::npos);
  EXPECT_EQ(dashboard_->Get("/assets/dashboard.css").status, 200);
  EXPECT_EQ(dashboard_->Get("/assets/nothing.js").status, 404);
  EXPECT_EQ(dashboard_->Get("/assets/index.html").status, 404);
  EXPECT_EQ(dashboard_->Get("/etc/passwd").status, 404);
}

TEST_F(DashboardTest, ApiAnswersTheAdminViewsAsJson) {
  EXPECT_TRUE(GetJson("/api/swarms")["swarms"].empty());
  CreateSwarm("beta");
  CreateSwarm("alpha");
  const nlohmann::json swarms = GetJson("/api/swarms");
  ASSERT_EQ(swarms["swarms"].size(), 2u);
  EXPECT_EQ(swarms["swarms"][0]["name"], "alpha");
  EXPECT_EQ(swarms["swarms"][0]["state"], "PENDING_EXPERTS");
  EXPECT_EQ(swarms["swarms"][0]["min_experts"], 2);

  const nlohmann::json one = GetJson("/api/swarms/alpha");
  EXPECT_EQ(one["status"]["name"], "alpha");
  EXPECT_EQ(one["status"]["utility_weight_version"], 1);
  EXPECT_TRUE(one["history"]["entries"].empty());
  EXPECT_EQ(one["weights"]["version"], 1);
  ASSERT_EQ(one["weights"]["components"].size(), 1u);
  EXPECT_EQ(one["weights"]["components"][0]["name"], "acc");
  EXPECT_TRUE(GetJson("/api/swarms/alpha/particles")["particles"].empty());

  const metrics::HttpResponse missing = dashboard_->Get("/api/swarms/gamma");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(nlohmann::json::parse(missing.body)["error"].get<std::string>().find("gamma"),
            std::string::npos);
  EXPECT_EQ(dashboard_->Get("/api/swarms/gamma/particles").status, 404);
  EXPECT_EQ(dashboard_->Get("/api/swarms/alpha/x/particles").status, 404);
  EXPECT_EQ(dashboard_->Get("/api/other").status, 404);
}

}  // namespace
}  // namespace wxp::server
