#include "server/service/admin_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/grpc_status.h"
#include "common/identity.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "google/protobuf/util/time_util.h"
#include "server/service/request_checks.h"

namespace wxp::server {
namespace {

constexpr Role kAdmins[] = {Role::kAdmin};
constexpr size_t kExportChunkBytes = 1 << 20;

// Runs `body` for an admitted admin; converts every error to its grpc::Status.
template <typename Body>
grpc::Status AsAdmin(Gatekeeper* gate, grpc::ServerContext* ctx, const char* rpc, Body body) {
  absl::StatusOr<Caller> caller = gate->Admit(*ctx, kAdmins, rpc);
  if (!caller.ok()) return ToGrpc(caller.status());
  return ToGrpc(body(*caller));
}

template <typename T>
absl::Status Assign(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return result.status();
  *out = *std::move(result);
  return absl::OkStatus();
}

// Streams one file of the exported PEFT directory.
bool WriteFile(grpc::ServerWriter<wxp::v1::ExportChunk>* writer, const std::string& path,
               const std::string& bytes, const Coordinator::BestPosition& best) {
  const std::string digest = Sha256Hex(bytes);
  size_t offset = 0;
  do {
    wxp::v1::ExportChunk chunk;
    chunk.set_path(path);
    chunk.set_file_size(bytes.size());
    chunk.set_utility(best.utility);
    chunk.set_position_blob_id(best.position_blob_id);
    const size_t n = std::min(kExportChunkBytes, bytes.size() - offset);
    chunk.mutable_chunk()->set_offset(offset);
    chunk.mutable_chunk()->set_data(bytes.substr(offset, n));
    offset += n;
    if (offset == bytes.size()) chunk.set_sha256(digest);
    if (!writer->Write(chunk)) return false;
  } while (offset < bytes.size());
  return true;
}

// Milliseconds since the epoch as a Timestamp (ClientInfo's times).
google::protobuf::Timestamp Millis(int64_t ms) {
  return google::protobuf::util::TimeUtil::MillisecondsToTimestamp(ms);
}

void FillClient(const store::ClientRecord& c, wxp::v1::ClientInfo* info) {
  info->set_identity(c.client.name);
  info->set_role(std::string(RoleName(c.client.role)));
  *info->mutable_first_seen() = Millis(c.first_seen_ms);
  *info->mutable_last_seen() = Millis(c.last_seen_ms);
  info->set_revoked(c.revoked);
  info->set_audits_confirmed(c.audits_confirmed);
  info->set_audits_disputed(c.audits_disputed);
  info->set_strikes(c.strikes);
  const int audited = c.audits_confirmed + c.audits_disputed;
  info->set_reputation(audited == 0 ? 1.0 : static_cast<double>(c.audits_confirmed) / audited);
  info->set_quarantined(c.quarantined);
}

}  // namespace

AdminServiceImpl::AdminServiceImpl(Coordinator* coordinator, store::SwarmStore* store,
                                   PositionBlobs* blobs, Gatekeeper* gate, Clock* clock,
                                   StreamLimiter* streams, ServiceObserver* observer)
    : ParsingService(wxp::v1::AdminService::service_full_name()),
      c_(coordinator),
      store_(store),
      blobs_(blobs),
      gate_(gate),
      clock_(clock),
      streams_(streams),
      observer_(observer) {
  AddUnary("CreateSwarm", this, &AdminServiceImpl::CreateSwarm);
  AddUnary("ListSwarms", this, &AdminServiceImpl::ListSwarms);
  AddUnary("GetSwarmStatus", this, &AdminServiceImpl::GetSwarmStatus);
  AddUnary("ListParticles", this, &AdminServiceImpl::ListParticles);
  AddUnary("GetHistory", this, &AdminServiceImpl::GetHistory);
  AddUnary("SetUtilityWeights", this, &AdminServiceImpl::SetUtilityWeights);
  AddUnary("GetUtilityWeights", this, &AdminServiceImpl::GetUtilityWeights);
  AddUnary("PauseSwarm", this, &AdminServiceImpl::PauseSwarm);
  AddUnary("ResumeSwarm", this, &AdminServiceImpl::ResumeSwarm);
  AddUnary("StopSwarm", this, &AdminServiceImpl::StopSwarm);
  AddServerStreaming("ExportBest", this, &AdminServiceImpl::ExportBest);
  AddUnary("ListClients", this, &AdminServiceImpl::ListClients);
  AddUnary("RevokeClient", this, &AdminServiceImpl::RevokeClient);
  AddUnary("UnquarantineClient", this, &AdminServiceImpl::UnquarantineClient);
}

grpc::Status AdminServiceImpl::CreateSwarm(grpc::ServerContext* ctx,
                                           const wxp::v1::CreateSwarmRequest* req,
                                           wxp::v1::CreateSwarmResponse* resp) {
  return AsAdmin(gate_, ctx, "CreateSwarm", [&](const Caller& caller) {
    if (absl::Status s = CheckCreateSwarmRequest(*req); !s.ok()) return s;
    return Assign(c_->CreateSwarm(caller, req->spec()), resp);
  });
}

grpc::Status AdminServiceImpl::ListSwarms(grpc::ServerContext* ctx,
                                          const wxp::v1::ListSwarmsRequest*,
                                          wxp::v1::ListSwarmsResponse* resp) {
  return AsAdmin(gate_, ctx, "ListSwarms",
                 [&](const Caller&) { return Assign(c_->ListSwarms(), resp); });
}

grpc::Status AdminServiceImpl::GetSwarmStatus(grpc::ServerContext* ctx,
                                              const wxp::v1::GetSwarmStatusRequest* req,
                                              wxp::v1::SwarmStatus* resp) {
  return AsAdmin(gate_, ctx, "GetSwarmStatus",
                 [&](const Caller&) { return Assign(c_->GetSwarmStatus(req->swarm()), resp); });
}

grpc::Status AdminServiceImpl::ListParticles(grpc::ServerContext* ctx,
                                             const wxp::v1::ListParticlesRequest* req,
                                             wxp::v1::ListParticlesResponse* resp) {
  return AsAdmin(gate_, ctx, "ListParticles",
                 [&](const Caller&) { return Assign(c_->ListParticles(req->swarm()), resp); });
}

grpc::Status AdminServiceImpl::GetHistory(grpc::ServerContext* ctx,
                                          const wxp::v1::GetHistoryRequest* req,
                                          wxp::v1::GetHistoryResponse* resp) {
  return AsAdmin(gate_, ctx, "GetHistory",
                 [&](const Caller&) { return Assign(c_->GetHistory(req->swarm()), resp); });
}

grpc::Status AdminServiceImpl::GetUtilityWeights(grpc::ServerContext* ctx,
                                                 const wxp::v1::GetUtilityWeightsRequest* req,
                                                 wxp::v1::UtilityWeights* resp) {
  return AsAdmin(gate_, ctx, "GetUtilityWeights",
                 [&](const Caller&) { return Assign(c_->GetUtilityWeights(req->swarm()), resp); });
}

grpc::Status AdminServiceImpl::SetUtilityWeights(grpc::ServerContext* ctx,
                                                 const wxp::v1::SetUtilityWeightsRequest* req,
                                                 wxp::v1::UtilityWeights* resp) {
  return AsAdmin(gate_, ctx, "SetUtilityWeights", [&](const Caller& caller) {
    if (absl::Status s = CheckSetUtilityWeightsRequest(*req); !s.ok()) return s;
    const std::map<std::string, double> weights(req->weights().begin(), req->weights().end());
    return Assign(c_->SetUtilityWeights(caller, req->swarm(), weights, req->after_iteration()),
                  resp);
  });
}

grpc::Status AdminServiceImpl::PauseSwarm(grpc::ServerContext* ctx,
                                          const wxp::v1::SwarmControlRequest* req,
                                          wxp::v1::SwarmStatus* resp) {
  return AsAdmin(gate_, ctx, "PauseSwarm", [&](const Caller& caller) {
    if (absl::Status s = CheckSwarmControlRequest(*req); !s.ok()) return s;
    return Assign(c_->Pause(caller, req->swarm(), req->reason()), resp);
  });
}

grpc::Status AdminServiceImpl::ResumeSwarm(grpc::ServerContext* ctx,
                                           const wxp::v1::SwarmControlRequest* req,
                                           wxp::v1::SwarmStatus* resp) {
  return AsAdmin(gate_, ctx, "ResumeSwarm", [&](const Caller& caller) {
    if (absl::Status s = CheckSwarmControlRequest(*req); !s.ok()) return s;
    return Assign(c_->Resume(caller, req->swarm(), req->reason()), resp);
  });
}

grpc::Status AdminServiceImpl::StopSwarm(grpc::ServerContext* ctx,
                                         const wxp::v1::SwarmControlRequest* req,
                                         wxp::v1::SwarmStatus* resp) {
  return AsAdmin(gate_, ctx, "StopSwarm", [&](const Caller& caller) {
    if (absl::Status s = CheckSwarmControlRequest(*req); !s.ok()) return s;
    return Assign(c_->Stop(caller, req->swarm(), req->reason()), resp);
  });
}

grpc::Status AdminServiceImpl::ExportBest(grpc::ServerContext* ctx,
                                          const wxp::v1::ExportBestRequest* req,
                                          grpc::ServerWriter<wxp::v1::ExportChunk>* writer) {
  return AsAdmin(gate_, ctx, "ExportBest", [&](const Caller&) -> absl::Status {
    absl::StatusOr<std::optional<StreamLimiter::Slot>> slot = AcquireStream(streams_, "ExportBest");
    if (!slot.ok()) return slot.status();
    absl::StatusOr<Coordinator::BestPosition> best = c_->Best(req->swarm());
    if (!best.ok()) return best.status();
    absl::StatusOr<std::string> bytes = blobs_->ReadAll(best->blob_id);
    if (!bytes.ok()) return bytes.status();
    if (Sha256Hex(*bytes) != best->blob_id) {
      return absl::DataLossError(absl::StrCat("stored blob ", best->blob_id, " is corrupt"));
    }
    if (!best->export_file.empty()) {
      if (!WriteFile(writer, best->export_file, *bytes, *best)) {
        return absl::CancelledError("the client went away during the export");
      }
      return absl::OkStatus();
    }
    std::string config = best->config_json;
    if (config.empty()) {
      absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(*bytes);
      if (!file.ok()) return file.status();
      config = InferLoraConfig(AdapterFromSafetensors(*file).schema);
    }
    if (!WriteFile(writer, kPeftWeightsFile, *bytes, *best) ||
        !WriteFile(writer, kPeftConfigFile, config, *best)) {
      return absl::CancelledError("the client went away during the export");
    }
    if (observer_ != nullptr) observer_->BlobBytesOut(bytes->size());
    return absl::OkStatus();
  });
}

grpc::Status AdminServiceImpl::ListClients(grpc::ServerContext* ctx,
                                           const wxp::v1::ListClientsRequest*,
                                           wxp::v1::ListClientsResponse* resp) {
  return AsAdmin(gate_, ctx, "ListClients", [&](const Caller&) -> absl::Status {
    absl::StatusOr<std::vector<store::ClientRecord>> clients = store_->ListClients();
    if (!clients.ok()) return clients.status();
    for (const auto& c : *clients) FillClient(c, resp->add_clients());
    return absl::OkStatus();
  });
}

grpc::Status AdminServiceImpl::RevokeClient(grpc::ServerContext* ctx,
                                            const wxp::v1::RevokeClientRequest* req,
                                            wxp::v1::ClientInfo* resp) {
  return AsAdmin(gate_, ctx, "RevokeClient", [&](const Caller& caller) -> absl::Status {
    if (req->identity() == caller.name) {
      return absl::InvalidArgumentError("an admin cannot revoke its own identity");
    }
    absl::Status s = store_->SetRevoked(
        req->identity(), true,
        {absl::ToUnixMillis(clock_->Now()), caller.name, "revoke client", "", req->identity()});
    if (!s.ok()) return s;
    absl::StatusOr<store::ClientRecord> c = store_->GetClient(req->identity());
    if (!c.ok()) return c.status();
    FillClient(*c, resp);
    return absl::OkStatus();
  });
}

grpc::Status AdminServiceImpl::UnquarantineClient(grpc::ServerContext* ctx,
                                                  const wxp::v1::UnquarantineClientRequest* req,
                                                  wxp::v1::ClientInfo* resp) {
  return AsAdmin(gate_, ctx, "UnquarantineClient", [&](const Caller& caller) -> absl::Status {
    if (req->reason().size() > 1024) {
      return absl::InvalidArgumentError("reason must be at most 1024 bytes");
    }
    absl::Status s = store_->LiftQuarantine(
        req->identity(),
        {absl::ToUnixMillis(clock_->Now()), caller.name, "unquarantine client", "",
         absl::StrCat(req->identity(), req->reason().empty() ? "" : ": ", req->reason())});
    if (!s.ok()) return s;
    absl::StatusOr<store::ClientRecord> c = store_->GetClient(req->identity());
    if (!c.ok()) return c.status();
    FillClient(*c, resp);
    return absl::OkStatus();
  });
}

}  // namespace wxp::server
