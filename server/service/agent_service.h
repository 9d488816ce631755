// AgentService (proto/wxp.proto) over the Coordinator and the blob store: the request's own
// checks (request_checks.h; a request that does not parse is refused the same way, see
// parsing_service.h), role check, then translation. Blobs move in chunks of at most
// `max_chunk_bytes`; the blob streams count against the server-wide stream limit.
#ifndef WXP_SERVER_SERVICE_AGENT_SERVICE_H_
#define WXP_SERVER_SERVICE_AGENT_SERVICE_H_

#include "proto/wxp.grpc.pb.h"
#include "server/blobs/disk_blobs.h"
#include "server/coordinator/coordinator.h"
#include "server/service/gatekeeper.h"
#include "server/service/parsing_service.h"
#include "server/service/service_observer.h"
#include "server/service/stream_limiter.h"

namespace wxp::server {

class AgentServiceImpl final : public ParsingService {
 public:
  // Nothing is owned; everything must outlive the service. `streams` (optional: no limit
  // when null) is shared with the admin service: the limit is server-wide. `observer`
  // (optional) hears of blob bytes and report outcomes.
  AgentServiceImpl(Coordinator* coordinator, DiskBlobs* blobs, Gatekeeper* gate, Clock* clock,
                   size_t max_chunk_bytes = 4 << 20, StreamLimiter* streams = nullptr,
                   ServiceObserver* observer = nullptr);

  grpc::Status UploadBlob(grpc::ServerContext* ctx,
                          grpc::ServerReader<Parsed<wxp::v1::UploadBlobRequest>>* reader,
                          wxp::v1::UploadBlobResponse* resp);
  grpc::Status GetUploadOffset(grpc::ServerContext* ctx, const wxp::v1::GetUploadOffsetRequest* req,
                               wxp::v1::GetUploadOffsetResponse* resp);
  grpc::Status DownloadBlob(grpc::ServerContext* ctx, const wxp::v1::DownloadBlobRequest* req,
                            grpc::ServerWriter<wxp::v1::DownloadBlobResponse>* writer);

  grpc::Status Join(grpc::ServerContext* ctx, const wxp::v1::JoinRequest* req,
                    wxp::v1::JoinResponse* resp);
  grpc::Status GetAssignment(grpc::ServerContext* ctx, const wxp::v1::GetAssignmentRequest* req,
                             wxp::v1::GetAssignmentResponse* resp);
  // The calls of every iteration: on the callback API, answered once the coordinator's
  // update is durable without a thread parked per call (Coordinator::ReportAsync). Admission
  // still reads the store, and writes it on a client's first call and once a minute after
  // (gatekeeper.h), on gRPC's callback thread.
  void GetTargets(grpc::CallbackServerContext* ctx, const wxp::v1::GetTargetsRequest* req,
                  wxp::v1::GetTargetsResponse* resp, Responder respond);
  void Report(grpc::CallbackServerContext* ctx, const wxp::v1::ReportRequest* req,
              wxp::v1::ReportResponse* resp, Responder respond);
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const wxp::v1::HeartbeatRequest* req,
                         wxp::v1::HeartbeatResponse* resp);
  grpc::Status PullAuditTask(grpc::ServerContext* ctx, const wxp::v1::PullAuditTaskRequest* req,
                             wxp::v1::PullAuditTaskResponse* resp);
  grpc::Status ReportAudit(grpc::ServerContext* ctx, const wxp::v1::ReportAuditRequest* req,
                           wxp::v1::ReportAuditResponse* resp);

 private:
  Coordinator* c_;
  DiskBlobs* blobs_;
  Gatekeeper* gate_;
  Clock* clock_;
  size_t max_chunk_bytes_;
  StreamLimiter* streams_;
  ServiceObserver* observer_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_AGENT_SERVICE_H_
