#include "client/net/blob_transfer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "client/net/stall_watchdog.h"
#include "common/fault_hook.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace wxp::client {
namespace fs = std::filesystem;

namespace {

// Test fault hook (tests/agent_process_test, common/fault_hook.h): with
// WXP_FAULT_HOLD_UPLOAD_AFTER_BYTES=N and WXP_FAULT_HOLD_UPLOAD_MARKER=PATH in the
// environment, the first upload that has streamed at least N bytes while more remain holds
// until the process is killed, so a test's SIGKILL lands mid-upload every time.
void MaybeHoldUpload(uint64_t sent, uint64_t remaining) {
  static const char* const after = std::getenv("WXP_FAULT_HOLD_UPLOAD_AFTER_BYTES");
  if (after == nullptr || remaining == 0) return;
  if (sent < std::strtoull(after, nullptr, 10)) return;
  HoldIfArmed("WXP_FAULT_HOLD_UPLOAD_MARKER");
}

}  // namespace

absl::Duration TransferDeadline(const Connection& conn, uint64_t bytes) {
  return conn.options().rpc_deadline + absl::Seconds(2.0 * (bytes / double(64 << 20)));
}

absl::StatusOr<TransferResult> UploadFile(Connection& conn, const std::string& path,
                                          std::string blob_id, const std::string& swarm) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot stat", path);
  if (blob_id.empty()) {
    WXP_ASSIGN_OR_RETURN(blob_id, Sha256File(path));
  }
  TransferResult result{blob_id, size, 0, false};

  wxp::v1::GetUploadOffsetRequest oreq;
  oreq.set_blob_id(blob_id);
  wxp::v1::GetUploadOffsetResponse oresp;
  WXP_RETURN_IF_ERROR(
      FromGrpc(conn.agent().GetUploadOffset(conn.NewContext().get(), oreq, &oresp)));
  if (oresp.complete()) {
    result.already_present = true;
    return result;
  }
  uint64_t offset = oresp.committed_bytes();
  if (offset > size) offset = 0;  // Not ours to trust: start over (the server will say).

  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, "cannot open", path);
  in.seekg(static_cast<std::streamoff>(offset));

  auto ctx = conn.NewContext(TransferDeadline(conn, size - offset));
  wxp::v1::UploadBlobResponse resp;
  auto writer = conn.agent().UploadBlob(ctx.get(), &resp);
  wxp::v1::UploadBlobRequest req;
  req.mutable_header()->set_blob_id(blob_id);
  req.mutable_header()->set_total_size(size);
  req.mutable_header()->set_offset(offset);
  req.mutable_header()->set_swarm(swarm);
  bool open = writer->Write(req);
  // One chunk message for the whole upload, read into in place: a fresh megabyte per chunk
  // costs more (page faults) than copying it does.
  req.Clear();
  wxp::v1::BlobChunk& chunk = *req.mutable_chunk();
  std::string& buf = *chunk.mutable_data();
  while (open && offset < size) {
    const uint64_t n = std::min<uint64_t>(kChunkBytes, size - offset);
    buf.resize(n);
    if (!in.read(buf.data(), static_cast<std::streamsize>(n))) {
      ctx->TryCancel();
      writer->Finish();
      return absl::DataLossError(absl::StrCat(path, " shrank while being uploaded"));
    }
    chunk.set_offset(offset);
    open = writer->Write(req);
    if (open) {
      offset += n;
      result.bytes_moved += n;
      MaybeHoldUpload(result.bytes_moved, size - offset);
    }
  }
  if (open) writer->WritesDone();
  WXP_RETURN_IF_ERROR(FromGrpc(writer->Finish()));
  result.already_present = resp.already_present();
  if (resp.committed_bytes() != size) {
    return absl::UnavailableError(absl::StrCat("upload of ", blob_id, " stopped at ",
                                               resp.committed_bytes(), " of ", size, " bytes"));
  }
  return result;
}

absl::StatusOr<TransferResult> DownloadToFile(Connection& conn, const std::string& blob_id,
                                              const std::string& dest) {
  if (!IsSha256Hex(blob_id)) {
    return absl::InvalidArgumentError(absl::StrCat("'", blob_id, "' is not a blob id"));
  }
  const std::string partial = dest + ".partial";
  std::error_code ec;
  uint64_t offset = fs::exists(partial, ec) ? fs::file_size(partial, ec) : 0;
  if (ec) offset = 0;
  TransferResult result{blob_id, 0, 0, false};
  // The digest is taken as the bytes arrive (after the resumed prefix's, read back once)
  // instead of reading the whole file again at the end.
  Sha256Hasher hasher;
  if (offset > 0) {
    std::ifstream prefix(partial, std::ios::binary);
    std::string buf(kChunkBytes, '\0');
    uint64_t hashed = 0;
    while (hashed < offset &&
           prefix.read(buf.data(), static_cast<std::streamsize>(
                                       std::min<uint64_t>(buf.size(), offset - hashed)))) {
      hasher.Update(absl::string_view(buf.data(), static_cast<size_t>(prefix.gcount())));
      hashed += static_cast<uint64_t>(prefix.gcount());
    }
    if (hashed != offset) return ErrnoStatus(errno, "cannot read", partial);
  }
  {
    std::ofstream out(partial, offset > 0 ? std::ios::binary | std::ios::app
                                          : std::ios::binary | std::ios::trunc);
    if (!out) return ErrnoStatus(errno, "cannot write", partial);
    wxp::v1::DownloadBlobRequest req;
    req.set_blob_id(blob_id);
    req.set_offset(offset);
    // The size is unknown until the first message; scale the deadline generously, and
    // give up early on a server that goes quiet for a unary call's deadline (a stopped
    // replica must not hold the caller for ten minutes: it fails over instead).
    auto ctx = conn.NewContext(conn.options().rpc_deadline + absl::Minutes(10));
    StallWatchdog watchdog(ctx.get(), conn.options().rpc_deadline);
    auto reader = conn.agent().DownloadBlob(ctx.get(), req);
    wxp::v1::DownloadBlobResponse msg;
    while (reader->Read(&msg)) {
      watchdog.Progress();
      result.total_bytes = msg.total_size();
      if (msg.chunk().offset() != offset) {
        ctx->TryCancel();
        reader->Finish();
        return absl::DataLossError(absl::StrCat("download of ", blob_id, ": chunk at ",
                                                msg.chunk().offset(), ", expected ", offset));
      }
      out.write(msg.chunk().data().data(), msg.chunk().data().size());
      hasher.Update(msg.chunk().data());
      offset += msg.chunk().data().size();
      result.bytes_moved += msg.chunk().data().size();
    }
    out.flush();
    if (!out) return ErrnoStatus(errno, "cannot write", partial);
    grpc::Status st = reader->Finish();
    if (watchdog.stalled()) {
      // What was received is in the partial file: the next call resumes from there.
      return absl::UnavailableError(absl::StrCat(
          "download of ", blob_id, ": no data from ", conn.current_address(), " for ",
          absl::FormatDuration(conn.options().rpc_deadline), " (stopped at byte ", offset, ")"));
    }
    if (st.error_code() == grpc::StatusCode::OUT_OF_RANGE) {
      fs::remove(partial, ec);  // Our partial file is longer than the blob: start over.
    }
    WXP_RETURN_IF_ERROR(FromGrpc(st));
  }
  if (result.total_bytes == 0) result.total_bytes = offset;
  if (offset != result.total_bytes) {
    return absl::UnavailableError(absl::StrCat("download of ", blob_id, " stopped at ", offset,
                                               " of ", result.total_bytes, " bytes"));
  }
  const std::string digest = hasher.FinalHex();
  if (digest != blob_id) {
    fs::remove(partial, ec);
    return absl::DataLossError(
        absl::StrCat("downloaded bytes hash to ", digest, ", not to blob id ", blob_id));
  }
  fs::rename(partial, dest, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot rename to", dest);
  return result;
}

}  // namespace wxp::client
