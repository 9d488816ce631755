#include "tests/testing/swarm_admin.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/synthetic.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace wxp::proc {

std::unique_ptr<client::Connection> ConnectAs(const std::string& address,
                                              const std::string& identity, Role role,
                                              const std::string& certs_dir) {
  client::ConnectionOptions o;
  o.server_address = address;
  if (certs_dir.empty()) {
    o.plaintext = true;
    o.identity = identity;
  } else {
    o.tls.cert_file = certs_dir + "/" + identity + ".crt";
    o.tls.key_file = certs_dir + "/" + identity + ".key";
    o.tls.ca_file = certs_dir + "/ca.crt";
  }
  o.role = role;
  o.rpc_deadline = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<client::Connection>> c = client::Connection::Open(o, absl::Now());
  return c.ok() ? *std::move(c) : nullptr;
}

std::string SyntheticSwarmSpec(const std::string& name, const std::string& hyperparameters,
                               const std::string& extra, const std::string& mode) {
  // A field set twice does not parse, so `extra`'s deadline replaces the default.
  const bool own_deadline = absl::StrContains(extra, "round_deadline_seconds");
  return absl::StrCat("spec { name: '", name, "' min_experts: 3 mode: ", mode,
                      own_deadline ? "" : " round_deadline_seconds: 600", " utility { name: '",
                      kSyntheticComponent, "' weight: 1 } hyperparameters { ", hyperparameters,
                      " } ", extra, " }");
}

grpc::Status CreateSwarm(client::Connection& admin, const std::string& request_text) {
  wxp::v1::CreateSwarmRequest req;
  if (!google::protobuf::TextFormat::ParseFromString(request_text, &req)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "request does not parse: " + request_text);
  }
  wxp::v1::CreateSwarmResponse resp;
  return admin.admin().CreateSwarm(admin.NewContext().get(), req, &resp);
}

grpc::Status GetSwarmStatus(client::Connection& admin, const std::string& swarm,
                            wxp::v1::SwarmStatus* out) {
  wxp::v1::GetSwarmStatusRequest req;
  req.set_swarm(swarm);
  return admin.admin().GetSwarmStatus(admin.NewContext().get(), req, out);
}

grpc::Status GetHistory(client::Connection& admin, const std::string& swarm,
                        wxp::v1::GetHistoryResponse* out) {
  wxp::v1::GetHistoryRequest req;
  req.set_swarm(swarm);
  return admin.admin().GetHistory(admin.NewContext().get(), req, out);
}

wxp::v1::SwarmStatus SwarmStatusOf(client::Connection& admin, const std::string& swarm) {
  wxp::v1::SwarmStatus status;
  EXPECT_TRUE(GetSwarmStatus(admin, swarm, &status).ok());
  return status;
}

std::vector<double> GlobalBestHistoryOf(client::Connection& admin, const std::string& swarm) {
  wxp::v1::GetHistoryResponse history;
  EXPECT_TRUE(GetHistory(admin, swarm, &history).ok());
  std::vector<double> g;
  for (const auto& e : history.entries()) g.push_back(e.global_best_utility());
  return g;
}

std::vector<double> GlobalBestHistoryOf(const RunResult& run) {
  std::vector<double> g;
  for (const IterationSummary& s : run.history) g.push_back(s.global_best_utility);
  return g;
}

std::vector<std::pair<int, double>> LiveReadingsOf(client::Connection& admin,
                                                   const std::string& swarm) {
  wxp::v1::GetHistoryResponse history;
  EXPECT_TRUE(GetHistory(admin, swarm, &history).ok());
  std::map<int, std::pair<int, double>> first;  // by iteration
  for (const auto& e : history.entries()) {
    auto it = first.find(e.iteration());
    if (it == first.end() || e.utility_weight_version() < it->second.first) {
      first[e.iteration()] = {e.utility_weight_version(), e.global_best_utility()};
    }
  }
  std::vector<std::pair<int, double>> out;
  for (const auto& [iteration, reading] : first) out.push_back(reading);
  return out;
}

std::vector<std::pair<int, double>> LiveReadingsOf(const RunResult& run) {
  std::vector<std::pair<int, double>> out;
  for (const IterationSummary& s : run.history) {
    out.push_back({s.utility_version, s.global_best_utility});
  }
  return out;
}

}  // namespace wxp::proc
