// AgentService (proto/wxp.proto) over the Coordinator and the blob store: role check, then
// translation. Blobs move in chunks of at most `max_chunk_bytes`.
#ifndef WXP_SERVER_SERVICE_AGENT_SERVICE_H_
#define WXP_SERVER_SERVICE_AGENT_SERVICE_H_

#include "proto/wxp.grpc.pb.h"
#include "server/blobs/disk_blobs.h"
#include "server/coordinator/coordinator.h"
#include "server/service/gatekeeper.h"

namespace wxp::server {

class AgentServiceImpl final : public wxp::v1::AgentService::Service {
 public:
  // Nothing is owned; everything must outlive the service.
  AgentServiceImpl(Coordinator* coordinator, DiskBlobs* blobs, Gatekeeper* gate, Clock* clock,
                   size_t max_chunk_bytes = 4 << 20)
      : c_(coordinator), blobs_(blobs), gate_(gate), clock_(clock),
        max_chunk_bytes_(max_chunk_bytes) {}

  grpc::Status UploadBlob(grpc::ServerContext* ctx,
                          grpc::ServerReader<wxp::v1::UploadBlobRequest>* reader,
                          wxp::v1::UploadBlobResponse* resp) override;
  grpc::Status GetUploadOffset(grpc::ServerContext* ctx,
                               const wxp::v1::GetUploadOffsetRequest* req,
                               wxp::v1::GetUploadOffsetResponse* resp) override;
  grpc::Status DownloadBlob(grpc::ServerContext* ctx, const wxp::v1::DownloadBlobRequest* req,
                            grpc::ServerWriter<wxp::v1::DownloadBlobResponse>* writer) override;

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
  DiskBlobs* blobs_;
  Gatekeeper* gate_;
  Clock* clock_;
  size_t max_chunk_bytes_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_AGENT_SERVICE_H_
