// The receiving end of AdminService.ExportBest: chunks of a PEFT directory's files, written
// into a directory and verified. Kept apart from the command so that what a broken or
// hostile stream gets (a bad file name, chunks out of order, more bytes than announced, a
// hash mismatch, a file cut short) is tested directly.
#ifndef WXP_CLIENT_ADMIN_EXPORT_WRITER_H_
#define WXP_CLIENT_ADMIN_EXPORT_WRITER_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sha256.h"
#include "proto/wxp.pb.h"

namespace wxp::admin {

struct ReceivedFile {
  uint64_t size = 0;
  std::string sha256;  // verified against the server's digest
};

struct ReceivedExport {
  std::map<std::string, ReceivedFile> files;  // by name
  double utility = 0;                         // g's utility as the stream reports it
  std::string position_blob_id;  // g's position as the stream names it (empty: an old server)
};

class ExportWriter {
 public:
  // Files go into `dir`, which must exist; a file that is already there is an error (the
  // caller stages into a fresh directory).
  explicit ExportWriter(std::string dir) : dir_(std::move(dir)) {}
  ~ExportWriter();
  ExportWriter(const ExportWriter&) = delete;
  ExportWriter& operator=(const ExportWriter&) = delete;

  // Writes one chunk. On a file's last chunk (the one carrying sha256) checks the size and
  // the digest, then fsyncs and closes the file. DataLoss for anything the stream gets
  // wrong; the I/O error naming the path otherwise. After an error the writer is done.
  absl::Status Add(const v1::ExportChunk& chunk);

  // After the stream ended normally: every file complete and verified (DataLoss naming
  // the first that is not), at least one file.
  absl::StatusOr<ReceivedExport> Finish();

 private:
  struct Open {
    uint64_t size = 0;
    uint64_t written = 0;
    int fd = -1;
    Sha256Hasher hasher;
  };
  std::string dir_;
  std::map<std::string, Open> open_;
  ReceivedExport done_;
};

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_EXPORT_WRITER_H_
