// `wxpctl clients list|revoke|unquarantine`: who the server has seen, shutting one out, and
// lifting an audit quarantine (SPEC 12).
#include "absl/time/clock.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/admin/remote.h"
#include "client/admin/views.h"

namespace wxp::admin {
namespace {

int ClientsList(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc =
      OpenRemote(args, {}, {"clients list", "[--output table|json]", 0, 0, true}, out, err, &code);
  if (!rc) return code;
  v1::ListClientsResponse resp;
  grpc::Status s = rc->conn->CallWithFailover([&] {
    return rc->conn->admin().ListClients(rc->conn->NewContext().get(), v1::ListClientsRequest(),
                                         &resp);
  });
  return Reply(
      *rc, s, "clients list", resp, [](const auto& r) { return RenderClients(r, absl::Now()); },
      out, err);
}

int ClientsRevoke(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args, {}, {"clients revoke", "IDENTITY [--output table|json]", 1, 1, true}, out, err, &code);
  if (!rc) return code;
  v1::RevokeClientRequest req;
  req.set_identity(rc->args.positional()[0]);
  v1::ClientInfo resp;
  grpc::Status s = rc->conn->CallWithFailover(
      [&] { return rc->conn->admin().RevokeClient(rc->conn->NewContext().get(), req, &resp); });
  return Reply(
      *rc, s, "clients revoke", resp,
      [](const v1::ClientInfo& c) {
        return "client " + c.identity() + " (" + c.role() +
               ") revoked: every call it makes is refused from now on\n";
      },
      out, err);
}

int ClientsUnquarantine(const std::vector<std::string>& args, std::ostream& out,
                        std::ostream& err) {
  int code = 0;
  std::optional<RemoteCommand> rc = OpenRemote(
      args, {{"reason", "why, recorded in the audit log"}},
      {"clients unquarantine", "IDENTITY [--reason TEXT] [--output table|json]", 1, 1, true}, out,
      err, &code);
  if (!rc) return code;
  v1::UnquarantineClientRequest req;
  req.set_identity(rc->args.positional()[0]);
  req.set_reason(rc->args.Get("reason"));
  v1::ClientInfo resp;
  grpc::Status s = rc->conn->CallWithFailover([&] {
    return rc->conn->admin().UnquarantineClient(rc->conn->NewContext().get(), req, &resp);
  });
  return Reply(
      *rc, s, "clients unquarantine", resp,
      [](const v1::ClientInfo& c) {
        return "client " + c.identity() + " (" + c.role() +
               ") is no longer quarantined: its calls are served again and its strikes "
               "start from 0\n";
      },
      out, err);
}

}  // namespace

int Clients(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return DispatchSubcommand(
      "clients", args,
      {{"list", ClientsList}, {"revoke", ClientsRevoke}, {"unquarantine", ClientsUnquarantine}},
      out, err);
}

}  // namespace wxp::admin
