#include "server/dashboard/dashboard.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/proto_json.h"
#include "nlohmann/json.hpp"
#include "server/dashboard/assets.h"

namespace wxp::server {
namespace {

constexpr char kJson[] = "application/json; charset=utf-8";

metrics::HttpResponse Error(const absl::Status& status) {
  const int code = status.code() == absl::StatusCode::kNotFound ? 404 : 500;
  nlohmann::json body = {{"error", std::string(status.message())},
                         {"code", absl::StatusCodeToString(status.code())}};
  return {code, kJson, body.dump()};
}

metrics::HttpResponse NotFound() { return Error(absl::NotFoundError("no such page")); }

metrics::HttpResponse Asset(absl::string_view name) {
  for (size_t i = 0; i < dashboard_assets::kAssetCount; ++i) {
    const dashboard_assets::Asset& a = dashboard_assets::kAssets[i];
    if (name == a.name) return {200, a.content_type, std::string(a.body, a.size)};
  }
  return NotFound();
}

}  // namespace

std::vector<metrics::HttpRoute> Dashboard::Routes() {
  return {{"/", [this](const std::string& path) { return Get(path); }}};
}

metrics::HttpResponse Dashboard::Get(const std::string& path) {
  if (path == "/" || path == "/index.html") return Asset("index.html");
  absl::string_view rest = path;
  if (absl::ConsumePrefix(&rest, "/assets/")) {
    // Only the page's own assets: never index.html under another name.
    if (rest == "index.html") return NotFound();
    return Asset(rest);
  }
  if (absl::StartsWith(path, "/api/")) return Api(path);
  return NotFound();
}

metrics::HttpResponse Dashboard::Api(const std::string& path) {
  absl::string_view rest = path;
  if (rest == "/api/swarms" || rest == "/api/swarms/") {
    absl::StatusOr<wxp::v1::ListSwarmsResponse> swarms = coordinator_->ListSwarms();
    if (!swarms.ok()) return Error(swarms.status());
    return {200, kJson, ProtoJson(*swarms)};
  }
  if (!absl::ConsumePrefix(&rest, "/api/swarms/")) return NotFound();
  const bool particles = absl::ConsumeSuffix(&rest, "/particles");
  const std::string swarm(rest);
  if (swarm.empty() || absl::StrContains(swarm, '/')) return NotFound();
  if (particles) {
    absl::StatusOr<wxp::v1::ListParticlesResponse> list = coordinator_->ListParticles(swarm);
    if (!list.ok()) return Error(list.status());
    return {200, kJson, ProtoJson(*list)};
  }
  // Three reads, not one snapshot: a round may close between them. The page shows the
  // status's iteration and draws whatever history came; the next refresh catches up.
  absl::StatusOr<wxp::v1::SwarmStatus> status = coordinator_->GetSwarmStatus(swarm);
  if (!status.ok()) return Error(status.status());
  absl::StatusOr<wxp::v1::GetHistoryResponse> history = coordinator_->GetHistory(swarm);
  if (!history.ok()) return Error(history.status());
  absl::StatusOr<wxp::v1::UtilityWeights> weights = coordinator_->GetUtilityWeights(swarm);
  if (!weights.ok()) return Error(weights.status());
  return {200, kJson,
          absl::StrCat("{\n\"status\": ", ProtoJson(*status), ",\n\"history\": ",
                       ProtoJson(*history), ",\n\"weights\": ", ProtoJson(*weights), "\n}")};
}

}  // namespace wxp::server
