// What the services tell an observer (the server's metrics, server/app/server_metrics.h)
// about the traffic they handle. The services do not know what it does with it; every
// method may be called from many RPC threads at once and must be quick.
#ifndef WXP_SERVER_SERVICE_SERVICE_OBSERVER_H_
#define WXP_SERVER_SERVICE_SERVICE_OBSERVER_H_

#include <cstdint>

#include "grpcpp/support/status.h"
#include "proto/wxp.pb.h"

namespace wxp::server {

class ServiceObserver {
 public:
  virtual ~ServiceObserver() = default;
  // Blob payload bytes stored from an UploadBlob stream (per chunk appended).
  virtual void BlobBytesIn(uint64_t bytes) = 0;
  // Blob payload bytes sent by DownloadBlob (per chunk written) and ExportBest (the
  // adapter's weights, once sent).
  virtual void BlobBytesOut(uint64_t bytes) = 0;
  // Every Report call's outcome: `request` as received, `status` as answered; `response` is
  // meaningful when OK.
  virtual void ReportAnswered(const wxp::v1::ReportRequest& request, const grpc::Status& status,
                              const wxp::v1::ReportResponse& response) = 0;
};

}  // namespace wxp::server

#endif  // WXP_SERVER_SERVICE_SERVICE_OBSERVER_H_
