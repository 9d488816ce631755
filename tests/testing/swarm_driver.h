// Drives a real wxp-server over gRPC the way wxp-agent does, for multi-process tests: an
// admin creates a swarm over synthetic experts, in-test agents join, move their particles
// locally (common/swarm_move.h), report, and upload when asked; a report whose answer was
// lost is retried verbatim, as a real agent must. Plaintext identities ("x-wxp-identity").
#ifndef WXP_TESTS_TESTING_SWARM_DRIVER_H_
#define WXP_TESTS_TESTING_SWARM_DRIVER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/adapter.h"
#include "common/runner.h"
#include "common/synthetic.h"
#include "grpcpp/grpcpp.h"
#include "proto/wxp.grpc.pb.h"
#include "server/store/swarm_store.h"
#include "tests/testing/processes.h"

namespace wxp::proc {

// Every adapter here is one 12x20 fp32 tensor.
inline constexpr int kDim = 240;
Schema TestSchema();
std::string Serialize(const std::vector<float>& v);  // safetensors bytes
std::vector<float> Deserialize(const std::string& bytes);

// One identity's channel to the server on 127.0.0.1:port.
class Client {
 public:
  Client(int port, std::string identity, std::string role);
  // A context with the identity's metadata and a 20 s deadline.
  std::unique_ptr<grpc::ClientContext> Ctx();
  grpc::Status Upload(const std::string& bytes);
  // nullopt when the call fails (the server may be down).
  std::optional<std::string> Download(const std::string& id);

  std::unique_ptr<wxp::v1::AdminService::Stub> admin;
  std::unique_ptr<wxp::v1::AgentService::Stub> agent;

 private:
  std::string identity_, role_;
};

// One agent's particles in swarm "swarm" and its step; reconnects are the caller's job (a
// new Client).
class Agent {
 public:
  Agent(std::string name, SyntheticEvaluator* eval) : name_(std::move(name)), eval_(eval) {}
  const std::string& name() const { return name_; }
  // Every (particle, iteration) whose report the server acknowledged.
  const std::vector<std::pair<int, int>>& acknowledged() const { return acknowledged_; }
  // Every failed write (report, upload, targets) since the last call, as the server answered.
  std::vector<grpc::Status> TakeFailures() { return std::exchange(failures_, {}); }

  // Takes the assignment and reports the initial evaluations (gtest assertions on failure).
  void Init(Client& c);
  // Returns false when every particle is done; RPC failures (server down) return true and
  // leave the state as it was, so the step is simply retried. A report whose answer was
  // lost is retried verbatim, as a real agent must: the server may have committed it.
  bool Step(Client& c);

 private:
  // A move computed and not yet acknowledged: retried verbatim until the server answers.
  struct Pending {
    int iteration = 0;
    std::vector<float> x, v;
    std::string bytes;
  };
  struct LocalParticle {
    std::vector<float> x, v, p;
    int iteration = 0;
    bool done = false;
    std::optional<Pending> pending;
  };

  bool Failed(const grpc::Status& s);
  bool Report(Client& c, int id, int k, const std::vector<float>& x, const std::string& blob_id,
              const std::string& bytes);

  std::string name_;
  SyntheticEvaluator* eval_;
  std::map<int, LocalParticle> particles_;
  std::vector<std::pair<int, int>> acknowledged_;
  std::map<std::string, std::string> pending_uploads_;
  std::vector<grpc::Status> failures_;
};

// SPEC 6 invariants on a stopped server's state: `store` holds every report the agents saw
// acknowledged and is consistent, and every held evaluation's blob is on disk under
// `dir`/blobs, uncorrupted and referenced.
void ExpectDurableState(store::SwarmStore& store, const std::string& dir,
                        const std::vector<const Agent*>& agents);

// Creates swarm "swarm" over three experts (agent b contributes the second), then both
// agents join and report their initial evaluations.
void StartSwarm(int port, const std::string& hyperparameters, const std::string& extra,
                const std::vector<std::vector<float>>& experts, Agent& a, Agent& b);

// Steps agents a and b until every particle is done (at most 500 steps), kill -9'ing
// `server` before step `kill_at` and starting it again on the same state. Returns the port
// the server last listened on (0 with a gtest failure if the restart failed).
int RunKillingOnce(ServerProcess& server, int port, int kill_at, Agent& a, Agent& b);

// Swarm "swarm" on `port` is FINISHED with the in-process runner's g: RunSwarm over
// `experts` under the synthetic utility with `options` (expert_ids are filled here).
// Returns the runner's g (empty, with a gtest failure, if the status or the run failed).
std::vector<float> ExpectFinishedAsTheRunner(int port,
                                             const std::vector<std::vector<float>>& experts,
                                             SyntheticEvaluator& eval, RunnerOptions options);

}  // namespace wxp::proc

#endif  // WXP_TESTS_TESTING_SWARM_DRIVER_H_
