#include "server/service/agent_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "google/protobuf/util/time_util.h"
#include "server/service/request_checks.h"

namespace wxp::server {
namespace {

constexpr Role kAgents[] = {Role::kAgent};
// Blob transfer: agents upload positions, admins upload experts and export.
constexpr Role kAgentsAndAdmins[] = {Role::kAgent, Role::kAdmin};
// Downloads: auditors fetch the positions they re-evaluate (SPEC 12).
constexpr Role kDownloaders[] = {Role::kAgent, Role::kAdmin, Role::kAuditor};
constexpr Role kAuditors[] = {Role::kAuditor};

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return ToGrpc(result.status());
  *out = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

AgentServiceImpl::AgentServiceImpl(Coordinator* coordinator, DiskBlobs* blobs, Gatekeeper* gate,
                                   Clock* clock, size_t max_chunk_bytes, StreamLimiter* streams,
                                   ServiceObserver* observer)
    : ParsingService(wxp::v1::AgentService::service_full_name()),
      c_(coordinator),
      blobs_(blobs),
      gate_(gate),
      clock_(clock),
      max_chunk_bytes_(max_chunk_bytes),
      streams_(streams),
      observer_(observer) {
  AddClientStreaming("UploadBlob", this, &AgentServiceImpl::UploadBlob);
  AddUnary("GetUploadOffset", this, &AgentServiceImpl::GetUploadOffset);
  AddServerStreaming("DownloadBlob", this, &AgentServiceImpl::DownloadBlob);
  AddUnary("Join", this, &AgentServiceImpl::Join);
  AddUnary("GetAssignment", this, &AgentServiceImpl::GetAssignment);
  AddCallbackUnary("GetTargets", this, &AgentServiceImpl::GetTargets);
  AddCallbackUnary("Report", this, &AgentServiceImpl::Report);
  AddUnary("Heartbeat", this, &AgentServiceImpl::Heartbeat);
  AddUnary("PullAuditTask", this, &AgentServiceImpl::PullAuditTask);
  AddUnary("ReportAudit", this, &AgentServiceImpl::ReportAudit);
}

grpc::Status AgentServiceImpl::PullAuditTask(grpc::ServerContext* ctx,
                                             const wxp::v1::PullAuditTaskRequest* req,
                                             wxp::v1::PullAuditTaskResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAuditors, "PullAuditTask");
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(c_->PullAuditTask(*caller, *req), resp);
}

grpc::Status AgentServiceImpl::ReportAudit(grpc::ServerContext* ctx,
                                           const wxp::v1::ReportAuditRequest* req,
                                           wxp::v1::ReportAuditResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAuditors, "ReportAudit");
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(c_->ReportAudit(*caller, *req), resp);
}

grpc::Status AgentServiceImpl::Join(grpc::ServerContext* ctx, const wxp::v1::JoinRequest* req,
                                    wxp::v1::JoinResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgents, "Join");
  if (!caller.ok()) return ToGrpc(caller.status());
  if (absl::Status s = CheckJoinRequest(*req); !s.ok()) return ToGrpc(s);
  return Reply(c_->Join(*caller, *req), resp);
}

grpc::Status AgentServiceImpl::GetAssignment(grpc::ServerContext* ctx,
                                             const wxp::v1::GetAssignmentRequest* req,
                                             wxp::v1::GetAssignmentResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgents, "GetAssignment");
  if (!caller.ok()) return ToGrpc(caller.status());
  return Reply(c_->GetAssignment(*caller, req->swarm()), resp);
}

void AgentServiceImpl::GetTargets(grpc::CallbackServerContext* ctx,
                                  const wxp::v1::GetTargetsRequest* req,
                                  wxp::v1::GetTargetsResponse* resp, Responder respond) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgents, "GetTargets");
  if (!caller.ok()) return std::move(respond)(ToGrpc(caller.status()));
  c_->GetTargetsAsync(
      *caller, *req,
      [resp, respond = std::move(respond)](absl::StatusOr<wxp::v1::GetTargetsResponse> r) mutable {
        std::move(respond)(Reply(std::move(r), resp));
      });
}

void AgentServiceImpl::Report(grpc::CallbackServerContext* ctx, const wxp::v1::ReportRequest* req,
                              wxp::v1::ReportResponse* resp, Responder respond) {
  auto answer = [this, req, resp, respond = std::move(respond)](grpc::Status status) mutable {
    if (observer_ != nullptr) observer_->ReportAnswered(*req, status, *resp);
    std::move(respond)(std::move(status));
  };
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgents, "Report");
  if (!caller.ok()) return answer(ToGrpc(caller.status()));
  if (absl::Status s = CheckReportRequest(*req); !s.ok()) return answer(ToGrpc(s));
  c_->ReportAsync(
      *caller, *req,
      [resp, answer = std::move(answer)](absl::StatusOr<wxp::v1::ReportResponse> r) mutable {
        answer(Reply(std::move(r), resp));
      });
}

grpc::Status AgentServiceImpl::Heartbeat(grpc::ServerContext* ctx,
                                         const wxp::v1::HeartbeatRequest* req,
                                         wxp::v1::HeartbeatResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgents, "Heartbeat");
  if (!caller.ok()) return ToGrpc(caller.status());
  absl::StatusOr<wxp::v1::SwarmStatus> status = c_->Heartbeat(*caller, req->swarm());
  if (!status.ok()) return ToGrpc(status.status());
  resp->set_swarm_state(status->state());
  *resp->mutable_server_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(clock_->Now()));
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::UploadBlob(
    grpc::ServerContext* ctx, grpc::ServerReader<Parsed<wxp::v1::UploadBlobRequest>>* reader,
    wxp::v1::UploadBlobResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgentsAndAdmins, "UploadBlob");
  if (!caller.ok()) return ToGrpc(caller.status());
  absl::StatusOr<std::optional<StreamLimiter::Slot>> slot = AcquireStream(streams_, "UploadBlob");
  if (!slot.ok()) return ToGrpc(slot.status());
  Parsed<wxp::v1::UploadBlobRequest> parsed;
  if (!reader->Read(&parsed)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "an upload starts with a header message");
  }
  if (!parsed.error.ok()) return ToGrpc(parsed.error);
  if (!parsed.message.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "an upload starts with a header message");
  }
  const wxp::v1::UploadHeader header = parsed.message.header();
  if (absl::Status s = CheckUploadHeader(header); !s.ok()) return ToGrpc(s);
  // A position of a swarm another replica leads goes there: only the leader records it.
  if (absl::Status s = c_->CheckLeads(header.swarm()); !s.ok()) return ToGrpc(s);
  absl::StatusOr<DiskBlobs::UploadState> state =
      blobs_->BeginUpload(header.blob_id(), header.total_size(), header.offset());
  if (!state.ok()) return ToGrpc(state.status());
  resp->set_blob_id(header.blob_id());
  if (state->already_present) {
    // Content addressing: nothing to store again. The server may have died between storing
    // the blob and recording it, so record it now (idempotent).
    if (absl::Status s = c_->OnBlobStored(header.blob_id()); !s.ok()) return ToGrpc(s);
    resp->set_committed_bytes(state->committed);
    resp->set_already_present(true);
    return grpc::Status::OK;
  }
  uint64_t committed = state->committed;
  while (reader->Read(&parsed)) {
    if (!parsed.error.ok()) {
      blobs_->Abandon(header.blob_id());  // the bytes so far stay for a resume
      return ToGrpc(parsed.error);
    }
    const wxp::v1::UploadBlobRequest& msg = parsed.message;
    if (!msg.has_chunk()) {
      blobs_->Abandon(header.blob_id());
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a second header in one upload");
    }
    if (msg.chunk().data().size() > max_chunk_bytes_) {
      blobs_->Abandon(header.blob_id());
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("chunk of ", msg.chunk().data().size(),
                                       " bytes is over the limit of ", max_chunk_bytes_));
    }
    absl::StatusOr<uint64_t> c =
        blobs_->Append(header.blob_id(), msg.chunk().offset(), msg.chunk().data());
    if (!c.ok()) {
      blobs_->Abandon(header.blob_id());
      return ToGrpc(c.status());
    }
    if (observer_ != nullptr) observer_->BlobBytesIn(msg.chunk().data().size());
    committed = *c;
  }
  if (committed != header.total_size()) {
    blobs_->Abandon(header.blob_id());  // the partial bytes stay for a resume
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("upload ended at ", committed, " of ", header.total_size(),
                                     " bytes; resume from there"));
  }
  if (absl::Status s = blobs_->Finish(header.blob_id()); !s.ok()) return ToGrpc(s);
  if (absl::Status s = c_->OnBlobStored(header.blob_id()); !s.ok()) return ToGrpc(s);
  resp->set_committed_bytes(committed);
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::GetUploadOffset(grpc::ServerContext* ctx,
                                               const wxp::v1::GetUploadOffsetRequest* req,
                                               wxp::v1::GetUploadOffsetResponse* resp) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kAgentsAndAdmins, "GetUploadOffset");
  if (!caller.ok()) return ToGrpc(caller.status());
  absl::StatusOr<DiskBlobs::UploadState> state = blobs_->UploadOffset(req->blob_id());
  if (!state.ok()) return ToGrpc(state.status());
  resp->set_committed_bytes(state->committed);
  resp->set_complete(state->already_present);
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::DownloadBlob(
    grpc::ServerContext* ctx, const wxp::v1::DownloadBlobRequest* req,
    grpc::ServerWriter<wxp::v1::DownloadBlobResponse>* writer) {
  absl::StatusOr<Caller> caller = gate_->Admit(*ctx, kDownloaders, "DownloadBlob");
  if (!caller.ok()) return ToGrpc(caller.status());
  absl::StatusOr<std::optional<StreamLimiter::Slot>> slot = AcquireStream(streams_, "DownloadBlob");
  if (!slot.ok()) return ToGrpc(slot.status());
  absl::StatusOr<uint64_t> size = blobs_->Size(req->blob_id());
  if (!size.ok()) return ToGrpc(size.status());
  uint64_t offset = req->offset();
  if (offset > *size) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrCat("offset ", offset, " is past the end (", *size, " bytes)"));
  }
  const size_t chunk = std::min<size_t>(max_chunk_bytes_, 1 << 20);
  // One message for the whole stream, each chunk read into its buffer in place.
  wxp::v1::DownloadBlobResponse msg;
  msg.set_total_size(*size);
  do {
    msg.mutable_chunk()->set_offset(offset);
    if (absl::Status s =
            blobs_->ReadInto(req->blob_id(), offset, chunk, msg.mutable_chunk()->mutable_data());
        !s.ok()) {
      return ToGrpc(s);
    }
    offset += msg.chunk().data().size();
    if (!writer->Write(msg)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
    if (observer_ != nullptr) observer_->BlobBytesOut(msg.chunk().data().size());
  } while (offset < *size);
  return grpc::Status::OK;
}

}  // namespace wxp::server
