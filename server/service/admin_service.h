// AdminService (proto/wxp.proto) over the Coordinator: role check, then translation.
#ifndef WXP_SERVER_SERVICE_ADMIN_SERVICE_H_
#define WXP_SERVER_SERVICE_ADMIN_SERVICE_H_

#include "absl/status/statusor.h"
#include "proto/wxp.grpc.pb.h"
#include "server/coordinator/coordinator.h"
#include "server/service/gatekeeper.h"

namespace wxp::server {

class AdminServiceImpl final : public wxp::v1::AdminService::Service {
 public:
  // Nothing is owned; everything must outlive the service.
  AdminServiceImpl(Coordinator* coordinator, store::SwarmStore* store, PositionBlobs* blobs,
                   Gatekeeper* gate, Clock* clock)
      : c_(coordinator), store_(store), blobs_(blobs), gate_(gate), clock_(clock) {}

  grpc::Status CreateSwarm(grpc::ServerContext* ctx, const wxp::v1::CreateSwarmRequest* req,
                           wxp::v1::CreateSwarmResponse* resp) override;
  grpc::Status ListSwarms(grpc::ServerContext* ctx, const wxp::v1::ListSwarmsRequest* req,
                          wxp::v1::ListSwarmsResponse* resp) override;
  grpc::Status GetSwarmStatus(grpc::ServerContext* ctx,
                              const wxp::v1::GetSwarmStatusRequest* req,
                              wxp::v1::SwarmStatus* resp) override;
  grpc::Status ListParticles(grpc::ServerContext* ctx, const wxp::v1::ListParticlesRequest* req,
                             wxp::v1::ListParticlesResponse* resp) override;
  grpc::Status GetHistory(grpc::ServerContext* ctx, const wxp::v1::GetHistoryRequest* req,
                          wxp::v1::GetHistoryResponse* resp) override;
  grpc::Status GetUtilityWeights(grpc::ServerContext* ctx,
                                 const wxp::v1::GetUtilityWeightsRequest* req,
                                 wxp::v1::UtilityWeights* resp) override;
  grpc::Status SetUtilityWeights(grpc::ServerContext* ctx,
                                 const wxp::v1::SetUtilityWeightsRequest* req,
                                 wxp::v1::UtilityWeights* resp) override;
  grpc::Status PauseSwarm(grpc::ServerContext* ctx, const wxp::v1::SwarmControlRequest* req,
                          wxp::v1::SwarmStatus* resp) override;
  grpc::Status ResumeSwarm(grpc::ServerContext* ctx, const wxp::v1::SwarmControlRequest* req,
                           wxp::v1::SwarmStatus* resp) override;
  grpc::Status StopSwarm(grpc::ServerContext* ctx, const wxp::v1::SwarmControlRequest* req,
                         wxp::v1::SwarmStatus* resp) override;
  grpc::Status ExportBest(grpc::ServerContext* ctx, const wxp::v1::ExportBestRequest* req,
                          grpc::ServerWriter<wxp::v1::ExportChunk>* writer) override;
  grpc::Status ListClients(grpc::ServerContext* ctx, const wxp::v1::ListClientsRequest* req,
                           wxp::v1::ListClientsResponse* resp) override;
  grpc::Status RevokeClient(grpc::ServerContext* ctx, const wxp::v1::RevokeClientRequest* req,
                            wxp::v1::ClientInfo* resp) override;

 private:
  Coordinator* c_;
  store::SwarmStore* store_;
  PositionBlobs* blobs_;
  Gatekeeper* gate_;
  Clock* clock_;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_ADMIN_SERVICE_H_
