#include "client/admin/export_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace wxp::admin {

ExportWriter::~ExportWriter() {
  for (auto& [name, f] : open_) {
    if (f.fd >= 0) close(f.fd);
  }
}

absl::Status ExportWriter::Add(const v1::ExportChunk& chunk) {
  done_.utility = chunk.utility();
  done_.position_blob_id = chunk.position_blob_id();
  const std::string& name = chunk.path();
  // The server names the files; a name that could leave the directory is not trusted.
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return absl::DataLossError(absl::StrCat("the server sent a bad file name '", name, "'"));
  }
  if (done_.files.count(name)) {
    return absl::DataLossError(absl::StrCat("the server sent ", name, " twice"));
  }
  const std::string path = absl::StrCat(dir_, "/", name);
  auto [it, is_new] = open_.try_emplace(name);
  Open& f = it->second;
  if (is_new) {
    f.fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (f.fd < 0) return ErrnoStatus(errno, "create", path);
    f.size = chunk.file_size();
  }
  const std::string& data = chunk.chunk().data();
  if (chunk.chunk().offset() != f.written || chunk.file_size() != f.size ||
      data.size() > f.size - f.written) {
    return absl::DataLossError(absl::StrCat("the export stream of ", name,
                                            " is out of order or longer than announced (chunk at ",
                                            chunk.chunk().offset(), " of ", data.size(), " bytes, ",
                                            f.written, " of ", f.size, " bytes received)"));
  }
  for (size_t off = 0; off < data.size();) {
    const ssize_t n = write(f.fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "write", path);
    off += n;
  }
  f.hasher.Update(data);
  f.written += data.size();
  if (chunk.sha256().empty()) return absl::OkStatus();
  const std::string digest = f.hasher.FinalHex();
  if (f.written != f.size || digest != chunk.sha256()) {
    return absl::DataLossError(absl::StrCat(name, ": received ", f.written, " of ", f.size,
                                            " bytes with SHA-256 ", digest, ", the server says ",
                                            chunk.sha256()));
  }
  if (fsync(f.fd) != 0) return ErrnoStatus(errno, "fsync", path);
  const int rc = close(f.fd);
  f.fd = -1;
  if (rc != 0) return ErrnoStatus(errno, "close", path);
  done_.files[name] = {f.size, digest};
  open_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<ReceivedExport> ExportWriter::Finish() {
  if (!open_.empty()) {
    const auto& [name, f] = *open_.begin();
    return absl::DataLossError(absl::StrCat("the export stream ended inside ", name, " (",
                                            f.written, " of ", f.size,
                                            " bytes, no SHA-256 received)"));
  }
  if (done_.files.empty()) return absl::DataLossError("the export stream held no file");
  return done_;
}

}  // namespace wxp::admin
