// AdminService (proto/wxp.proto) over the Coordinator: the request's own checks
// (request_checks.h; a request that does not parse is refused the same way, see
// parsing_service.h), role check, then translation. ExportBest counts against the
// server-wide stream limit.
#ifndef WXP_SERVER_SERVICE_ADMIN_SERVICE_H_
#define WXP_SERVER_SERVICE_ADMIN_SERVICE_H_

#include "absl/status/statusor.h"
#include "proto/wxp.grpc.pb.h"
#include "server/coordinator/coordinator.h"
#include "server/service/gatekeeper.h"
#include "server/service/parsing_service.h"
#include "server/service/service_observer.h"
#include "server/service/stream_limiter.h"

namespace wxp::server {

class AdminServiceImpl final : public ParsingService {
 public:
  // Nothing is owned; everything must outlive the service. `streams` (optional: no limit
  // when null) is shared with the agent service: the limit is server-wide. `observer`
  // (optional) hears of the exported bytes.
  AdminServiceImpl(Coordinator* coordinator, store::SwarmStore* store, PositionBlobs* blobs,
                   Gatekeeper* gate, Clock* clock, StreamLimiter* streams = nullptr,
                   ServiceObserver* observer = nullptr);

  grpc::Status CreateSwarm(grpc::ServerContext* ctx, const wxp::v1::CreateSwarmRequest* req,
                           wxp::v1::CreateSwarmResponse* resp);
  grpc::Status ListSwarms(grpc::ServerContext* ctx, const wxp::v1::ListSwarmsRequest* req,
                          wxp::v1::ListSwarmsResponse* resp);
  grpc::Status GetSwarmStatus(grpc::ServerContext* ctx, const wxp::v1::GetSwarmStatusRequest* req,
                              wxp::v1::SwarmStatus* resp);
  grpc::Status ListParticles(grpc::ServerContext* ctx, const wxp::v1::ListParticlesRequest* req,
                             wxp::v1::ListParticlesResponse* resp);
  grpc::Status GetHistory(grpc::ServerContext* ctx, const wxp::v1::GetHistoryRequest* req,
                          wxp::v1::GetHistoryResponse* resp);
  grpc::Status GetUtilityWeights(grpc::ServerContext* ctx,
                                 const wxp::v1::GetUtilityWeightsRequest* req,
                                 wxp::v1::UtilityWeights* resp);
  grpc::Status SetUtilityWeights(grpc::ServerContext* ctx,
                                 const wxp::v1::SetUtilityWeightsRequest* req,
                                 wxp::v1::UtilityWeights* resp);
  grpc::Status PauseSwarm(grpc::ServerContext* ctx, const wxp::v1::SwarmControlRequest* req,
                          wxp::v1::SwarmStatus* resp);
  grpc::Status ResumeSwarm(grpc::ServerContext* ctx, const wxp::v1::SwarmControlRequest* req,
                           wxp::v1::SwarmStatus* resp);
  grpc::Status StopSwarm(grpc::ServerContext* ctx, const wxp::v1::SwarmControlRequest* req,
                         wxp::v1::SwarmStatus* resp);
  grpc::Status ExportBest(grpc::ServerContext* ctx, const wxp::v1::ExportBestRequest* req,
                          grpc::ServerWriter<wxp::v1::ExportChunk>* writer);
  grpc::Status ListClients(grpc::ServerContext* ctx, const wxp::v1::ListClientsRequest* req,
                           wxp::v1::ListClientsResponse* resp);
  grpc::Status UnquarantineClient(grpc::ServerContext* ctx,
                                  const wxp::v1::UnquarantineClientRequest* req,
                                  wxp::v1::ClientInfo* resp);
  grpc::Status RevokeClient(grpc::ServerContext* ctx, const wxp::v1::RevokeClientRequest* req,
                            wxp::v1::ClientInfo* resp);

 private:
  Coordinator* c_;
  store::SwarmStore* store_;
  PositionBlobs* blobs_;
  Gatekeeper* gate_;
  Clock* clock_;
  StreamLimiter* streams_;
  ServiceObserver* observer_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_ADMIN_SERVICE_H_
