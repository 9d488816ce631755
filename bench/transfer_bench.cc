// B2 (SPEC 9): upload + download of one large blob through wxp-server over loopback, in
// plaintext and with mutual TLS, beside raw TCP over loopback measured in the same run.
//
// The server's side of an upload includes what makes it durable (SHA-256, fsync, rename):
// the figure a user sees. --data_dir picks where the blob store lives (default a tmpfs, so
// the figure is about the wire and the server, not this machine's disk).
//
//   bazel run //bench:transfer_bench -- [--mib=256] [--data_dir=/dev/shm/wxp-b2]
//   bazel run //bench:transfer_bench -- --memory --mib=1024 --data_dir=/tmp/wxp-b4   (B4)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/net/blob_transfer.h"
#include "client/net/connection.h"
#include "common/certs.h"
#include "common/sha256.h"
#include "server/app/credentials.h"
#include "server/app/wxp_server.h"
#include "tests/testing/processes.h"

ABSL_FLAG(int, mib, 256, "blob size, MiB");
ABSL_FLAG(std::string, data_dir, "/dev/shm/wxp-transfer-bench", "scratch directory");
ABSL_FLAG(bool, memory, false,
          "B4 instead: peak memory of a wxp-server process and of this client (the agent's "
          "transfer code) while the blob goes up and down (use --mib=1024)");

namespace {
namespace fs = std::filesystem;

double RawTcpSeconds(size_t bytes) {
  // Server: read everything, then send it back, as upload + download do.
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  listen(ls, 1);
  socklen_t len = sizeof addr;
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread server([&] {
    int s = accept(ls, nullptr, nullptr);
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
  int c = socket(AF_INET, SOCK_STREAM, 0);
  connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
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
  close(ls);
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
  const double raw = RawTcpSeconds(bytes);
  const double raw_rate = 2 * mib / raw;
  std::cout << absl::StrFormat(
      "B2 transfer: %.0f MiB blob up + down over loopback, %d cores, store in %s\n", mib,
      static_cast<int>(std::thread::hardware_concurrency()), dir);
  std::cout << absl::StrFormat("%-22s %10s %10s %12s %10s %8s %8s\n", "path", "up s", "down s",
                               "MiB/s (u+d)", "vs raw", "target", "CPU s");
  std::cout << absl::StrFormat("%-22s %10.3f %10s %12.1f %10s %8s\n", "raw TCP (reference)", raw,
                               "", raw_rate, "100%", "");
  for (bool tls : {false, true}) {
    auto r = GrpcRound(tls, dir, blob, id);
    if (!r.ok()) {
      std::cerr << (tls ? "mTLS" : "plaintext") << ": " << r.status() << "\n";
      return 1;
    }
    const double rate = 2 * mib / (r->up_s + r->down_s);
    std::cout << absl::StrFormat("%-22s %10.3f %10.3f %12.1f %9.0f%% %7s %8.3f\n",
                                 tls ? "gRPC mTLS" : "gRPC plaintext", r->up_s, r->down_s, rate,
                                 100 * rate / raw_rate, tls ? ">=35%" : ">=50%", r->cpu_s);
  }
  fs::remove_all(dir);
  return 0;
}
