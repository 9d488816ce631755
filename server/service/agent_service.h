// AgentService (proto/wxp.proto) over the Coordinator: role check, then translation.
// Blob transfer RPCs (UploadBlob, GetUploadOffset, DownloadBlob) arrive with the on-disk
// blob store; until then they answer UNIMPLEMENTED.
#ifndef WXP_SERVER_SERVICE_AGENT_SERVICE_H_
#define WXP_SERVER_SERVICE_AGENT_SERVICE_H_

#include "proto/wxp.grpc.pb.h"
#include "server/coordinator/coordinator.h"
#include "server/service/gatekeeper.h"

namespace wxp::server {

class AgentServiceImpl final : public wxp::v1::AgentService::Service {
 public:
  // Nothing is owned; everything must outlive the service.
  AgentServiceImpl(Coordinator* coordinator, Gatekeeper* gate, Clock* clock)
      : c_(coordinator), gate_(gate), clock_(clock) {}

  grpc::Status Join(grpc::ServerContext* ctx, const wxp::v1::JoinRequest* req,
                    wxp::v1::JoinResponse* resp) override;
  grpc::Status GetAssignment(grpc::ServerContext* ctx, const wxp::v1::GetAssignmentRequest* req,
                             wxp::v1::GetAssignmentResponse* resp) override;
  grpc::Status GetTargets(grpc::ServerContext* ctx, const wxp::v1::GetTargetsRequest* req,
                          wxp::v1::GetTargetsResponse* resp) override;
  grpc::Status Report(grpc::ServerContext* ctx, const wxp::v1::ReportRequest* req,
                      wxp::v1::ReportResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const wxp::v1::HeartbeatRequest* req,
                         wxp::v1::HeartbeatResponse* resp) override;

 private:
  Coordinator* c_;
  Gatekeeper* gate_;
  Clock* clock_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_AGENT_SERVICE_H_
