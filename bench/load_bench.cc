// B3 (SPEC 9): many simulated agents against one wxp-server process (ASYNC swarm, small
// adapters): durable reports per second, Report latency p50/p99, and the server's peak
// memory at several pool sizes. Each simulated agent does what wxp-agent does per
// iteration (GetTargets, fetch g / g_w when they change, move, Report, upload when asked),
// with the synthetic utility; only Report calls are timed.
//
//   bazel run //bench:load_bench -- [--particles=10,100,1000] [--seconds=10] [--threads=16]
//
// As a soak test (SPEC 10, the load test): --interval=N prints every N seconds the reports/s,
// Report p50/p99, the server's RSS and open file descriptors of that interval; --check makes
// the run fail (exit 1) on any error, or if RSS or descriptors grew between the first and the
// last interval by more than the tolerances. //tests:load_soak_test runs a short one.
#include <signal.h>

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
#include <thread>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

std::unique_ptr<Connection> Connect(int port, const std::string& name, wxp::Role role) {
  wxp::client::ConnectionOptions o;
  o.server_address = absl::StrCat("127.0.0.1:", port);
  o.plaintext = true;
  o.identity = name;
  o.role = role;
  o.own_connection = true;  // as separate agent processes would have
  return *Connection::Open(o, absl::Now());
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
            std::atomic<long>* retries = nullptr) {
  const std::string id = wxp::Sha256Hex(bytes);
  const std::string path = dir + "/" + id;
  std::ofstream(path, std::ios::binary) << bytes;
  auto upload = [&] { return wxp::client::UploadFile(c, path, id, "load").status(); };
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
  std::vector<Interval> intervals;
};

// p50 and p99 of `ms` (sorted in place).
std::pair<double, double> Percentiles(std::vector<double>& ms) {
  if (ms.empty()) return {0, 0};
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

// `interval_s` <= 0: the whole measured phase is one interval. `on_interval` sees each.
Figures Measure(int particles, int threads, int dim, int seconds, int interval_s,
                const std::string& root, const std::function<void(const Interval&)>& on_interval) {
  const std::string data = absl::StrCat(root, "/p", particles);
  fs::remove_all(data);
  wxp::proc::ServerProcess server(data, {"--plaintext"});
  const int port = server.Start();
  if (port <= 0) {
    std::cerr << "server did not start: " << wxp::proc::Tail(server.log_path()) << "\n";
    std::exit(1);
  }
  threads = std::min(threads, particles);
  // Every simulated agent contributes one expert (a join needs at least one).
  const int experts = threads;
  auto admin = Connect(port, "ops", wxp::Role::kAdmin);
  wxp::v1::CreateSwarmRequest req;
  google::protobuf::TextFormat::ParseFromString(
      absl::StrCat(
          "spec { name: 'load' mode: ASYNC upload_policy: ON_DEMAND min_experts: ", experts,
          " utility { name: 'neg_rms_distance' weight: 1 } hyperparameters { ",
          "pool_size: ", particles, " max_iterations: 100000 patience: 100000 seed: 1 } }"),
      &req);
  wxp::v1::CreateSwarmResponse created;
  grpc::Status cs = admin->admin().CreateSwarm(admin->NewContext().get(), req, &created);
  if (!cs.ok()) {
    std::cerr << "CreateSwarm: " << cs.error_message() << "\n";
    std::exit(1);
  }
  const auto expert_vectors = wxp::MakeRandomExperts(experts, dim, 3);
  const std::vector<float> optimum = wxp::MakeRandomExperts(1, dim, 4)[0];
  const int capacity = std::min(64, (particles + threads - 1) / threads + 1);

  std::atomic<bool> stop{false}, measuring{false};
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<long> errors{0};
  std::atomic<long> join_retries{0};  // joins and expert uploads retried (see Retried)
  std::atomic<int> joined{0};
  std::vector<std::thread> agents;
  for (int t = 0; t < threads; ++t) {
    agents.emplace_back([&, t] {
      const std::string name = absl::StrCat("agent-", t);
      const std::string scratch = absl::StrCat(data, "-scratch-", t);
      fs::create_directories(scratch);
      auto c = Connect(port, name, wxp::Role::kAgent);
      // 200 channels connecting at once: some first attempts are refused. Waiting for READY
      // (gRPC reconnects with backoff) keeps the start from counting those as failed calls.
      c->channel()->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
      wxp::v1::JoinRequest j;
      j.set_swarm("load");
      j.set_capacity(capacity);
      if (t < experts) {
        const std::string bytes = Serialize(expert_vectors[t]);
        if (!Upload(*c, bytes, scratch, &join_retries)) ++errors;
        j.add_expert_blob_ids(wxp::Sha256Hex(bytes));
      }
      // Experts join first, so the pool is built with every agent known.
      while (t >= experts && joined.load() < experts) absl::SleepFor(absl::Milliseconds(5));
      // Like wxp-agent, retry a join that never reached the server: one lost expert would
      // leave the pool unbuilt.
      wxp::v1::JoinResponse jr;
      const absl::Status js =
          Retried([&] { return wxp::FromGrpc(c->agent().Join(c->NewContext().get(), j, &jr)); },
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
          ++errors;
          return nullptr;
        }
        if (cache.size() > 8) cache.clear();
        return cache[id] = std::make_shared<const std::vector<float>>(Parse(bytes));
      };
      auto report = [&](int id, int k, const std::vector<float>& x) -> bool {
        const std::string bytes = Serialize(x);
        wxp::v1::ReportRequest r;
        r.set_swarm("load");
        r.set_particle_id(id);
        r.set_iteration(k);
        r.set_position_blob_id(wxp::Sha256Hex(bytes));
        (*r.mutable_scores())["neg_rms_distance"] = wxp::NegativeRmsDistance(x, optimum);
        wxp::v1::ReportResponse resp;
        const absl::Time start = absl::Now();
        grpc::Status s = c->agent().Report(c->NewContext().get(), r, &resp);
        const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
        if (!s.ok()) {
          ++errors;
          return false;
        }
        if (measuring.load()) {
          std::lock_guard<std::mutex> l(mu);
          latencies.push_back(ms);
        }
        if (resp.new_personal_best()) mine[id].p = x;
        if (resp.upload_requested() && !Upload(*c, bytes, scratch)) ++errors;
        return true;
      };
      wxp::v1::GetAssignmentRequest ar;
      ar.set_swarm("load");
      for (;;) {
        wxp::v1::GetAssignmentResponse a;
        if (!c->agent().GetAssignment(c->NewContext().get(), ar, &a).ok()) {
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
          tr.set_swarm("load");
          tr.set_particle_id(id);
          tr.set_iteration(p.iteration + 1);
          wxp::v1::GetTargetsResponse t;
          if (!c->agent().GetTargets(c->NewContext().get(), tr, &t).ok()) {
            ++errors;
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
  f.peak_kib = StatusKib(server.child().pid(), "VmHWM");
  stop = true;
  for (auto& th : agents) th.join();
  server.Kill(SIGTERM);
  f.reports = static_cast<long>(all.size());
  std::tie(f.p50_ms, f.p99_ms) = Percentiles(all);
  f.errors = errors.load();
  fs::remove_all(data);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string root = absl::GetFlag(FLAGS_data_dir);
  fs::create_directories(root);
  const int interval = absl::GetFlag(FLAGS_interval);
  std::cout << absl::StrFormat(
      "B3 load: ASYNC swarm, %d simulated agents, %d-parameter adapters, %d s per size, %d "
      "cores\n",
      absl::GetFlag(FLAGS_threads), absl::GetFlag(FLAGS_params), absl::GetFlag(FLAGS_seconds),
      static_cast<int>(std::thread::hardware_concurrency()));
  if (interval <= 0) {
    std::cout << absl::StrFormat(
        "%10s %12s %10s %10s %14s %8s   targets: >=5000/s, p99<50ms, flat memory\n", "particles",
        "reports/s", "p50 ms", "p99 ms", "server peak MiB", "errors");
  }
  bool failed = false;
  for (const std::string& s : absl::GetFlag(FLAGS_particles)) {
    const int n = std::stoi(s);
    if (interval > 0) {
      std::cout << absl::StrFormat(
                       "particles %d, a line every %d s:\n%8s %10s %8s %8s %12s %6s %7s\n", n,
                       interval, "t s", "reports/s", "p50 ms", "p99 ms", "server RSS MiB", "fds",
                       "errors")
                << std::flush;
    }
    Figures f = Measure(n, absl::GetFlag(FLAGS_threads), absl::GetFlag(FLAGS_params),
                        absl::GetFlag(FLAGS_seconds), interval, root, [&](const Interval& iv) {
                          if (interval <= 0) return;
                          std::cout
                              << absl::StrFormat("%8.0f %10.0f %8.2f %8.2f %12.1f %6d %7d\n",
                                                 iv.end_s, iv.reports / iv.seconds, iv.p50_ms,
                                                 iv.p99_ms, iv.rss_kib / 1024.0, iv.fds, iv.errors)
                              << std::flush;
                        });
    if (interval <= 0) {
      std::cout << absl::StrFormat("%10d %12.0f %10.2f %10.2f %14.1f %8d\n", n,
                                   f.reports / f.seconds, f.p50_ms, f.p99_ms, f.peak_kib / 1024.0,
                                   f.errors)
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
