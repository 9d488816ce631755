// The world the request fuzzer plays in, and its input format. SPEC 5.4 says every request
// is checked before it touches state and a refused request changes nothing; the coordinator
// is where agents' and admins' requests are validated (the gRPC services only check the
// caller's role and translate), so the fuzzer drives it directly, without network, backed by
// the in-memory store and blobs.
//
// An input is a sequence of records, each
//   op (1 byte, mod kNumOps) | caller (1 byte, mod 4) | length (2 bytes LE) | payload
// where the payload is, for most ops, a serialized request message (a payload that does not
// parse skips the record). A blob id written as "@" plus one byte names the byte-th (mod n)
// blob of the world (experts, initial positions, prepared positions), so mutations reach
// real ids without guessing SHA-256 digests.
#ifndef WXP_SERVER_COORDINATOR_FUZZ_REQUEST_SEQUENCE_H_
#define WXP_SERVER_COORDINATOR_FUZZ_REQUEST_SEQUENCE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/message.h"
#include "server/coordinator/coordinator.h"
#include "server/store/memory_store.h"

namespace wxp::server::fuzz {

enum class Op : uint8_t {
  kJoin = 0,               // JoinRequest
  kGetAssignment = 1,      // GetAssignmentRequest
  kGetTargets = 2,         // GetTargetsRequest
  kReport = 3,             // ReportRequest
  kCreateSwarm = 4,        // SwarmSpec
  kSetUtilityWeights = 5,  // SetUtilityWeightsRequest
  kPause = 6,              // SwarmControlRequest
  kResume = 7,             // SwarmControlRequest
  kStop = 8,               // SwarmControlRequest
  kStoreBlob = 9,          // 1 byte: a prepared blob; otherwise the blob's bytes. Then
                           // OnBlobStored, as the end of an upload does.
  kTick = 10,              // 1 byte: advance the clock by 10 s times it, then Tick()
  kRead = 11,              // GetSwarmStatusRequest: every read-only view of that swarm
  kRestart = 12,           // (empty) a new coordinator over the same store and blobs
  kNumOps = 13,
};

// Callers, by the record's caller byte mod 4.
inline constexpr int kNumCallers = 4;
const Caller& CallerOf(int who);

// One record of the input format.
std::string Record(Op op, int who, absl::string_view payload);
std::string Record(Op op, int who, const google::protobuf::Message& request);

// A coordinator with three swarms, rebuilt for every input:
//   "s"  SYNC, pool of 3 from firm-a's and firm-b's experts, initial round reported: round 1
//        is open;
//   "a"  ASYNC, upload ALWAYS, pool of 2, initial round reported, max_iterations 3;
//   "p"  PENDING_EXPERTS (min_experts 3), firm-a's expert joined.
// Utility: "acc" (maximize, [0, 1], weight 1) and "ppl" (minimize, >= 1, weight 0.1).
class RequestWorld {
 public:
  static std::unique_ptr<RequestWorld> Create();

  // Runs every record of `input`, checking after each (WXP_FUZZ_CHECK, aborting on a
  // finding) that a refused request left the store and the coordinator's views unchanged,
  // and at the end that a restarted coordinator shows the same swarms.
  void Run(absl::string_view input);

  // Who owns particle `i` of `swarm` (as a caller index), for writing seeds.
  int OwnerOf(const std::string& swarm, int particle) const;
  // Number of prepared blobs an "@" id can name.
  size_t num_blobs() const { return ids_.size(); }

 private:
  RequestWorld() = default;
  void Setup();
  // The request's status; nullopt for an op that is not a request or a payload that
  // does not parse.
  std::optional<absl::Status> Step(Op op, int who, absl::string_view payload);
  std::string Resolve(const std::string& id) const;

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> c_;
  std::vector<std::string> ids_;       // "@k" targets
  std::vector<std::string> prepared_;  // bytes of blobs kStoreBlob can store
  std::map<std::pair<std::string, int>, int> owners_;
};

}  // namespace wxp::server::fuzz

#endif  // WXP_SERVER_COORDINATOR_FUZZ_REQUEST_SEQUENCE_H_
