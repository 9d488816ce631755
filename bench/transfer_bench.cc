// B2 (SPEC 9): upload + download of one large blob through wxp-server over loopback, in
// plaintext and with mutual TLS, beside raw TCP over loopback measured in the same run.
//
// The server's side of an upload includes what makes it durable (SHA-256, fsync, rename):
// the figure a user sees. A second reference does only that work (reading, hashing, writing
// and syncing the blob) over raw TCP with no protocol, one thread per side; the CPU it takes,
// spread over every core, bounds any transfer with the product's guarantees that carries
// the bytes through user space. So each gRPC row says how far it is from raw TCP (the
// targets) and how much of that is the protocol.
// --data_dir picks where the blob store lives (default a tmpfs, so the figure is about the
// wire and the server, not this machine's disk).
//
//   bazel run //bench:transfer_bench -- [--mib=256] [--rounds=3] [--data_dir=/dev/shm/wxp-b2]
//   bazel run //bench:transfer_bench -- --memory --mib=1024 --data_dir=/tmp/wxp-b4   (B4)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/net/blob_transfer.h"
#include "client/net/connection.h"
#include "common/certs.h"
#include "common/sha256.h"
#include "server/app/credentials.h"
#include "server/app/wxp_server.h"
#include "tests/testing/processes.h"

ABSL_FLAG(int, mib, 256, "blob size, MiB");
ABSL_FLAG(int, rounds, 3, "B2: rounds of the four paths, interleaved; medians are printed");
ABSL_FLAG(std::string, data_dir, "/dev/shm/wxp-transfer-bench", "scratch directory");
ABSL_FLAG(bool, memory, false,
          "B4 instead: peak memory of a wxp-server process and of this client (the agent's "
          "transfer code) while the blob goes up and down (use --mib=1024)");

namespace {
namespace fs = std::filesystem;

// A listening loopback socket on an ephemeral port.
struct Loopback {
  int listener = -1;
  sockaddr_in addr{};

  Loopback() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(listener, 1);
    socklen_t len = sizeof addr;
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  }
  ~Loopback() { close(listener); }
  int Connect() const {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    return c;
  }
};

bool WriteAll(int fd, const char* data, size_t n) {
  for (size_t done = 0; done < n;) {
    const ssize_t w = write(fd, data + done, n - done);
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

double RawTcpSeconds(size_t bytes) {
  // Server: read everything, then send it back, as upload + download do.
  Loopback lo;
  std::thread server([&] {
    int s = accept(lo.listener, nullptr, nullptr);
    std::vector<char> buf(1 << 20);
    size_t got = 0;
    while (got < bytes) {
      ssize_t n = read(s, buf.data(), buf.size());
      if (n <= 0) break;
      got += n;
    }
    for (size_t sent = 0; sent < bytes;) {
      ssize_t n = write(s, buf.data(), std::min(buf.size(), bytes - sent));
      if (n <= 0) break;
      sent += n;
    }
    close(s);
  });
  const absl::Time start = absl::Now();
  int c = lo.Connect();
  std::vector<char> buf(1 << 20, 'x');
  for (size_t sent = 0; sent < bytes;) {
    ssize_t n = write(c, buf.data(), std::min(buf.size(), bytes - sent));
    if (n <= 0) break;
    sent += n;
  }
  for (size_t got = 0; got < bytes;) {
    ssize_t n = read(c, buf.data(), buf.size());
    if (n <= 0) break;
    got += n;
  }
  const double s = absl::ToDoubleSeconds(absl::Now() - start);
  close(c);
  server.join();
  return s;
}

struct Result {
  double up_s = 0, down_s = 0;
  double cpu_s = 0;  // of this process (client and server) during upload + download
};

// CPU time of this process so far. On a machine shared with other work, elapsed time says
// how long the transfer waited for a core as much as what it costs; CPU time says the cost.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Sends the file at `path` over `sock` in 1 MiB chunks (as UploadFile and the server's
// DownloadBlob read it).
bool SendFile(int sock, const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  std::vector<char> buf(1 << 20);
  bool ok = true;
  for (ssize_t n; ok && (n = read(fd, buf.data(), buf.size())) > 0;) {
    ok = WriteAll(sock, buf.data(), static_cast<size_t>(n));
  }
  close(fd);
  return ok;
}

// Receives `bytes` from `sock` into a new file at `path`, hashing each chunk as it arrives;
// with `sync`, makes the file durable before returning (as the server does before it
// acknowledges an upload). The hex digest, or "" on failure.
std::string ReceiveToFile(int sock, size_t bytes, const std::string& path, bool sync) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return "";
  wxp::Sha256Hasher hasher;
  std::vector<char> buf(1 << 20);
  size_t got = 0;
  while (got < bytes) {
    const ssize_t n = read(sock, buf.data(), std::min(buf.size(), bytes - got));
    if (n <= 0 || !WriteAll(fd, buf.data(), static_cast<size_t>(n))) break;
    hasher.Update(absl::string_view(buf.data(), static_cast<size_t>(n)));
    got += static_cast<size_t>(n);
  }
  const bool ok = got == bytes && (!sync || fdatasync(fd) == 0);
  close(fd);
  return ok ? hasher.FinalHex() : "";
}

// The work any stored, verified transfer of the blob must do, with no protocol at all: raw
// TCP, the sender reading the blob's file, the receiver hashing every byte and writing it to
// a file (the server's side also syncs it before its one-byte acknowledgement). Its CPU is
// what a protocol with the product's guarantees needs at least, if it carries the bytes
// through user space as any gRPC service does (sendfile could spare the sender's copy; gRPC
// cannot use it).
absl::StatusOr<Result> StoredRawTcp(const std::string& dir, const std::string& blob,
                                    const std::string& id, size_t bytes) {
  const std::string stored = dir + "/stored-raw", back = dir + "/downloaded-raw";
  Loopback lo;
  std::string server_digest;
  std::thread server([&] {
    int s = accept(lo.listener, nullptr, nullptr);
    server_digest = ReceiveToFile(s, bytes, stored, /*sync=*/true);
    const char ack = server_digest == id ? 1 : 0;
    if (WriteAll(s, &ack, 1) && ack == 1) {
      char wants = 0;
      if (read(s, &wants, 1) == 1) SendFile(s, stored);
    }
    close(s);
  });
  Result r;
  const double cpu_start = ProcessCpuSeconds();
  absl::Time t = absl::Now();
  int c = lo.Connect();
  char ack = 0;
  const bool sent = SendFile(c, blob) && read(c, &ack, 1) == 1 && ack == 1;
  r.up_s = absl::ToDoubleSeconds(absl::Now() - t);
  t = absl::Now();
  const char wants = 1;
  const std::string digest =
      sent && WriteAll(c, &wants, 1) ? ReceiveToFile(c, bytes, back, /*sync=*/false) : "";
  r.down_s = absl::ToDoubleSeconds(absl::Now() - t);
  r.cpu_s = ProcessCpuSeconds() - cpu_start;
  close(c);
  server.join();
  fs::remove(stored);
  fs::remove(back);
  if (!sent || digest != id) {
    return absl::InternalError("the stored raw TCP round did not get the blob back intact");
  }
  return r;
}

absl::StatusOr<Result> GrpcRound(bool tls, const std::string& dir, const std::string& blob,
                                 const std::string& id) {
  const std::string data = dir + (tls ? "/server-tls" : "/server-plain");
  fs::remove_all(data);
  wxp::server::WxpServer::Options so;
  so.listen = "127.0.0.1:0";
  so.data_dir = data;
  const std::string certs = dir + "/certs";
  const wxp::TlsFiles server_files{certs + "/server.crt", certs + "/server.key", certs + "/ca.crt"};
  if (auto s = wxp::server::UseSecurity(
          so, tls ? wxp::Security::MutualTls(server_files) : wxp::Security::Plaintext());
      !s.ok()) {
    return s;
  }
  auto server = wxp::server::WxpServer::Start(so);
  if (!server.ok()) return server.status();
  wxp::client::ConnectionOptions co;
  co.server_address = absl::StrFormat("127.0.0.1:%d", (*server)->port());
  co.plaintext = !tls;
  co.identity = "bench";
  co.role = wxp::Role::kAdmin;
  co.tls = {certs + "/bench.crt", certs + "/bench.key", certs + "/ca.crt"};
  auto conn = wxp::client::Connection::Open(co, absl::Now());
  if (!conn.ok()) return conn.status();
  Result r;
  const double cpu_start = ProcessCpuSeconds();
  absl::Time t = absl::Now();
  auto up = wxp::client::UploadFile(**conn, blob, id, "");
  if (!up.ok()) return up.status();
  r.up_s = absl::ToDoubleSeconds(absl::Now() - t);
  const std::string back = dir + "/downloaded";
  fs::remove(back);
  t = absl::Now();
  auto down = wxp::client::DownloadToFile(**conn, id, back);
  if (!down.ok()) return down.status();
  r.down_s = absl::ToDoubleSeconds(absl::Now() - t);
  r.cpu_s = ProcessCpuSeconds() - cpu_start;
  (*server)->Shutdown();
  fs::remove(back);
  fs::remove_all(data);
  return r;
}

long PeakRssKib(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// B4: the server as its own process (its memory is what is measured), this process as the
// client: wxp-agent moves blobs with exactly these two calls.
int MemoryBench(const std::string& dir, const std::string& blob, const std::string& id,
                size_t bytes) {
  wxp::proc::ServerProcess server(dir + "/server", {"--plaintext"});
  if (server.Start() <= 0) {
    std::cerr << "server did not start: " << wxp::proc::Tail(server.log_path()) << "\n";
    return 1;
  }
  wxp::client::ConnectionOptions co;
  co.server_address = server.address();
  co.plaintext = true;
  co.identity = "bench";
  co.role = wxp::Role::kAgent;
  auto conn = wxp::client::Connection::Open(co, absl::Now());
  const long client_before = PeakRssKib("self");
  auto up = wxp::client::UploadFile(**conn, blob, id, "");
  auto down = up.ok() ? wxp::client::DownloadToFile(**conn, id, dir + "/downloaded")
                      : absl::StatusOr<wxp::client::TransferResult>(up.status());
  if (!down.ok()) {
    std::cerr << down.status() << "\n";
    return 1;
  }
  const long server_peak = PeakRssKib(std::to_string(server.child().pid()));
  const long client_peak = PeakRssKib("self");
  server.Kill(SIGTERM);
  const double mib = bytes / double(1 << 20);
  const double target = 1.2 * mib + 64;
  std::cout << absl::StrFormat("B4 memory: %.0f MiB adapter up and down over loopback, %d cores\n",
                               mib, static_cast<int>(std::thread::hardware_concurrency()));
  std::cout << absl::StrFormat("%-28s %12s %14s\n", "process", "peak RSS MiB", "target MiB");
  std::cout << absl::StrFormat("%-28s %12.1f %14.0f\n", "wxp-server", server_peak / 1024.0, target);
  std::cout << absl::StrFormat("%-28s %12.1f %14.0f   (%.1f MiB before the transfer)\n",
                               "client (agent transfer code)", client_peak / 1024.0, target,
                               client_before / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // The in-process server and client run as wxp-server and wxp-agent do: without Debian
  // absl's per-acquisition lock-order check (see wxp_server_main.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const size_t bytes = static_cast<size_t>(absl::GetFlag(FLAGS_mib)) << 20;
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A blob of random bytes (the server stores any bytes; positions are checked only when
  // a swarm uses them).
  const std::string blob = dir + "/blob";
  {
    std::ofstream out(blob, std::ios::binary);
    std::mt19937_64 rng(1);
    std::vector<uint64_t> buf(1 << 17);
    for (size_t done = 0; done < bytes; done += buf.size() * 8) {
      for (auto& w : buf) w = rng();
      out.write(reinterpret_cast<const char*>(buf.data()), std::min(buf.size() * 8, bytes - done));
    }
  }
  const std::string id = *wxp::Sha256File(blob);
  if (absl::GetFlag(FLAGS_memory)) {
    int rc = MemoryBench(dir, blob, id, bytes);
    fs::remove_all(dir);
    return rc;
  }
  const std::string certs = dir + "/certs";
  if (!wxp::InitCa(certs).ok() ||
      !wxp::IssueCertificate(certs, {wxp::Role::kServer, "server"}, certs).ok() ||
      !wxp::IssueCertificate(certs, {wxp::Role::kAdmin, "bench"}, certs).ok()) {
    std::cerr << "cannot create test certificates\n";
    return 1;
  }
  const double mib = bytes / double(1 << 20);
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  // Four paths, measured in turn within each round, so a slow spell of a shared machine
  // falls on all of them rather than on one.
  enum Path { kRaw, kStored, kPlain, kTls, kPaths };
  std::vector<Result> results[kPaths];
  for (int round = 0; round < rounds; ++round) {
    const double raw_cpu_start = ProcessCpuSeconds();
    const double raw = RawTcpSeconds(bytes);
    results[kRaw].push_back({raw, 0, ProcessCpuSeconds() - raw_cpu_start});
    for (Path path : {kStored, kPlain, kTls}) {
      auto r = path == kStored ? StoredRawTcp(dir, blob, id, bytes)
                               : GrpcRound(path == kTls, dir, blob, id);
      if (!r.ok()) {
        std::cerr << (path == kStored ? "stored raw TCP"
                      : path == kTls  ? "mTLS"
                                      : "plaintext")
                  << ": " << r.status() << "\n";
        return 1;
      }
      results[path].push_back(*r);
    }
  }
  const auto rate = [mib](const Result& r) { return 2 * mib / (r.up_s + r.down_s); };
  // The round of median rate, and the lowest and highest rate.
  struct Summary {
    Result median;
    double rate = 0, low = 0, high = 0;
  };
  const auto summarize = [&rate](std::vector<Result> v) {
    std::sort(v.begin(), v.end(),
              [&rate](const Result& a, const Result& b) { return rate(a) < rate(b); });
    return Summary{v[v.size() / 2], rate(v[v.size() / 2]), rate(v.front()), rate(v.back())};
  };
  Summary sum[kPaths];
  for (int p = 0; p < kPaths; ++p) sum[p] = summarize(results[p]);
  std::cout << absl::StrFormat(
      "B2 transfer: %.0f MiB blob up + down over loopback, %d cores, store in %s; median of %d "
      "interleaved rounds\n",
      mib, cores, dir, rounds);
  std::cout << absl::StrFormat("%-26s %7s %7s %12s %15s %7s %7s %10s %7s\n", "path", "up s",
                               "down s", "MiB/s (u+d)", "range", "vs raw", "target", "vs stored",
                               "CPU s");
  const char* names[kPaths] = {"raw TCP (reference)", "raw TCP + SHA-256 + files", "gRPC plaintext",
                               "gRPC mTLS"};
  const char* targets[kPaths] = {"", "", ">=50%", ">=35%"};
  for (int p = 0; p < kPaths; ++p) {
    const Summary& x = sum[p];
    std::cout << absl::StrFormat(
        "%-26s %7.3f %7s %12.1f %15s %6.0f%% %7s %10s %7.3f\n", names[p], x.median.up_s,
        p == kRaw ? "" : absl::StrFormat("%.3f", x.median.down_s), x.rate,
        absl::StrFormat("%.0f-%.0f", x.low, x.high), 100 * x.rate / sum[kRaw].rate, targets[p],
        p == kRaw ? "" : absl::StrFormat("%.0f%%", 100 * x.rate / sum[kStored].rate),
        x.median.cpu_s);
  }
  // Computed, not timed: even with no protocol, and with the stored round's work spread
  // perfectly over every core, a transfer with the product's guarantees that carries the
  // bytes through user space cannot beat this.
  const double cpu = sum[kStored].median.cpu_s;
  std::cout << absl::StrFormat(
      "bound: the stored round's %.3f CPU s spread perfectly over %d cores takes %.3f s: at "
      "most %.1f MiB/s, %.0f%% of raw TCP\n",
      cpu, cores, cpu / cores, 2 * mib * cores / cpu, 100 * 2 * mib * cores / cpu / sum[kRaw].rate);
  fs::remove_all(dir);
  return 0;
}
