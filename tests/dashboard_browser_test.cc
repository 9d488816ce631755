// The dashboard in a real browser (SPEC 11): Debian's headless chromium, driven through
// chromedriver's W3C WebDriver HTTP API, loads the page from a real wxp-server --dashboard
// while real wxp-agents run a swarm. The utility curve must gain points while it runs, the
// particles table must show what `wxpctl particles --output json` answers, and a
// screenshot of the page is saved as a test output (dashboard.png in
// TEST_UNDECLARED_OUTPUTS_DIR) for people to look at.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "tests/dashboard_fixture.h"
#include "tests/testing/processes.h"

namespace wxp {
namespace {

using proc::ChildProcess;

constexpr char kChromium[] = "/usr/bin/chromium";
constexpr char kChromedriver[] = "/usr/bin/chromedriver";

// A WebDriver session on a chromedriver child: the few commands the test needs.
class Browser {
 public:
  Browser(int port, std::string session) : port_(port), session_(std::move(session)) {}

  // POST/GET `command` under the session; the answer's "value" (null on failure).
  nlohmann::json Call(const std::string& method, const std::string& command,
                      const nlohmann::json& body = nlohmann::json::object()) {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(60);
    const std::string path = "/session/" + session_ + command;
    httplib::Result res =
        method == "GET" ? client.Get(path) : client.Post(path, body.dump(), "application/json");
    if (!res) return nullptr;
    nlohmann::json answer = nlohmann::json::parse(res->body, nullptr, false);
    if (answer.is_discarded() || res->status != 200) {
      ADD_FAILURE() << method << " " << command << ": " << res->status << " " << res->body;
      return nullptr;
    }
    return answer["value"];
  }

  nlohmann::json Execute(const std::string& script) {
    return Call("POST", "/execute/sync", {{"script", script}, {"args", nlohmann::json::array()}});
  }

  void Quit() {
    httplib::Client client("127.0.0.1", port_);
    client.Delete("/session/" + session_);
  }

 private:
  int port_;
  std::string session_;
};

class DashboardBrowserTest : public DashboardProcessTest {
 protected:
  void TearDown() override {
    if (browser_) browser_->Quit();
    if (driver_.Running()) driver_.Kill(SIGTERM);
    DashboardProcessTest::TearDown();
  }

  void StartBrowser() {
    ASSERT_TRUE(std::filesystem::exists(kChromium) && std::filesystem::exists(kChromedriver))
        << "deploy/install-deps.sh installs Debian's chromium and chromium-driver";
    const int port = proc::FreeLoopbackPort();
    ASSERT_GT(port, 0);
    ASSERT_TRUE(
        driver_.Start({kChromedriver, absl::StrCat("--port=", port)}, root_ + "/chromedriver.log"));
    const nlohmann::json caps = {
        {"capabilities",
         {{"alwaysMatch",
           {{"browserName", "chrome"},
            {"goog:chromeOptions",
             {{"binary", kChromium},
              {"args",
               {"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1500", "--user-data-dir=" + root_ + "/chromium"}}}}}}}}};
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60);
    // chromedriver takes a moment to listen; the bound only ends a broken install.
    proc::PollUntil([&] { return static_cast<bool>(client.Get("/status")); }, absl::Seconds(120),
                    absl::Milliseconds(100));
    httplib::Result res = client.Post("/session", caps.dump(), "application/json");
    ASSERT_TRUE(res) << proc::Tail(root_ + "/chromedriver.log");
    ASSERT_EQ(res->status, 200) << res->body;
    const nlohmann::json answer = nlohmann::json::parse(res->body);
    browser_ = std::make_unique<Browser>(port, answer["value"]["sessionId"].get<std::string>());
  }

  // Polls `script` (returning a number) until it answers more than `than`.
  int AwaitMoreThan(const std::string& script, int than, absl::Duration timeout) {
    int got = -1;
    proc::PollUntil(
        [&] {
          const nlohmann::json v = browser_->Execute(script);
          got = v.is_number() ? v.get<int>() : -1;
          return got > than;
        },
        timeout, absl::Milliseconds(200));
    return got;
  }

  ChildProcess driver_;
  std::unique_ptr<Browser> browser_;
};

TEST_F(DashboardBrowserTest, PageFollowsALiveSwarmAndShowsWhatWxpctlShows) {
  StartBrowser();
  ASSERT_NO_FATAL_FAILURE(CreateSwarm("seed: 9 max_iterations: 40 patience: 40"));
  auto admin = Admin();
  browser_->Call("POST", "/url",
                 {{"url", absl::StrCat("http://127.0.0.1:", http_port_, "/#/swarm/swarm")}});
  const std::string points =
      "return Number(document.getElementById('utility-chart')"
      ".dataset.currentPoints || 0);";
  const std::string state = "return document.getElementById('swarm-state').textContent;";
  ChildProcess a, b;
  ASSERT_TRUE(a.Start(AgentArgs("firm-a", {0, 1}), root_ + "/firm-a.log"));
  ASSERT_TRUE(b.Start(AgentArgs("firm-b", {2}), root_ + "/firm-b.log"));

  // The curve gains points as rounds close (the page refreshes itself every 2 s).
  const int first = AwaitMoreThan(points, 0, absl::Minutes(2));
  ASSERT_GT(first, 0) << browser_->Execute(state);
  const int later = AwaitMoreThan(points, first, absl::Minutes(2));
  EXPECT_GT(later, first);
  // A utility-weight change mid-run, so the page (and the screenshot) shows both readings.
  // The swarm may have just finished; then there is nothing to change.
  wxp::v1::SetUtilityWeightsRequest w;
  w.set_swarm("swarm");
  (*w.mutable_weights())[kSyntheticComponent] = 2;
  wxp::v1::UtilityWeights new_weights;
  const bool changed =
      admin->admin().SetUtilityWeights(admin->NewContext().get(), w, &new_weights).ok();

  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");

  // Once the page shows the swarm finished, its particles table is wxpctl's answer. The bound
  // only ends a broken run: an ASan server on two busy cores may take long to answer a refresh.
  proc::PollUntil([&] { return browser_->Execute(state) == "finished"; }, absl::Seconds(120),
                  absl::Milliseconds(200));
  ASSERT_EQ(browser_->Execute(state), "finished");
  if (changed) {
    EXPECT_EQ(browser_->Execute("return document.getElementById('cards').textContent"
                                ".includes('v2');"),
              true);
  }
  ChildProcess wxpctl;
  const std::string wxpctl_out = root_ + "/wxpctl_particles.json";
  ASSERT_TRUE(
      wxpctl.Start({proc::Runfile("client/wxpctl"), "--server=" + server_->address(), "--plaintext",
                    "--identity=ops", "particles", "swarm", "--output", "json"},
                   wxpctl_out));
  const int sw = wxpctl.Wait(absl::Seconds(120));
  ASSERT_TRUE(WIFEXITED(sw) && WEXITSTATUS(sw) == 0) << proc::Tail(wxpctl_out);
  std::ifstream in(wxpctl_out);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json want = nlohmann::json::parse(text.str(), nullptr, false);
  ASSERT_FALSE(want.is_discarded()) << text.str();
  const nlohmann::json rows = browser_->Execute(
      "return Array.from(document.querySelectorAll('#particles-table tbody tr')).map(tr => ({"
      "id: Number(tr.dataset.particleId), owner: tr.querySelector('.owner').textContent,"
      "utility: Number(tr.dataset.utility), restarts: Number(tr.dataset.restarts)}));");
  ASSERT_TRUE(rows.is_array()) << rows;
  ASSERT_EQ(rows.size(), want["particles"].size()) << rows << "\n" << want;
  for (size_t i = 0; i < rows.size(); ++i) {
    const nlohmann::json& p = want["particles"][i];
    EXPECT_EQ(rows[i]["id"], p["particle_id"]) << i;
    EXPECT_EQ(rows[i]["owner"], p["owner"]) << i;
    EXPECT_EQ(rows[i]["utility"].get<double>(), p["utility"].get<double>()) << i;
    EXPECT_EQ(rows[i]["restarts"], p["restarts"]) << i;
  }

  const nlohmann::json png = browser_->Call("GET", "/screenshot");
  ASSERT_TRUE(png.is_string());
  std::string bytes;
  ASSERT_TRUE(absl::Base64Unescape(png.get<std::string>(), &bytes));
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const std::string dir = outputs != nullptr ? outputs : ::testing::TempDir();
  std::ofstream(dir + "/dashboard.png", std::ios::binary) << bytes;
  EXPECT_GT(bytes.size(), 10000u);
}

}  // namespace
}  // namespace wxp
