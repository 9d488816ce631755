// `wxpctl export NAME --out DIR`: the swarm's global best g as a PEFT directory, streamed,
// verified and made visible all at once.
//
// Files are written into a hidden staging directory next to DIR, each checked against the
// SHA-256 the server sends with its last chunk (and the weights file against g's blob id),
// fsynced, and only then is the staging directory renamed to DIR. An interrupted export
// leaves DIR as it was.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/remote.h"
#include "client/admin/views.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

namespace fs = std::filesystem;

struct ExportedFile {
  uint64_t size = 0;
  uint64_t written = 0;
  std::string sha256;  // verified
  int fd = -1;
  Sha256Hasher hasher;
};

absl::Status FsyncPath(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  const int rc = fsync(fd);
  const int e = errno;
  close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoStatus(e, "fsync", path);
}

// Receives the ExportBest stream into `staging`; the files by name.
absl::Status Receive(grpc::ClientReaderInterface<v1::ExportChunk>& reader,
                     const std::string& staging, std::map<std::string, ExportedFile>* files,
                     double* utility) {
  v1::ExportChunk chunk;
  absl::Status status;
  while (status.ok() && reader.Read(&chunk)) {
    *utility = chunk.utility();
    const std::string& name = chunk.path();
    // The server names the files; a name that could leave the directory is not trusted.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      status = absl::DataLossError(absl::StrCat("the server sent a bad file name '", name, "'"));
      break;
    }
    ExportedFile& f = (*files)[name];
    if (f.fd < 0 && f.sha256.empty()) {
      const std::string path = staging + "/" + name;
      f.fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (f.fd < 0) {
        status = ErrnoStatus(errno, "create", path);
        break;
      }
      f.size = chunk.file_size();
    }
    if (f.fd < 0 || chunk.chunk().offset() != f.written || chunk.file_size() != f.size ||
        f.written + chunk.chunk().data().size() > f.size) {
      status = absl::DataLossError(
          absl::StrCat("the export stream of ", name, " is out of order or longer than announced"));
      break;
    }
    const std::string& data = chunk.chunk().data();
    for (size_t off = 0; off < data.size();) {
      const ssize_t n = write(f.fd, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = ErrnoStatus(errno, "write", staging + "/" + name);
        break;
      }
      off += n;
    }
    f.hasher.Update(data);
    f.written += data.size();
    if (!status.ok() || chunk.sha256().empty()) continue;
    const std::string digest = f.hasher.FinalHex();
    if (f.written != f.size || digest != chunk.sha256()) {
      status = absl::DataLossError(absl::StrCat(name, ": received ", f.written, " of ", f.size,
                                                " bytes with SHA-256 ", digest,
                                                ", the server says ", chunk.sha256()));
      break;
    }
    if (fsync(f.fd) != 0) status = ErrnoStatus(errno, "fsync", staging + "/" + name);
    close(f.fd);
    f.fd = -1;
    f.sha256 = digest;
  }
  for (auto& [name, f] : *files) {
    if (f.fd >= 0) close(f.fd);
    f.fd = -1;
  }
  return status;
}

// g's blob id as the server reports it now; empty if unknown.
std::string CurrentBestBlob(RemoteCommand& rc, const std::string& swarm) {
  v1::GetSwarmStatusRequest req;
  req.set_swarm(swarm);
  v1::SwarmStatus status;
  if (!rc.conn->admin().GetSwarmStatus(rc.conn->NewContext().get(), req, &status).ok()) return "";
  return status.global_best().blob_id();
}

// Replaces `dir` (absent, empty, or --force) by `staging` with renames only.
absl::Status Publish(const std::string& staging, const std::string& dir) {
  std::error_code ec;
  std::string old;
  if (fs::exists(dir, ec)) {
    old = absl::StrCat(fs::path(staging).parent_path().string(), "/.",
                       fs::path(dir).filename().string(), ".wxpctl-old-", getpid());
    if (rename(dir.c_str(), old.c_str()) != 0) return ErrnoStatus(errno, "move aside", dir);
  }
  if (rename(staging.c_str(), dir.c_str()) != 0) {
    const absl::Status s = ErrnoStatus(errno, "rename into place", dir);
    if (!old.empty()) rename(old.c_str(), dir.c_str());
    return s;
  }
  if (!old.empty()) fs::remove_all(old, ec);
  return FsyncPath(fs::path(dir).parent_path().string());
}

}  // namespace

int Export(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args,
      {{"out", "PEFT directory to write"}, {"force", "replace a non-empty --out directory", true}},
      {"export", "NAME --out DIR [--force] [--output table|json]", 1, 1, true}, out, err, &code);
  if (!rc) return code;
  if (!rc->args.Has("out") || rc->args.Get("out").empty()) {
    return UsageError(err, "export", "missing --out DIR");
  }
  const std::string swarm = rc->args.positional()[0];
  std::string dir = rc->args.Get("out");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  dir = fs::absolute(dir).lexically_normal().string();
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) {
      return Fail(err, absl::FailedPreconditionError(dir + " exists and is not a directory"));
    }
    if (!fs::is_empty(dir, ec) && !rc->args.GetBool("force")) {
      return Fail(err, absl::AlreadyExistsError(
                           dir + " is not empty; refusing to overwrite it (use --force)"));
    }
  }
  const std::string parent = fs::path(dir).parent_path().string();
  if (absl::Status s = MakeDirs(parent); !s.ok()) return Fail(err, s);
  const std::string staging =
      absl::StrCat(parent, "/.", fs::path(dir).filename().string(), ".wxpctl-export-", getpid());
  fs::remove_all(staging, ec);
  if (absl::Status s = MakeDirs(staging); !s.ok()) return Fail(err, s);
  auto cleanup = [&](const absl::Status& s) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    return Fail(err, s);
  };

  const std::string blob_before = CurrentBestBlob(*rc, swarm);
  v1::ExportBestRequest req;
  req.set_swarm(swarm);
  // The stream carries a whole adapter: it gets far longer than one unary call.
  auto ctx = rc->conn->NewContext(rc->conn->options().rpc_deadline + absl::Minutes(30));
  auto reader = rc->conn->admin().ExportBest(ctx.get(), req);
  std::map<std::string, ExportedFile> files;
  double utility = 0;
  absl::Status received = Receive(*reader, staging, &files, &utility);
  if (!received.ok()) ctx->TryCancel();
  grpc::Status finished = reader->Finish();
  if (!received.ok()) return cleanup(received);
  if (!finished.ok()) return cleanup(RpcError(finished, "export"));
  for (const auto& [name, f] : files) {
    if (f.sha256.empty()) {
      return cleanup(absl::DataLossError(absl::StrCat(name, " ended without its SHA-256")));
    }
  }
  auto weights = files.find(kPeftWeightsFile);
  if (weights == files.end()) {
    return cleanup(absl::DataLossError(absl::StrCat("the export holds no ", kPeftWeightsFile)));
  }
  // g can move while the stream runs (async swarms): the export must be g before or after.
  const std::string& blob_id = weights->second.sha256;
  if (blob_id != blob_before && blob_id != CurrentBestBlob(*rc, swarm)) {
    return cleanup(absl::DataLossError(
        absl::StrCat("the exported weights have SHA-256 ", blob_id, ", which is not g's blob id ",
                     blob_before.empty() ? "(unknown)" : blob_before)));
  }
  if (absl::Status s = FsyncPath(staging); !s.ok()) return cleanup(s);
  if (absl::Status s = Publish(staging, dir); !s.ok()) return cleanup(s);

  if (rc->json) {
    nlohmann::ordered_json j;
    j["swarm"] = swarm;
    j["dir"] = dir;
    j["blob_id"] = blob_id;
    j["utility"] = utility;
    j["files"] = nlohmann::ordered_json::array();
    for (const auto& [name, f] : files) {
      j["files"].push_back({{"path", name}, {"size", f.size}, {"sha256", f.sha256}});
    }
    out << j.dump(2) << "\n";
  } else {
    out << "exported the global best of swarm " << swarm << " (utility " << utility << ", blob id "
        << blob_id << ") to " << dir << "\n";
    for (const auto& [name, f] : files) out << "  " << name << "  " << f.size << " bytes\n";
  }
  return kExitOk;
}

}  // namespace wxp::admin
