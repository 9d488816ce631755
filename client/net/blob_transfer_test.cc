// DownloadToFile against an in-process AgentService: a server that stops sending mid-blob
// (as a SIGSTOPped replica does: its kernel keeps the connection open) is given up after
// one unary deadline instead of the stream's minutes, and the next call resumes.
#include "client/net/blob_transfer.h"

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::client {
namespace {

// Serves one blob. While `stall` is set it sends the first `stall_after` bytes of a
// download and then nothing, until the client cancels.
class OneBlobService : public wxp::v1::AgentService::Service {
 public:
  explicit OneBlobService(std::string bytes) : bytes_(std::move(bytes)) {}
  std::atomic<bool> stall{true};
  absl::Notification stalled_call_cancelled;
  static constexpr size_t stall_after = 1000;

  grpc::Status DownloadBlob(grpc::ServerContext* ctx, const wxp::v1::DownloadBlobRequest* req,
                            grpc::ServerWriter<wxp::v1::DownloadBlobResponse>* out) override {
    size_t at = req->offset();
    const size_t end = stall ? stall_after : bytes_.size();
    while (at < end) {
      const size_t n = std::min<size_t>(end - at, 64 << 10);
      wxp::v1::DownloadBlobResponse msg;
      msg.set_total_size(bytes_.size());
      msg.mutable_chunk()->set_offset(at);
      msg.mutable_chunk()->set_data(bytes_.substr(at, n));
      if (!out->Write(msg)) return grpc::Status::CANCELLED;
      at += n;
    }
    if (!stall) return grpc::Status::OK;
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stalled_call_cancelled.Notify();
    return grpc::Status::CANCELLED;
  }

 private:
  const std::string bytes_;
};

TEST(DownloadToFileTest, AServerThatGoesQuietIsGivenUpAndTheNextCallResumes) {
  std::string bytes(300 << 10, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7919 % 251);
  const std::string id = Sha256Hex(bytes);
  OneBlobService service(bytes);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  ConnectionOptions o;
  o.server_address = absl::StrCat("127.0.0.1:", port);
  o.plaintext = true;
  o.identity = "firm-a";
  // The quiet period allowed; without the watchdog the stream would wait 10 minutes more.
  o.rpc_deadline = absl::Seconds(2);
  auto conn = Connection::Open(o, absl::Now());
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::string dest = ::testing::TempDir() + "/blob";
  std::filesystem::remove(dest);
  std::filesystem::remove(dest + ".partial");

  absl::StatusOr<TransferResult> quiet = DownloadToFile(**conn, id, dest);
  ASSERT_FALSE(quiet.ok());
  EXPECT_EQ(quiet.status().code(), absl::StatusCode::kUnavailable) << quiet.status();
  EXPECT_NE(quiet.status().message().find("no data from 127.0.0.1:"), std::string::npos)
      << quiet.status();
  // The server sees the cancellation (the bound only keeps a broken build from hanging).
  EXPECT_TRUE(service.stalled_call_cancelled.WaitForNotificationWithTimeout(absl::Minutes(1)));
  EXPECT_FALSE(std::filesystem::exists(dest));
  // What arrived before the quiet is kept (on a starved machine the watchdog may fire
  // before the first message: then nothing was), and the message says how far it got.
  const uint64_t kept = std::filesystem::file_size(dest + ".partial");
  EXPECT_TRUE(kept == 0 || kept == OneBlobService::stall_after) << kept;
  EXPECT_NE(quiet.status().message().find(absl::StrCat("stopped at byte ", kept, ")")),
            std::string::npos)
      << quiet.status();

  // The server answers again: the download resumes from the partial file and completes
  // (a connection with a generous quiet period: this part is not about the watchdog).
  service.stall = false;
  o.rpc_deadline = absl::Minutes(1);
  auto patient = Connection::Open(o, absl::Now());
  ASSERT_TRUE(patient.ok()) << patient.status();
  absl::StatusOr<TransferResult> whole = DownloadToFile(**patient, id, dest);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->bytes_moved, bytes.size() - kept);
  EXPECT_EQ(*ReadFile(dest), bytes);
  server->Shutdown();
}

}  // namespace
}  // namespace wxp::client
