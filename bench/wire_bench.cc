// Bytes on the wire per particle-iteration (SPEC 4.3, issue 13): the real wxp-server and
// three real wxp-agent processes (synthetic evaluator) run a SYNC swarm in each particle
// space, and a counting TCP proxy between the agents and the server (bench/counting_proxy.h)
// counts every byte they exchange: HTTP/2 framing, gRPC, protobuf, blob streams. Admin
// calls (create, status polling) go to the server directly and are not counted.
//
// The counters are split at the close of iteration 1 (the status is polled every
// --poll_ms): before it is setup (expert uploads, joins, assignment, every agent fetching
// the experts or the crossover children, the initial evaluation and iteration 1); after it
// the search, divided by (iterations after the split) x particles. WEIGHTS is the same-run
// reference: its positions are whole adapters, so its figure grows with the adapter.
//
//   bazel run //bench:wire_bench -- [--mib=1,64] [--iterations=6]
//       [--spaces=weights,lora_product,linear_ab] [--data_dir=/tmp/wxp-wire-bench] [--keep]
#include <sys/wait.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "bench/counting_proxy.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/lora_synthetic.h"
#include "common/particle_space.h"
#include "common/swarm_engine.h"
#include "common/synthetic.h"
#include "google/protobuf/text_format.h"
#include "tests/testing/processes.h"

ABSL_FLAG(std::vector<std::string>, mib, std::vector<std::string>({"1", "64"}),
          "expert sizes in MiB of F32 tensor data (2 square modules of width 4096, rank 16 "
          "per MiB)");
ABSL_FLAG(int, iterations, 6, "max_iterations of each swarm (>= 2; the search is 2..N)");
ABSL_FLAG(std::vector<std::string>, spaces,
          std::vector<std::string>({"weights", "lora_product", "linear_ab"}),
          "particle spaces: weights, lora_product, linear_ab");
ABSL_FLAG(int, pool_size, 6, "particles (3 agents host 2 each by default)");
ABSL_FLAG(std::string, data_dir, "/tmp/wxp-wire-bench", "experts, server data, agent work dirs");
ABSL_FLAG(bool, keep, false, "keep --data_dir afterwards (deleted otherwise)");
ABSL_FLAG(int, poll_ms, 20, "status polling period (the setup/search split's resolution)");
ABSL_FLAG(int, timeout_minutes, 10, "give up on one swarm after this long");

namespace {

namespace fs = std::filesystem;
using wxp::bench::CountingProxy;
using wxp::bench::WireCount;

constexpr int kExperts = 3;  // one per agent
constexpr int64_t kWidth = 4096, kRank = 16;
constexpr int kModulesPerMib = 2;
constexpr double kHeartbeatSeconds =
    30;  // wxp-agent's default heartbeat_interval  // (16x4096 + 4096x16) F32 = 512 KiB per module
const std::vector<float> kOptimumAlpha = {0.55f, 0.15f, 0.5f};

void Progress(const std::string& line) { std::cerr << "wire_bench: " << line << std::endl; }

std::string MiB(int64_t bytes) { return absl::StrFormat("%.1f MiB", bytes / 1048576.0); }

struct Space {
  std::string name;                  // flag spelling
  std::string spec;                  // SwarmSpec fields
  wxp::ParticleSpaceOptions decode;  // the layout the synthetic optimum must have
};

absl::StatusOr<Space> ParseSpace(const std::string& name) {
  using wxp::LoraDecoder;
  using wxp::SpaceKind;
  // WEIGHTS positions are expert-shaped, which is LINEAR_AB's decoded layout.
  if (name == "weights") {
    return Space{name, "", {SpaceKind::kExpertCoefficients, LoraDecoder::kLinearAB, 0, false}};
  }
  if (name == "lora_product") {
    return Space{name,
                 "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT",
                 {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false}};
  }
  if (name == "linear_ab") {
    return Space{name,
                 "space: EXPERT_COEFFICIENTS decoder: LINEAR_AB",
                 {SpaceKind::kExpertCoefficients, LoraDecoder::kLinearAB, 0, false}};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--spaces: unknown space '", name, "' (weights, lora_product, linear_ab)"));
}

// The experts of one size, saved as PEFT directories.
struct ExpertSet {
  int mib = 0;
  std::vector<std::string> dirs;
  std::vector<wxp::Adapter> in_pool_order;
  int64_t tensor_bytes = 0, blob_bytes = 0;
};

absl::StatusOr<ExpertSet> MakeExperts(int mib, const std::string& dir) {
  ExpertSet set;
  set.mib = mib;
  Progress(absl::StrCat(mib, " MiB: making ", kExperts, " experts"));
  std::vector<wxp::Adapter> experts =
      wxp::MakeRandomLoraExperts(kExperts, mib * kModulesPerMib, kWidth, kRank, 1300 + mib);
  std::vector<std::string> ids;
  for (int i = 0; i < kExperts; ++i) {
    const std::string d = absl::StrCat(dir, "/expert", i);
    if (absl::Status s = wxp::SaveAdapterDir(experts[i], d); !s.ok()) return s;
    auto id = wxp::BlobId(experts[i]);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
    set.dirs.push_back(d);
  }
  set.tensor_bytes = experts[0].schema.total_params() * 4;
  set.blob_bytes = static_cast<int64_t>(fs::file_size(set.dirs[0] + "/" + wxp::kPeftWeightsFile));
  for (int i : wxp::PoolOrder(ids)) set.in_pool_order.push_back(experts[i]);
  return set;
}

std::unique_ptr<wxp::client::Connection> Admin(const std::string& address) {
  wxp::client::ConnectionOptions o;
  o.server_address = address;
  o.plaintext = true;
  o.identity = "ops";
  o.role = wxp::Role::kAdmin;
  o.rpc_deadline = absl::Seconds(30);
  return *wxp::client::Connection::Open(o, absl::Now());
}

struct RunResult {
  WireCount setup, search, whole;
  WireCount boundary_error;  // bytes the split may have put on the wrong side
  int particles = 0, search_iterations = 0, iterations = 0;
  double seconds = 0;
  double search_seconds = 0;  // from the split to the end
};

// One swarm in `space` over `experts`, on a fresh server; agents talk through the proxy.
absl::StatusOr<RunResult> RunSwarm(const ExpertSet& experts, const Space& space,
                                   const std::string& root) {
  fs::create_directories(root);
  auto pspace = wxp::ParticleSpace::Create(experts.in_pool_order, space.decode);
  if (!pspace.ok()) return pspace.status();
  auto optimum = (*pspace)->Decode(kOptimumAlpha);
  if (!optimum.ok()) return optimum.status();
  const std::string optimum_path = root + "/optimum.safetensors";
  if (absl::Status s = wxp::SaveSafetensors(*optimum, optimum_path); !s.ok()) return s;

  wxp::proc::ServerProcess server(root + "/server", {"--plaintext"});
  const int port = server.Start();
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("wxp-server did not start:\n", wxp::proc::Tail(server.log_path())));
  }
  auto proxy = CountingProxy::Start(port);
  if (!proxy.ok()) return proxy.status();
  auto admin = Admin(server.address());

  const int iterations = absl::GetFlag(FLAGS_iterations);
  wxp::v1::CreateSwarmRequest create;
  const std::string text = absl::StrCat(
      "spec { name: 'wire' min_experts: ", kExperts,
      " mode: SYNC round_deadline_seconds: 600 utility { name: '", wxp::kSyntheticComponent,
      "' weight: 1 } hyperparameters { seed: 7 max_iterations: ", iterations,
      " patience: ", iterations + 10, " pool_size: ", absl::GetFlag(FLAGS_pool_size), " } ",
      space.spec, " }");
  if (!google::protobuf::TextFormat::ParseFromString(text, &create)) {
    return absl::InternalError("bad swarm spec text: " + text);
  }
  wxp::v1::CreateSwarmResponse created;
  grpc::Status cs = admin->admin().CreateSwarm(admin->NewContext().get(), create, &created);
  if (!cs.ok()) return absl::InternalError("CreateSwarm: " + cs.error_message());

  const int capacity = (absl::GetFlag(FLAGS_pool_size) + kExperts - 1) / kExperts;
  std::vector<std::unique_ptr<wxp::proc::ChildProcess>> agents;
  std::vector<std::string> logs;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kExperts; ++i) {
    const std::string name = absl::StrCat("firm-", i);
    logs.push_back(absl::StrCat(root, "/", name, ".log"));
    agents.push_back(std::make_unique<wxp::proc::ChildProcess>());
    const std::vector<std::string> argv = {wxp::proc::Runfile("client/agent/wxp-agent"),
                                           absl::StrCat("--server=127.0.0.1:", (*proxy)->port()),
                                           "--swarm=wire",
                                           "--plaintext",
                                           "--identity=" + name,
                                           "--expert=" + experts.dirs[i],
                                           absl::StrCat("--capacity=", capacity),
                                           absl::StrCat("--work_dir=", root, "/", name),
                                           "--synthetic_optimum=" + optimum_path};
    if (!agents.back()->Start(argv, logs.back())) {
      return absl::InternalError("could not start wxp-agent " + name);
    }
  }

  // Poll until every agent has exited; split the counters at the first status showing
  // iteration >= 1 closed. That iteration closed after the previous poll was sent, so the
  // true split lies between the counters read before the previous poll and after this one.
  RunResult r;
  bool split = false;
  int split_iteration = 0, last_iteration = -1;
  WireCount before_previous = (*proxy)->Count();
  const absl::Time give_up = start + absl::Minutes(absl::GetFlag(FLAGS_timeout_minutes));
  while (true) {
    const WireCount before = (*proxy)->Count();
    wxp::v1::GetSwarmStatusRequest sreq;
    sreq.set_swarm("wire");
    wxp::v1::SwarmStatus status;
    grpc::Status ss = admin->admin().GetSwarmStatus(admin->NewContext().get(), sreq, &status);
    // A server busy hashing and syncing 64 MiB blobs has taken over 10 s to answer: a late
    // poll only widens the split's error bound (printed), so it is not a failure.
    const bool answered = ss.ok();
    if (!answered && ss.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
        ss.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return absl::InternalError("GetSwarmStatus: " + ss.error_message());
    }
    if (!answered) Progress("  status poll unanswered (" + ss.error_message() + "); polling on");
    if (answered && !split && status.iteration() >= 1) {
      split = true;
      split_iteration = status.iteration();
      r.setup = (*proxy)->Count();
      r.search_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      r.boundary_error = r.setup - before_previous;
    }
    if (answered && status.iteration() != last_iteration) {
      last_iteration = status.iteration();
      const WireCount c = (*proxy)->Count();
      Progress(absl::StrCat("  ", space.name, ": iteration ", last_iteration, "/", iterations,
                            " closed; so far up ", MiB(c.up.total), ", down ", MiB(c.down.total)));
    }
    if (answered) before_previous = before;
    bool running = false;
    for (int i = 0; i < kExperts; ++i) {
      if (agents[i]->Running()) {
        running = true;
        continue;
      }
      const int st = agents[i]->Wait(absl::ZeroDuration());
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        return absl::InternalError(absl::StrCat("wxp-agent firm-", i, " failed (status ", st,
                                                "):\n", wxp::proc::Tail(logs[i])));
      }
    }
    if (!running) break;
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("swarm not finished after ", absl::GetFlag(FLAGS_timeout_minutes),
                       " minutes; last agent log:\n", wxp::proc::Tail(logs.back())));
    }
    absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_poll_ms)));
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  r.search_seconds = r.seconds - r.search_seconds;
  r.whole = (*proxy)->Count();

  wxp::v1::GetSwarmStatusRequest sreq;
  sreq.set_swarm("wire");
  wxp::v1::SwarmStatus status;
  grpc::Status ss = admin->admin().GetSwarmStatus(admin->NewContext().get(), sreq, &status);
  if (!ss.ok()) return absl::InternalError("GetSwarmStatus: " + ss.error_message());
  if (status.state() != wxp::v1::FINISHED || status.iteration() != iterations) {
    return absl::InternalError(absl::StrCat("swarm ended in state ", status.state(),
                                            " at iteration ", status.iteration(), " (",
                                            status.termination_reason(), "), not at ", iterations));
  }
  if (!split || split_iteration >= iterations) {
    return absl::InternalError("the swarm finished before the poll saw iteration 1 close");
  }
  r.particles = status.particles();
  r.iterations = iterations;
  r.search_iterations = iterations - split_iteration;
  r.search = r.whole - r.setup;
  return r;
}

double PerPi(int64_t bytes, const RunResult& r) {
  return static_cast<double>(bytes) / (r.search_iterations * r.particles);
}

void PrintRow(const ExpertSet& e, const Space& space, const RunResult& r) {
  const double up = PerPi(r.search.up.total, r), down = PerPi(r.search.down.total, r);
  const double err = PerPi(r.boundary_error.up.total + r.boundary_error.down.total, r);
  const double whole = static_cast<double>(r.whole.up.total + r.whole.down.total) /
                       ((r.iterations + 1) * r.particles);
  std::cout << absl::StrFormat("%-6s %-13s %9.0f %9.0f %9.0f  %-5s %12d %12d %7.1f %9.0f %12.0f",
                               absl::StrCat(e.mib, "Mi"), space.name, up, down, up + down,
                               up + down < 1024 ? "yes" : "NO", r.setup.up.total,
                               r.setup.down.total, r.seconds, err, whole)
            << std::endl;
}

// Where the search bytes went, per particle-iteration, by HTTP/2 frame type.
void PrintBreakdown(const Space& space, const RunResult& r) {
  std::string parts;
  for (int k = 0; k < wxp::bench::kFrameKinds; ++k) {
    absl::StrAppendFormat(&parts, " %s %.0f/%.0f", wxp::bench::FrameKindName(k),
                          PerPi(r.search.up.frame_bytes[k], r),
                          PerPi(r.search.down.frame_bytes[k], r));
  }
  std::cout << absl::StrFormat(
                   "  %-13s up/down by frame:%s; calls %.2f, connections %d, "
                   "search window %d iterations x %d particles",
                   space.name, parts, PerPi(r.search.up.frames[wxp::bench::kHeaders], r),
                   r.whole.connections, r.search_iterations, r.particles)
            << std::endl;
  if (space.name == "weights") return;  // its calls include blob streams
  // The calls a coefficient particle-iteration needs are GetTargets (READY) and Report; the
  // rest depend on time, not on the adapter: each particle's final GetTargets (DONE), the
  // agents' heartbeats, and GetTargets answered WAIT while a SYNC round waits for its
  // slowest particle. Heartbeats are estimated from the window's length; WAIT is the rest.
  const double calls = PerPi(r.search.up.frames[wxp::bench::kHeaders], r);
  const double done = 1.0 / r.search_iterations;
  const double heartbeats =
      kExperts * (r.search_seconds / kHeartbeatSeconds) / (r.search_iterations * r.particles);
  std::cout << absl::StrFormat(
                   "  %-13s calls/pi %.2f = 2 (GetTargets READY + Report) + %.2f DONE + ~%.2f "
                   "heartbeats (%d agents every %.0f s over %.0f s) + ~%.2f WAIT polls; "
                   "%.0f B per call",
                   "", calls, done, heartbeats, kExperts, kHeartbeatSeconds, r.search_seconds,
                   calls - 2 - done - heartbeats,
                   PerPi(r.search.up.total + r.search.down.total, r) / calls)
            << std::endl;
}

absl::Status Main() {
  std::vector<int> sizes;
  for (const std::string& s : absl::GetFlag(FLAGS_mib)) {
    int mib = 0;
    if (!absl::SimpleAtoi(s, &mib) || mib < 1 || mib > 1024) {
      return absl::InvalidArgumentError("--mib: '" + s + "' is not a size in 1..1024");
    }
    sizes.push_back(mib);
  }
  std::vector<Space> spaces;
  for (const std::string& s : absl::GetFlag(FLAGS_spaces)) {
    auto space = ParseSpace(s);
    if (!space.ok()) return space.status();
    spaces.push_back(*space);
  }
  if (absl::GetFlag(FLAGS_iterations) < 2) {
    return absl::InvalidArgumentError("--iterations must be >= 2 (the search is 2..N)");
  }
  if (absl::GetFlag(FLAGS_pool_size) < kExperts) {
    return absl::InvalidArgumentError(absl::StrCat("--pool_size must be >= ", kExperts));
  }
  const std::string root = absl::GetFlag(FLAGS_data_dir);
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat("--data_dir ", root, ": ", ec.message()));

  std::cout << "B6 wire bytes per particle-iteration: real wxp-server and 3 wxp-agent processes "
               "(SYNC, synthetic evaluator), counted by a TCP proxy\n"
               "transport: plaintext gRPC on loopback (HTTP/2 counted from the first byte; no "
               "TLS)\n"
               "search = after iteration 1 closed to the end, per (iterations x particles); "
               "setup = before (uploads, joins, expert or crossover downloads, iterations 0-1)\n"
               "err = bytes/pi the split may misplace (polled every "
            << absl::GetFlag(FLAGS_poll_ms)
            << " ms); whole = all bytes / all particle-iterations incl. 0\n";
  for (int mib : sizes) {
    const std::string dir = absl::StrCat(root, "/mib", mib);
    auto experts = MakeExperts(mib, dir);
    if (!experts.ok()) return experts.status();
    std::cout << absl::StrFormat(
                     "\nexperts: %d x %d modules (A 16x4096, B 4096x16, F32): %d B of tensors "
                     "(%s), blob %d B\n",
                     kExperts, mib * kModulesPerMib, experts->tensor_bytes,
                     MiB(experts->tensor_bytes), experts->blob_bytes)
              << absl::StrFormat("%-6s %-13s %9s %9s %9s  %-5s %12s %12s %7s %9s %12s", "size",
                                 "space", "up/pi", "down/pi", "total/pi", "<1KB", "setup_up",
                                 "setup_down", "wall_s", "err/pi", "whole/pi")
              << std::endl;
    std::vector<std::pair<Space, RunResult>> done;
    for (const Space& space : spaces) {
      Progress(absl::StrCat(mib, " MiB: ", space.name, " swarm"));
      auto r = RunSwarm(*experts, space, absl::StrCat(dir, "/", space.name));
      if (!r.ok()) {
        return absl::Status(r.status().code(),
                            absl::StrCat(mib, " MiB ", space.name, ": ", r.status().message()));
      }
      PrintRow(*experts, space, *r);
      done.emplace_back(space, *r);
      if (!absl::GetFlag(FLAGS_keep)) fs::remove_all(absl::StrCat(dir, "/", space.name), ec);
    }
    for (const auto& [space, r] : done) PrintBreakdown(space, r);
  }
  if (!absl::GetFlag(FLAGS_keep)) fs::remove_all(root, ec);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Main();
  if (!s.ok()) {
    std::cerr << "wire_bench: " << s << std::endl;
    if (s.code() != absl::StatusCode::kInvalidArgument) {
      std::cerr << "wire_bench: logs and data kept in " << absl::GetFlag(FLAGS_data_dir)
                << std::endl;
    }
    return 1;
  }
  return 0;
}
