#include "server/blobs/disk_blobs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace wxp::server {
namespace {

namespace fs = std::filesystem;

// A full disk passes once an operator frees space, so it answers UNAVAILABLE, which
// clients retry; RESOURCE_EXHAUSTED stays for limits no retry passes (the code table in
// proto/wxp.proto). file_util reports ENOSPC and EDQUOT, and only those, as
// ResourceExhausted.
absl::Status FullDiskIsUnavailable(absl::Status s) {
  if (absl::IsResourceExhausted(s)) return absl::UnavailableError(s.message());
  return s;
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return FullDiskIsUnavailable(ErrnoStatus(errno, what, path));
}

absl::Status CheckId(const std::string& id) {
  if (!IsSha256Hex(id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", id, "' is not a blob id (64 lower-case hex characters)"));
  }
  return absl::OkStatus();
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

absl::Time ModifiedAt(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::InfiniteFuture();  // vanished: keep
  return absl::TimeFromTimespec(st.st_mtim);
}

absl::StatusOr<std::string> HashFile(const std::string& path) { return Sha256File(path); }

void SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<DiskBlobs>> DiskBlobs::Open(const Options& options) {
  if (options.root.empty()) return absl::InvalidArgumentError("blob store needs a root");
  WXP_RETURN_IF_ERROR(MakeDirs(options.root + "/blobs"));
  WXP_RETURN_IF_ERROR(MakeDirs(options.root + "/partial"));
  return std::unique_ptr<DiskBlobs>(new DiskBlobs(options));
}

DiskBlobs::~DiskBlobs() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, up] : uploads_) {
    if (up.fd >= 0) ::close(up.fd);
  }
}

std::string DiskBlobs::BlobPath(const std::string& id) const {
  return absl::StrCat(options_.root, "/blobs/", id.substr(0, 2), "/", id);
}

std::string DiskBlobs::PartialPath(const std::string& id) const {
  return absl::StrCat(options_.root, "/partial/", id);
}

bool DiskBlobs::Has(const std::string& id) {
  return IsSha256Hex(id) && ::access(BlobPath(id).c_str(), F_OK) == 0;
}

absl::StatusOr<uint64_t> DiskBlobs::Size(const std::string& id) {
  WXP_RETURN_IF_ERROR(CheckId(id));
  struct stat st;
  if (::stat(BlobPath(id).c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("no blob ", id));
  }
  return static_cast<uint64_t>(st.st_size);
}

absl::StatusOr<std::string> DiskBlobs::ReadAll(const std::string& id) {
  WXP_RETURN_IF_ERROR(CheckId(id));
  absl::StatusOr<std::string> bytes = ReadFile(BlobPath(id));
  if (absl::IsNotFound(bytes.status())) return absl::NotFoundError(absl::StrCat("no blob ", id));
  return bytes;
}

absl::StatusOr<std::string> DiskBlobs::Read(const std::string& id, uint64_t offset,
                                            size_t max_bytes) {
  std::string out;
  WXP_RETURN_IF_ERROR(ReadInto(id, offset, max_bytes, &out));
  return out;
}

absl::Status DiskBlobs::ReadInto(const std::string& id, uint64_t offset, size_t max_bytes,
                                 std::string* out) {
  WXP_ASSIGN_OR_RETURN(uint64_t size, Size(id));
  if (offset > size) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is past the end of blob ", id, " (", size, " bytes)"));
  }
  const int fd = ::open(BlobPath(id).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", BlobPath(id));
  out->resize(std::min<uint64_t>(max_bytes, size - offset));
  size_t done = 0;
  while (done < out->size()) {
    const ssize_t n =
        ::pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno("cannot read", BlobPath(id));
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::StatusOr<std::string> DiskBlobs::Put(absl::string_view bytes) {
  const std::string id = Sha256Hex(bytes);
  if (Has(id)) return id;
  WXP_RETURN_IF_ERROR(
      FullDiskIsUnavailable(MakeDirs(absl::StrCat(options_.root, "/blobs/", id.substr(0, 2)))));
  WXP_RETURN_IF_ERROR(FullDiskIsUnavailable(WriteFileAtomically(BlobPath(id), bytes)));
  return id;
}

absl::StatusOr<DiskBlobs::UploadState> DiskBlobs::UploadOffset(const std::string& id) {
  WXP_RETURN_IF_ERROR(CheckId(id));
  if (Has(id)) return UploadState{*Size(id), true};
  return UploadState{FileSize(PartialPath(id)), false};
}

absl::StatusOr<DiskBlobs::UploadState> DiskBlobs::BeginUpload(const std::string& id,
                                                              uint64_t total_size,
                                                              uint64_t resume_from) {
  WXP_RETURN_IF_ERROR(CheckId(id));
  if (total_size > options_.max_blob_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob of ", total_size, " bytes is over the limit of ", options_.max_blob_bytes));
  }
  if (Has(id)) return UploadState{*Size(id), true};
  const std::string path = PartialPath(id);
  Upload* up = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (uploads_.count(id)) {
      return absl::AbortedError(absl::StrCat("an upload of ", id, " is already in progress"));
    }
    uint64_t committed = FileSize(path);
    if (resume_from > committed) {
      return absl::FailedPreconditionError(absl::StrCat("cannot resume ", id, " at offset ",
                                                        resume_from, ": the server holds ",
                                                        committed, " bytes (see GetUploadOffset)"));
    }
    if (committed > total_size || resume_from < committed) {
      // Restart from the client's offset (a stale partial of another size restarts from 0).
      const uint64_t keep = committed > total_size ? 0 : resume_from;
      if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0 && errno != ENOENT) {
        return Errno("cannot truncate", path);
      }
      committed = keep;
    }
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot open", path);
    up = &uploads_[id];
    up->total = total_size;
    up->fd = fd;
    up->committed = committed;
  }
  // The lease is ours: the prefix is hashed without holding mu_.
  if (!options_.shared && up->committed > 0) {
    std::string buf(std::min<uint64_t>(up->committed, 1 << 20), '\0');
    for (uint64_t done = 0; done < up->committed;) {
      const ssize_t n =
          ::pread(up->fd, buf.data(), std::min<uint64_t>(buf.size(), up->committed - done),
                  static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        absl::Status s = Errno("cannot read", path);
        Abandon(id);
        return s;
      }
      up->hasher.Update(absl::string_view(buf.data(), static_cast<size_t>(n)));
      done += static_cast<uint64_t>(n);
    }
  }
  return UploadState{up->committed, false};
}

absl::StatusOr<DiskBlobs::Upload*> DiskBlobs::Active(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = uploads_.find(id);
  if (it == uploads_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("no upload of ", id, " was begun"));
  }
  return &it->second;
}

absl::StatusOr<uint64_t> DiskBlobs::Append(const std::string& id, uint64_t offset,
                                           absl::string_view data) {
  WXP_ASSIGN_OR_RETURN(Upload* const up, Active(id));
  const std::string path = PartialPath(id);
  // The file's own size, not only ours: with `shared` another process may append too.
  struct stat st;
  if (::fstat(up->fd, &st) != 0) return Errno("cannot stat", path);
  const uint64_t committed = static_cast<uint64_t>(st.st_size);
  if (offset != committed || committed != up->committed) {
    return absl::FailedPreconditionError(
        absl::StrCat("chunk out of order: expected offset ", committed, ", got ", offset));
  }
  if (offset + data.size() > up->total) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ends at byte ", offset + data.size(),
                                                   ", past the declared size ", up->total));
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(up->fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("cannot write", path);
      // Cut back to the last durable size so the offset stays truthful; the write error
      // is what the caller needs to hear about.
      const int ignored = ::ftruncate(up->fd, static_cast<off_t>(committed));
      (void)ignored;
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(up->fd) != 0) return Errno("cannot sync", path);
  if (!options_.shared) up->hasher.Update(data);
  up->committed = committed + data.size();
  return up->committed;
}

absl::Status DiskBlobs::Finish(const std::string& id) {
  WXP_ASSIGN_OR_RETURN(Upload* const up, Active(id));
  const std::string partial = PartialPath(id);
  const uint64_t size = FileSize(partial);
  if (size != up->total || size != up->committed) {
    const uint64_t total = up->total;
    Abandon(id);
    return absl::FailedPreconditionError(
        absl::StrCat("upload of ", id, " has ", size, " of ", total, " bytes"));
  }
  absl::StatusOr<std::string> digest =
      options_.shared ? HashFile(partial) : absl::StatusOr<std::string>(up->hasher.FinalHex());
  if (!digest.ok() || *digest != id) {
    ::unlink(partial.c_str());
    Abandon(id);
    if (!digest.ok()) return digest.status();
    return absl::InvalidArgumentError(
        absl::StrCat("hash mismatch: expected ", id, ", got ", *digest));
  }
  const std::string dir = absl::StrCat(options_.root, "/blobs/", id.substr(0, 2));
  absl::Status s = FullDiskIsUnavailable(MakeDirs(dir));
  if (s.ok() && ::rename(partial.c_str(), BlobPath(id).c_str()) != 0) {
    s = Errno("cannot publish", BlobPath(id));
  }
  if (s.ok()) SyncDir(dir);
  Abandon(id);
  return s;
}

void DiskBlobs::Abandon(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = uploads_.find(id);
  if (it == uploads_.end()) return;
  if (it->second.fd >= 0) ::close(it->second.fd);
  uploads_.erase(it);
}

absl::StatusOr<DiskBlobs::RecoverySummary> DiskBlobs::Recover(
    const std::function<bool(const std::string& id)>& is_referenced, absl::Time collect_before) {
  RecoverySummary summary;
  std::error_code ec;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = fs::directory_iterator(options_.root + "/partial", ec);
         it != fs::directory_iterator(); it.increment(ec)) {
      if (ec)
        return absl::InternalError(absl::StrCat("cannot scan partial uploads: ", ec.message()));
      const std::string path = it->path().string();
      const std::string name = it->path().filename().string();
      if (uploads_.count(name) || ModifiedAt(path) >= collect_before) continue;
      const uint64_t size = FileSize(path);
      fs::remove(it->path(), ec);
      ++summary.removed_stale_partials;
      summary.bytes_freed += size;
    }
  }
  for (auto it = fs::recursive_directory_iterator(options_.root + "/blobs", ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat("cannot scan blobs: ", ec.message()));
    if (!it->is_regular_file()) continue;
    const std::string path = it->path().string();
    const std::string name = it->path().filename().string();
    const uint64_t size = FileSize(path);
    bool remove = false;
    if (absl::StrContains(name, ".tmp.")) {
      if (options_.shared && ModifiedAt(path) >= collect_before) continue;
      ++summary.removed_temporaries;  // an atomic write cut short by a crash
      remove = true;
    } else if (!IsSha256Hex(name) || !is_referenced(name)) {
      if (IsSha256Hex(name) && ModifiedAt(path) >= collect_before) {
        ++summary.kept_recent_unreferenced;
        continue;
      }
      ++summary.removed_unreferenced;
      remove = true;
    } else if (absl::StatusOr<std::string> d = HashFile(path); !d.ok() || *d != name) {
      ++summary.removed_corrupt;
      remove = true;
    }
    if (remove) {
      fs::remove(it->path(), ec);
      summary.bytes_freed += size;
    }
  }
  return summary;
}

}  // namespace wxp::server
