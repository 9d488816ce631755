// The admin calls the multi-process tests make of a real wxp-server through the client
// library (client/net/connection.h): connecting, creating a swarm from its text spec, and
// reading a swarm's status and global-best history. Each call waits at most the
// connection's deadline (10 s for ConnectAs); none retries.
#ifndef WXP_TESTS_TESTING_SWARM_ADMIN_H_
#define WXP_TESTS_TESTING_SWARM_ADMIN_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/net/connection.h"
#include "common/runner.h"
#include "grpcpp/grpcpp.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::proc {

// A connection to `address` as `identity` in `role`, 10 s per call. With `certs_dir` empty
// it is plaintext (the server runs --plaintext); otherwise mutual TLS with
// <certs_dir>/<identity>.crt/.key and <certs_dir>/ca.crt. Null if the client library refuses
// the options (an unreadable or expired certificate).
std::unique_ptr<client::Connection> ConnectAs(const std::string& address,
                                              const std::string& identity, Role role,
                                              const std::string& certs_dir = "");

// The text of a CreateSwarmRequest (`spec { ... }`) for a swarm over three experts under the
// synthetic utility alone (weight 1) with a 600 s round deadline: swarm `name` in `mode`,
// `hyperparameters` (the fields of its hyperparameters message) and `extra` (more SwarmSpec fields,
// e.g. the space; a round_deadline_seconds there replaces the 600 s).
std::string SyntheticSwarmSpec(const std::string& name, const std::string& hyperparameters,
                               const std::string& extra = "", const std::string& mode = "SYNC");

// CreateSwarm with `request_text` (a CreateSwarmRequest in protobuf text format, as
// SyntheticSwarmSpec gives); INVALID_ARGUMENT without a call if the text does not parse.
grpc::Status CreateSwarm(client::Connection& admin, const std::string& request_text);

// GetSwarmStatus / GetHistory of swarm `swarm` into `out`, as the server answered.
grpc::Status GetSwarmStatus(client::Connection& admin, const std::string& swarm,
                            wxp::v1::SwarmStatus* out);
grpc::Status GetHistory(client::Connection& admin, const std::string& swarm,
                        wxp::v1::GetHistoryResponse* out);

// The same answers for assertions that go on after a failed call: a failed call adds a
// non-fatal gtest failure and gives an empty answer.
wxp::v1::SwarmStatus SwarmStatusOf(client::Connection& admin, const std::string& swarm);
// g's utility after each closed iteration, iteration 0 first.
std::vector<double> GlobalBestHistoryOf(client::Connection& admin, const std::string& swarm);

// The in-process runner's g utility after each iteration, iteration 0 first: what a
// federated SYNC run's GlobalBestHistoryOf must equal.
std::vector<double> GlobalBestHistoryOf(const RunResult& run);

// (weight version, g utility) of each closed iteration as it closed, iteration 0 first:
// with weight changes, the server's history also holds re-readings of earlier iterations
// under later versions, which these leave out (an iteration's first reading has its
// lowest version).
std::vector<std::pair<int, double>> LiveReadingsOf(client::Connection& admin,
                                                   const std::string& swarm);
// The same of a runner's run (RunnerOptions::utility_changes): what a federated SYNC run
// with the same weight changes between the same rounds must equal.
std::vector<std::pair<int, double>> LiveReadingsOf(const RunResult& run);

}  // namespace wxp::proc

#endif  // WXP_TESTS_TESTING_SWARM_ADMIN_H_
