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
#include <memory>

#include "absl/strings/str_cat.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/export_writer.h"
#include "client/admin/remote.h"
#include "client/admin/views.h"
#include "client/net/blob_transfer.h"
#include "client/net/stall_watchdog.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/token_manifest.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

namespace fs = std::filesystem;

absl::Status FsyncPath(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  const int rc = fsync(fd);
  const int e = errno;
  close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoStatus(e, "fsync", path);
}

// g's blob id as the server reports it now; empty if unknown.
std::string CurrentBestBlob(RemoteCommand& rc, const std::string& swarm) {
  v1::GetSwarmStatusRequest req;
  req.set_swarm(swarm);
  v1::SwarmStatus status;
  if (!rc.conn
           ->CallWithFailover([&] {
             return rc.conn->admin().GetSwarmStatus(rc.conn->NewContext().get(), req, &status);
           })
           .ok())
    return "";
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
  // ... but not longer than a unary call's deadline without a message from the server.
  auto watchdog =
      std::make_unique<client::StallWatchdog>(ctx.get(), rc->conn->options().rpc_deadline);
  auto reader = rc->conn->admin().ExportBest(ctx.get(), req);
  ExportWriter writer(staging);
  v1::ExportChunk chunk;
  absl::Status data;
  while (data.ok() && reader->Read(&chunk)) {
    watchdog->Progress();
    data = writer.Add(chunk);
  }
  if (!data.ok()) {
    ctx->TryCancel();
    reader->Finish();
    return cleanup(data);
  }
  // A stream the server ended with an error: its message says more than the cut-off file.
  grpc::Status finished = reader->Finish();
  const bool stalled = watchdog->stalled();
  watchdog.reset();  // the stream is over; what follows has deadlines of its own
  if (stalled) {
    return cleanup(absl::UnavailableError(
        absl::StrCat("export: no data from ", rc->conn->current_address(), " for ",
                     absl::FormatDuration(rc->conn->options().rpc_deadline))));
  }
  if (!finished.ok()) return cleanup(RpcError(finished, "export"));
  absl::StatusOr<ReceivedExport> received = writer.Finish();
  if (!received.ok()) return cleanup(received.status());
  const std::map<std::string, ReceivedFile>& files = received->files;
  const double utility = received->utility;
  if (files.count(kTokenManifestFile)) {
    // A token swarm (SPEC 4.5): the manifest names whole models; they come along as their
    // blobs (<id>.safetensors), so the directory can be inspected and evaluated offline.
    absl::StatusOr<std::string> text = ReadFile(staging + "/" + kTokenManifestFile);
    absl::StatusOr<TokenManifest> m =
        text.ok() ? ParseTokenManifest(*text) : absl::StatusOr<TokenManifest>(text.status());
    if (!m.ok()) return cleanup(absl::DataLossError(m.status().message()));
    const std::string& position = received->position_blob_id;
    if (position != blob_before && position != CurrentBestBlob(*rc, swarm)) {
      return cleanup(absl::DataLossError(absl::StrCat(
          "the manifest was written for position ", position, ", which is not g's blob id ",
          blob_before.empty() ? "(unknown)" : blob_before)));
    }
    for (const TokenManifestExpert& e : m->experts) {
      for (const std::string& id : {e.adapter_blob_id, e.base_model_blob_id}) {
        const std::string path = staging + "/" + id + ".safetensors";
        if (fs::exists(path, ec)) continue;
        absl::StatusOr<client::TransferResult> got = client::DownloadToFile(*rc->conn, id, path);
        if (!got.ok()) return cleanup(RpcError(got.status(), "expert download"));
      }
    }
    if (absl::Status s = FsyncPath(staging); !s.ok()) return cleanup(s);
    if (absl::Status s = Publish(staging, dir); !s.ok()) return cleanup(s);
    out << "exported the token-swarm manifest of swarm " << swarm << " (utility " << utility << ", "
        << m->experts.size() << " experts, combination " << TokenCombinationName(m->combination)
        << ") to " << dir << "\n";
    return kExitOk;
  }
  auto weights = files.find(kPeftWeightsFile);
  if (weights == files.end()) {
    return cleanup(absl::DataLossError(absl::StrCat("the export holds no ", kPeftWeightsFile)));
  }
  // g can move while the stream runs (async swarms): the export must be g before or after.
  // In WEIGHTS swarms the weights are g's blob; in coefficient spaces the server decoded
  // them from g's coefficient blob, which the stream names (an old server does not: then
  // the weights must be g's blob).
  const std::string& blob_id = weights->second.sha256;
  const std::string& position = received->position_blob_id;
  const bool decoded = !position.empty() && position != blob_id;
  const std::string& exported = decoded ? position : blob_id;
  if (exported != blob_before && exported != CurrentBestBlob(*rc, swarm)) {
    return cleanup(absl::DataLossError(absl::StrCat(
        decoded ? "the export was decoded from position " : "the exported weights have SHA-256 ",
        exported, ", which is not g's blob id ", blob_before.empty() ? "(unknown)" : blob_before)));
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
