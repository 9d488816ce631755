// `wxpctl history NAME`: the per-iteration record of a swarm as a table, CSV, JSON or an
// SVG chart.
#include "absl/strings/str_cat.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/remote.h"
#include "client/admin/views.h"
#include "common/file_util.h"

namespace wxp::admin {

int History(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args,
      {{"csv", "print CSV (every weight version, exact values)", true},
       {"json", "print JSON (same as --output json)", true},
       {"plot", "write an SVG chart of g, g_w and mean utility to this file"}},
      {"history", "NAME [--csv | --json | --output table|json] [--plot FILE.svg]", 1, 1, true}, out,
      err, &code);
  if (!rc) return code;
  const bool json = rc->json || rc->args.GetBool("json");
  if (json && rc->args.GetBool("csv")) {
    return UsageError(err, "history", "--csv and --json exclude each other");
  }
  const std::string swarm = rc->args.positional()[0];
  v1::GetHistoryRequest req;
  req.set_swarm(swarm);
  v1::GetHistoryResponse resp;
  grpc::Status s = rc->conn->CallWithFailover(
      [&] { return rc->conn->admin().GetHistory(rc->conn->NewContext().get(), req, &resp); });
  if (!s.ok()) return Fail(err, RpcError(s, "history"));
  if (rc->args.Has("plot")) {
    const std::string path = rc->args.Get("plot");
    absl::Status w = WriteFileAtomically(path, RenderHistorySvg(swarm, resp));
    if (!w.ok()) return Fail(err, w);
    // The chart is the product when plotting: a table on stdout would be noise, and with
    // --csv/--json the data still goes to stdout for scripts.
    if (!json && !rc->args.GetBool("csv")) {
      out << "wrote " << path << " (" << resp.entries_size() << " history entries)\n";
      return kExitOk;
    }
  }
  if (json) {
    out << ProtoJson(resp) << "\n";
  } else if (rc->args.GetBool("csv")) {
    out << RenderHistoryCsv(resp);
  } else {
    out << RenderHistoryTable(resp) << RenderAuditedClaims(resp);
  }
  return kExitOk;
}

}  // namespace wxp::admin
