#include "server/service/agent_service.h"

#include "google/protobuf/util/time_util.h"
#include "server/service/grpc_status.h"

namespace wxp::server {
namespace {

constexpr char kAgent[] = "agent";

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return ToGrpc(result.status());
  *out = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status AgentServiceImpl::Join(grpc::ServerContext* ctx, const wxp::v1::JoinRequest* req,
                                    wxp::v1::JoinResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgent, "Join");
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(c_->Join(*caller, *req), resp);
}

grpc::Status AgentServiceImpl::GetAssignment(grpc::ServerContext* ctx,
                                             const wxp::v1::GetAssignmentRequest* req,
                                             wxp::v1::GetAssignmentResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgent, "GetAssignment");
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(c_->GetAssignment(*caller, req->swarm()), resp);
}

grpc::Status AgentServiceImpl::GetTargets(grpc::ServerContext* ctx,
                                          const wxp::v1::GetTargetsRequest* req,
                                          wxp::v1::GetTargetsResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgent, "GetTargets");
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(c_->GetTargets(*caller, *req), resp);
}

grpc::Status AgentServiceImpl::Report(grpc::ServerContext* ctx,
                                      const wxp::v1::ReportRequest* req,
                                      wxp::v1::ReportResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgent, "Report");
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(c_->Report(*caller, *req), resp);
}

grpc::Status AgentServiceImpl::Heartbeat(grpc::ServerContext* ctx,
                                         const wxp::v1::HeartbeatRequest* req,
                                         wxp::v1::HeartbeatResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgent, "Heartbeat");
  if (!caller.ok()) return ToGrpc(caller.status());
  absl::StatusOr<wxp::v1::SwarmStatus> status = c_->GetSwarmStatus(req->swarm());
  if (!status.ok()) return ToGrpc(status.status());
  resp->set_swarm_state(status->state());
  *resp->mutable_server_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
      absl::ToUnixMillis(clock_->Now()));
  return grpc::Status::OK;
}

}  // namespace wxp::server
