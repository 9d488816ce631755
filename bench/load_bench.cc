// B3 (SPEC 9): many simulated agents against one wxp-server process (ASYNC swarm, small
// adapters): durable reports per second, Report latency p50/p99, and the server's peak
// memory at several pool sizes. Each simulated agent does what wxp-agent does per
// iteration (GetTargets, fetch g / g_w when they change, move, Report, upload when asked),
// with the synthetic utility; only Report calls are timed.
//
//   bazel run //bench:load_bench -- [--particles=10,100,1000] [--seconds=10] [--threads=16]
//   bazel run //bench:load_bench -- --store=postgres --replicas=1,2,3 --swarms=6
//
// With --store=postgres the run starts its own PostgreSQL server (as the tests do) and, per
// replica count, that many wxp-server replicas sharing it and one blob directory (SPEC 6.1);
// the agents know every replica's address and follow redirects to a swarm's leader.
//
// As a soak test (SPEC 10, the load test): --interval=N prints every N seconds the reports/s,
// Report p50/p99, the server's RSS and open file descriptors of that interval; --check makes
// the run fail (exit 1) on any error, or if RSS or descriptors grew between the first and the
// last interval by more than the tolerances. //tests:load_soak_test runs a short one.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/net/blob_transfer.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/backoff.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/swarm_move.h"
#include "common/synthetic.h"
#include "google/protobuf/text_format.h"
#include "server/db/postgres.h"
#include "server/store/testing/postgres_server.h"
#include "tests/testing/processes.h"

ABSL_FLAG(std::vector<std::string>, particles, std::vector<std::string>({"10", "100", "1000"}),
          "pool sizes to measure");
ABSL_FLAG(int, seconds, 10, "measured seconds per pool size");
ABSL_FLAG(int, threads, 16, "simulated agents (one thread each)");
ABSL_FLAG(int, params, 256, "parameters per adapter");
ABSL_FLAG(std::string, data_dir, "/tmp/wxp-load-bench", "server data directory (on disk)");
ABSL_FLAG(int, interval, 0, "seconds between progress lines (0: one line per pool size)");
ABSL_FLAG(bool, check, false,
          "exit 1 on any failed call, or on server RSS / fd growth between the first and the "
          "last interval beyond the tolerances");
ABSL_FLAG(double, max_rss_growth_mib, 24, "--check: tolerated server RSS growth");
ABSL_FLAG(int, max_fd_growth, 8, "--check: tolerated growth of the server's open descriptors");
ABSL_FLAG(std::string, store, "sqlite",
          "sqlite: one server, state in --data_dir; postgres: a PostgreSQL server started by "
          "this run and --replicas wxp-server replicas on it");
ABSL_FLAG(std::vector<std::string>, replicas, std::vector<std::string>({"1"}),
          "--store=postgres: replica counts to measure");
ABSL_FLAG(int, swarms, 1, "swarms (each of --particles particles) the agents are spread over");

namespace {
namespace fs = std::filesystem;
using wxp::client::Connection;

wxp::Schema BenchSchema(int n) { return wxp::Schema({{"m.lora_A.weight", wxp::DType::kF32, {n}}}); }

std::string Serialize(const std::vector<float>& v) {
  wxp::Adapter a;
  a.schema = BenchSchema(static_cast<int>(v.size()));
  a.values = v;
  return *wxp::SerializeAdapter(a);
}

std::vector<float> Parse(const std::string& bytes) {
  return wxp::AdapterFromSafetensors(*wxp::SafetensorsFile::FromBytes(bytes)).values;
}

// `addresses`: host:port, or several comma-separated (replicas).
std::unique_ptr<Connection> Connect(const std::string& addresses, const std::string& name,
                                    wxp::Role role) {
  wxp::client::ConnectionOptions o;
  o.server_address = addresses;
  o.plaintext = true;
  o.identity = name;
  o.role = role;
  o.own_connection = true;  // as separate agent processes would have
  return *Connection::Open(o, absl::Now());
}

// One call through `c` (an RPC on c.agent(), taken inside `call`), following the redirect to
// a swarm's leading replica up to 3 times, as wxp-agent does.
grpc::Status Call(Connection& c, const std::function<grpc::Status()>& call) {
  grpc::Status s = call();
  for (int i = 0; i < 3 && !s.ok() && c.Failover(wxp::FromGrpc(s)); ++i) s = call();
  return s;
}

// Runs `call` up to 5 times while it fails with a retryable code (common/retry.h; e.g. a
// connect refused while 200 connections open at once), backing off from 100 ms, counting
// each repeat in `retries` so it is printed, not hidden. Only for idempotent calls.
absl::Status Retried(const std::function<absl::Status()>& call, std::atomic<long>& retries) {
  wxp::RetryOptions r;
  // 200 agents connect and upload at once; under ASan on a busy machine five attempts over
  // ~5 s were not enough for a few of them (the stream limit answers UNAVAILABLE). Setup is
  // not what the benchmark measures: give it ~45 s.
  r.max_attempts = 10;
  r.backoff.initial = absl::Milliseconds(100);
  r.backoff.max = absl::Seconds(5);
  r.backoff.seed = static_cast<uint64_t>(retries.load()) + 1;
  r.on_retry = [&retries](int, absl::Duration, const absl::Status&) { ++retries; };
  return wxp::RetryWithBackoff(r, call);
}

// With `retries`, an upload that fails retryably is retried (see Retried).
bool Upload(Connection& c, const std::string& bytes, const std::string& dir,
            const std::string& swarm, std::atomic<long>* retries = nullptr) {
  const std::string id = wxp::Sha256Hex(bytes);
  const std::string path = dir + "/" + id;
  std::ofstream(path, std::ios::binary) << bytes;
  auto upload = [&] {
    absl::Status s = wxp::client::UploadFile(c, path, id, swarm).status();
    if (!s.ok() && c.Failover(s)) s = wxp::client::UploadFile(c, path, id, swarm).status();
    return s;
  };
  const absl::Status st = retries ? Retried(upload, *retries) : upload();
  fs::remove(path);
  if (!st.ok()) std::cerr << "upload of " << id << ": " << st << "\n";
  return st.ok();
}

std::string Download(Connection& c, const std::string& id, const std::string& dir) {
  const std::string path = dir + "/" + id;
  if (!wxp::client::DownloadToFile(c, id, path).ok()) return "";
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(path);
  return s;
}

// A /proc/<pid>/status field in KiB (VmHWM: peak, VmRSS: current).
long StatusKib(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

// CPU seconds (user + system) the process has used so far; -1 if unreadable.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int OpenFds(pid_t pid) {
  std::error_code ec;
  int n = 0;
  for (auto it = fs::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

// One interval of the measured phase.
struct Interval {
  double end_s = 0;  // since the measured phase began
  long reports = 0;
  double seconds = 0;
  double p50_ms = 0, p99_ms = 0;
  long errors = 0;  // failed calls in the interval
  long rss_kib = 0;
  int fds = 0;
};

struct Figures {
  long reports = 0;
  double seconds = 0;
  double p50_ms = 0, p99_ms = 0;
  long errors = 0;
  long peak_kib = 0;
  // CPU the server used during the measured phase. On a machine shared with other work the
  // rate says as much about the cores this run was given as about the server; this says
  // what each report cost.
  double server_cpu_s = 0;
  // CPU of this process (the simulated agents) in the same phase: on a machine where they
  // share the cores with the server, the two together bound the rate.
  double agents_cpu_s = 0;
  std::vector<Interval> intervals;
};

// p50 and p99 of `ms` (sorted in place).
std::pair<double, double> Percentiles(std::vector<double>& ms) {
  if (ms.empty()) return {0, 0};
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

// The servers of one measurement: one with SQLite, or replicas on a fresh PostgreSQL
// database of `pg`.
struct Servers {
  std::vector<std::unique_ptr<wxp::proc::ServerProcess>> all;
  std::string addresses;  // comma-separated
};

Servers StartServers(const std::string& data, int replicas,
                     wxp::store::testing::PostgresServer* pg) {
  Servers s;
  std::vector<std::string> flags = {"--plaintext"};
  if (pg != nullptr) {
    const std::string db = absl::StrCat("b3_", fs::path(data).filename().string());
    auto admin = wxp::db::pg::Connection::Open(pg->ConnectionString());
    if (!admin.ok() || !(*admin)->Execute("DROP DATABASE IF EXISTS " + db).ok() ||
        !(*admin)->Execute("CREATE DATABASE " + db).ok()) {
      std::cerr << "cannot create database " << db << "\n";
      std::exit(1);
    }
    flags.push_back("--store=" + pg->Uri(db));
    flags.push_back("--blob_dir=" + data + "/blobs");
  }
  std::vector<std::string> addresses;
  for (int i = 0; i < replicas; ++i) {
    std::vector<std::string> f = flags;
    int port = 0;
    if (pg != nullptr) {
      port = wxp::proc::FreeLoopbackPort();
      f.push_back(absl::StrCat("--replica_id=r", i));
      f.push_back(absl::StrCat("--advertise_address=127.0.0.1:", port));
    }
    s.all.push_back(std::make_unique<wxp::proc::ServerProcess>(
        pg != nullptr ? absl::StrCat(data, "/replica-", i) : data, f, port));
    if (s.all.back()->Start() <= 0) {
      std::cerr << "server did not start: " << wxp::proc::Tail(s.all.back()->log_path()) << "\n";
      std::exit(1);
    }
    addresses.push_back(s.all.back()->address());
  }
  s.addresses = absl::StrJoin(addresses, ",");
  return s;
}

// `interval_s` <= 0: the whole measured phase is one interval. `on_interval` sees each.
// `swarms` swarms of `particles` each; agent t works for swarm t % swarms.
Figures Measure(int particles, int swarms, int threads, int dim, int seconds, int interval_s,
                const std::string& root, int replicas, wxp::store::testing::PostgresServer* pg,
                const std::function<void(const Interval&)>& on_interval) {
  const std::string data = absl::StrCat(root, "/r", replicas, "p", particles);
  fs::remove_all(data);
  Servers servers = StartServers(data, replicas, pg);
  wxp::proc::ServerProcess& server = *servers.all.front();  // RSS and fds of intervals
  threads = std::min(threads, particles * swarms);
  // Every simulated agent contributes one expert (a join needs at least one).
  const int experts = threads;
  const auto swarm_of = [swarms](int t) {
    return swarms == 1 ? std::string("load") : absl::StrCat("load-", t % swarms);
  };
  const int per_swarm = (threads + swarms - 1) / swarms;  // agents (and experts) of swarm 0
  auto admin = Connect(servers.addresses, "ops", wxp::Role::kAdmin);
  for (int i = 0; i < swarms; ++i) {
    const int members = threads / swarms + (i < threads % swarms ? 1 : 0);
    wxp::v1::CreateSwarmRequest req;
    google::protobuf::TextFormat::ParseFromString(
        absl::StrCat("spec { name: '", swarm_of(i),
                     "' mode: ASYNC upload_policy: ON_DEMAND min_experts: ", members,
                     " utility { name: 'neg_rms_distance' weight: 1 } hyperparameters { ",
                     "pool_size: ", particles,
                     " max_iterations: 100000 patience: 100000 seed: 1 } }"),
        &req);
    wxp::v1::CreateSwarmResponse created;
    grpc::Status cs = admin->admin().CreateSwarm(admin->NewContext().get(), req, &created);
    if (!cs.ok()) {
      std::cerr << "CreateSwarm: " << cs.error_message() << "\n";
      std::exit(1);
    }
  }
  const auto expert_vectors = wxp::MakeRandomExperts(experts, dim, 3);
  const std::vector<float> optimum = wxp::MakeRandomExperts(1, dim, 4)[0];
  const int capacity = std::min(64, (particles + per_swarm - 1) / per_swarm + 1);

  std::atomic<bool> stop{false}, measuring{false};
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<long> errors{0};
  std::atomic<long> join_retries{0};  // joins and expert uploads retried (see Retried)
  std::atomic<int> joined{0};
  // Counts a failed call; the first few say why on stderr.
  const auto fail = [&errors](const std::string& why) {
    if (++errors <= 5) std::cerr << why << "\n";
  };
  std::vector<std::thread> agents;
  for (int t = 0; t < threads; ++t) {
    agents.emplace_back([&, t] {
      const std::string name = absl::StrCat("agent-", t);
      const std::string scratch = absl::StrCat(data, "-scratch-", t);
      fs::create_directories(scratch);
      const std::string swarm = swarm_of(t);
      auto c = Connect(servers.addresses, name, wxp::Role::kAgent);
      // 200 channels connecting at once: some first attempts are refused. Waiting for READY
      // (gRPC reconnects with backoff) keeps the start from counting those as failed calls.
      c->channel()->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
      wxp::v1::JoinRequest j;
      j.set_swarm(swarm);
      j.set_capacity(capacity);
      if (t < experts) {
        const std::string bytes = Serialize(expert_vectors[t]);
        if (!Upload(*c, bytes, scratch, swarm, &join_retries)) ++errors;
        j.add_expert_blob_ids(wxp::Sha256Hex(bytes));
      }
      // Experts join first, so the pool is built with every agent known.
      while (t >= experts && joined.load() < experts) absl::SleepFor(absl::Milliseconds(5));
      // Like wxp-agent, retry a join that never reached the server: one lost expert would
      // leave the pool unbuilt.
      wxp::v1::JoinResponse jr;
      const absl::Status js = Retried(
          [&] {
            return wxp::FromGrpc(
                Call(*c, [&] { return c->agent().Join(c->NewContext().get(), j, &jr); }));
          },
          join_retries);
      if (!js.ok() && t < experts) {
        std::cerr << name << " join: " << js.message() << "\n";
        ++errors;
      }
      ++joined;
      struct P {
        std::vector<float> x, v, p;
        int iteration = 0;
      };
      std::map<int, P> mine;
      // Shared, so a position fetched first (g) stays alive when fetching the next one (g_w)
      // empties the cache.
      using Position = std::shared_ptr<const std::vector<float>>;
      std::map<std::string, Position> cache;
      auto fetch = [&](const std::string& id) -> Position {
        auto it = cache.find(id);
        if (it != cache.end()) return it->second;
        std::string bytes = Download(*c, id, scratch);
        if (bytes.empty()) {
          fail("download of " + id + " failed");
          return nullptr;
        }
        if (cache.size() > 8) cache.clear();
        return cache[id] = std::make_shared<const std::vector<float>>(Parse(bytes));
      };
      auto report = [&](int id, int k, const std::vector<float>& x) -> bool {
        const std::string bytes = Serialize(x);
        wxp::v1::ReportRequest r;
        r.set_swarm(swarm);
        r.set_particle_id(id);
        r.set_iteration(k);
        r.set_position_blob_id(wxp::Sha256Hex(bytes));
        (*r.mutable_scores())["neg_rms_distance"] = wxp::NegativeRmsDistance(x, optimum);
        wxp::v1::ReportResponse resp;
        const absl::Time start = absl::Now();
        grpc::Status s =
            Call(*c, [&] { return c->agent().Report(c->NewContext().get(), r, &resp); });
        const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
        if (!s.ok()) {
          fail("Report: " + s.error_message());
          return false;
        }
        if (measuring.load()) {
          std::lock_guard<std::mutex> l(mu);
          latencies.push_back(ms);
        }
        if (resp.new_personal_best()) mine[id].p = x;
        if (resp.upload_requested() && !Upload(*c, bytes, scratch, swarm)) ++errors;
        return true;
      };
      wxp::v1::GetAssignmentRequest ar;
      ar.set_swarm(swarm);
      for (;;) {
        wxp::v1::GetAssignmentResponse a;
        if (!Call(*c, [&] {
               return c->agent().GetAssignment(c->NewContext().get(), ar, &a);
             }).ok()) {
          ++errors;
          return;
        }
        if (stop) return;
        if (a.status() == wxp::v1::GetAssignmentResponse::ASSIGNED) {
          for (const auto& pa : a.particles()) {
            P p;
            const Position x0 = fetch(pa.initial_position_blob_id());
            if (x0 == nullptr) return;
            p.x = p.p = *x0;
            p.v.assign(dim, 0.0f);
            mine[pa.particle_id()] = p;
          }
          break;
        }
        absl::SleepFor(absl::Milliseconds(50));
      }
      for (auto& [id, p] : mine) report(id, 0, p.x);
      while (!stop.load()) {
        bool any = false;
        for (auto& [id, p] : mine) {
          wxp::v1::GetTargetsRequest tr;
          tr.set_swarm(swarm);
          tr.set_particle_id(id);
          tr.set_iteration(p.iteration + 1);
          wxp::v1::GetTargetsResponse t;
          if (grpc::Status s =
                  Call(*c, [&] { return c->agent().GetTargets(c->NewContext().get(), tr, &t); });
              !s.ok()) {
            fail("GetTargets: " + s.error_message());
            continue;
          }
          if (t.status() != wxp::v1::GetTargetsResponse::READY) continue;
          const Position g = fetch(t.global_best().blob_id());
          const Position gw = fetch(t.global_worst().blob_id());
          if (g == nullptr || gw == nullptr) continue;
          std::vector<float> x = p.x, v = p.v;
          if (t.restart()) wxp::RestartParticle(x.data(), v.data(), p.p.data(), dim);
          const auto& k = t.coefficients();
          wxp::MoveParticle(
              {float(k.a()), float(k.b()), float(k.c()), float(k.d()), float(k.step())}, x.data(),
              v.data(), p.p.data(), g->data(), gw->data(), dim);
          if (report(id, t.iteration(), x)) {
            p.x = x;
            p.v = v;
            p.iteration = t.iteration();
            any = true;
          }
        }
        if (!any) absl::SleepFor(absl::Milliseconds(5));
      }
      fs::remove_all(scratch);
    });
  }
  absl::SleepFor(absl::Seconds(2));  // joins, pool, initial reports
  const long errors_before = errors.load();
  if (errors_before > 0) std::cerr << errors_before << " failed calls while starting\n";
  if (join_retries > 0)
    std::cerr << join_retries << " joins/uploads retried after a retryable failure\n";
  measuring = true;
  Figures f;
  const auto servers_cpu = [&servers] {
    double sum = 0;
    for (const auto& s : servers.all) sum += CpuSeconds(s->child().pid());
    return sum;
  };
  const double cpu_before = servers_cpu();
  const double agents_cpu_before = CpuSeconds(getpid());
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(seconds);
  const absl::Duration step = interval_s > 0 ? absl::Seconds(interval_s) : absl::Seconds(seconds);
  long errors_seen = 0;
  std::vector<double> all;
  for (absl::Time t = start; t < end;) {
    const absl::Time next = std::min(end, t + step);
    absl::SleepFor(next - absl::Now());
    std::vector<double> batch;
    {
      std::lock_guard<std::mutex> l(mu);
      batch.swap(latencies);
    }
    const absl::Time now = absl::Now();
    Interval iv;
    iv.end_s = absl::ToDoubleSeconds(now - start);
    iv.seconds = absl::ToDoubleSeconds(now - t);
    iv.reports = static_cast<long>(batch.size());
    const long e = errors.load();
    iv.errors = e - errors_seen;
    errors_seen = e;
    iv.rss_kib = StatusKib(server.child().pid(), "VmRSS");
    iv.fds = OpenFds(server.child().pid());
    all.insert(all.end(), batch.begin(), batch.end());
    std::tie(iv.p50_ms, iv.p99_ms) = Percentiles(batch);
    f.intervals.push_back(iv);
    if (on_interval) on_interval(iv);
    t = now;
  }
  measuring = false;
  f.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  f.server_cpu_s = servers_cpu() - cpu_before;
  f.agents_cpu_s = CpuSeconds(getpid()) - agents_cpu_before;
  for (const auto& s : servers.all) {
    f.peak_kib = std::max(f.peak_kib, StatusKib(s->child().pid(), "VmHWM"));
  }
  stop = true;
  for (auto& th : agents) th.join();
  for (const auto& s : servers.all) s->Kill(SIGTERM);
  f.reports = static_cast<long>(all.size());
  std::tie(f.p50_ms, f.p99_ms) = Percentiles(all);
  f.errors = errors.load();
  fs::remove_all(data);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // The simulated agents run as wxp-agent does: without Debian absl's per-acquisition
  // lock-order check (see wxp_agent_main.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string root = absl::GetFlag(FLAGS_data_dir);
  fs::create_directories(root);
  const int interval = absl::GetFlag(FLAGS_interval);
  const bool postgres = absl::GetFlag(FLAGS_store) == "postgres";
  if (!postgres && absl::GetFlag(FLAGS_store) != "sqlite") {
    std::cerr << "--store is sqlite or postgres\n";
    return 2;
  }
  std::unique_ptr<wxp::store::testing::PostgresServer> pg;
  if (postgres) {
    auto started = wxp::store::testing::PostgresServer::Start();
    if (!started.ok()) {
      std::cerr << "PostgreSQL: " << started.status() << "\n";
      return 1;
    }
    pg = *std::move(started);
  }
  const int swarms = std::max(1, absl::GetFlag(FLAGS_swarms));
  std::cout << absl::StrFormat(
      "B3 load: ASYNC, %d swarm(s), %d simulated agents, %d-parameter adapters, %d s per size, "
      "%d cores, state in %s\n",
      swarms, absl::GetFlag(FLAGS_threads), absl::GetFlag(FLAGS_params),
      absl::GetFlag(FLAGS_seconds), static_cast<int>(std::thread::hardware_concurrency()),
      postgres ? "PostgreSQL (server peak: the largest replica's)" : "SQLite");
  if (interval <= 0) {
    std::cout << absl::StrFormat(
        "%8s %10s %12s %10s %10s %14s %8s %16s %16s %12s   targets: >=5000/s, p99<50ms, flat "
        "memory\n",
        "replicas", "particles", "reports/s", "p50 ms", "p99 ms", "server peak MiB", "errors",
        "server CPU ms/rep", "agents CPU ms/rep", "CPU bound/s");
  }
  bool failed = false;
  std::vector<std::pair<int, int>> runs;  // (replicas, particles)
  for (const std::string& r :
       postgres ? absl::GetFlag(FLAGS_replicas) : std::vector<std::string>{"1"}) {
    for (const std::string& p : absl::GetFlag(FLAGS_particles)) {
      runs.emplace_back(std::stoi(r), std::stoi(p));
    }
  }
  for (const auto& [replicas, n] : runs) {
    if (interval > 0) {
      std::cout << absl::StrFormat(
                       "particles %d, a line every %d s:\n%8s %10s %8s %8s %12s %6s %7s\n", n,
                       interval, "t s", "reports/s", "p50 ms", "p99 ms", "server RSS MiB", "fds",
                       "errors")
                << std::flush;
    }
    Figures f = Measure(
        n, swarms, absl::GetFlag(FLAGS_threads), absl::GetFlag(FLAGS_params),
        absl::GetFlag(FLAGS_seconds), interval, root, replicas, pg.get(), [&](const Interval& iv) {
          if (interval <= 0) return;
          std::cout << absl::StrFormat("%8.0f %10.0f %8.2f %8.2f %12.1f %6d %7d\n", iv.end_s,
                                       iv.reports / iv.seconds, iv.p50_ms, iv.p99_ms,
                                       iv.rss_kib / 1024.0, iv.fds, iv.errors)
                    << std::flush;
        });
    if (interval <= 0) {
      // What the measured CPU per report allows on this machine's cores, were nothing else
      // in the way (no waiting on fsync, locks or the network).
      const double per_report_s = f.reports > 0 ? (f.server_cpu_s + f.agents_cpu_s) / f.reports : 0;
      std::cout << absl::StrFormat(
                       "%8d %10d %12.0f %10.2f %10.2f %14.1f %8d %16.3f %16.3f %12.0f\n", replicas,
                       n, f.reports / f.seconds, f.p50_ms, f.p99_ms, f.peak_kib / 1024.0, f.errors,
                       f.reports > 0 ? 1e3 * f.server_cpu_s / f.reports : 0,
                       f.reports > 0 ? 1e3 * f.agents_cpu_s / f.reports : 0,
                       per_report_s > 0 ? std::thread::hardware_concurrency() / per_report_s : 0)
                << std::flush;
    } else {
      std::cout << absl::StrFormat(
                       "total: %ld reports in %.0f s (%.0f/s), p50 %.2f ms, p99 %.2f ms, server "
                       "peak %.1f MiB, %ld errors\n",
                       f.reports, f.seconds, f.reports / f.seconds, f.p50_ms, f.p99_ms,
                       f.peak_kib / 1024.0, f.errors)
                << std::flush;
    }
    if (!absl::GetFlag(FLAGS_check)) continue;
    // Growth is judged between the first and the last interval: the first already holds
    // the pool, the connections and SQLite's page cache, so what grows after it leaks.
    const Interval& first = f.intervals.front();
    const Interval& last = f.intervals.back();
    const double rss_growth = (last.rss_kib - first.rss_kib) / 1024.0;
    const int fd_growth = last.fds - first.fds;
    if (f.errors > 0) {
      std::cout << "FAIL: " << f.errors << " failed calls\n";
      failed = true;
    }
    if (f.reports == 0) {
      std::cout << "FAIL: no report was acknowledged\n";
      failed = true;
    }
    if (first.rss_kib < 0 || first.fds < 0) {
      std::cout << "FAIL: cannot read the server's /proc entries\n";
      failed = true;
    }
    if (rss_growth > absl::GetFlag(FLAGS_max_rss_growth_mib)) {
      std::cout << absl::StrFormat("FAIL: server RSS grew by %.1f MiB (tolerance %.1f)\n",
                                   rss_growth, absl::GetFlag(FLAGS_max_rss_growth_mib));
      failed = true;
    }
    if (fd_growth > absl::GetFlag(FLAGS_max_fd_growth)) {
      std::cout << absl::StrFormat("FAIL: server open descriptors grew by %d (tolerance %d)\n",
                                   fd_growth, absl::GetFlag(FLAGS_max_fd_growth));
      failed = true;
    }
    std::cout << absl::StrFormat("growth first->last interval: RSS %+.1f MiB, fds %+d\n",
                                 rss_growth, fd_growth);
  }
  if (absl::GetFlag(FLAGS_check)) std::cout << (failed ? "FAILED\n" : "PASSED\n");
  return failed ? 1 : 0;
}
