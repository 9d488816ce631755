// What the agent tells an observer (wxp-agent's metrics, agent_metrics.h) about its work.
// Called on the agent's thread; every method must be quick.
#ifndef WXP_CLIENT_AGENT_AGENT_OBSERVER_H_
#define WXP_CLIENT_AGENT_AGENT_OBSERVER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace wxp::agent {

class AgentObserver {
 public:
  virtual ~AgentObserver() = default;
  // One candidate evaluated by the local evaluator, and how long it took; `failed`: the
  // evaluator gave no scores (the agent reports a failed evaluation).
  virtual void EvaluationDone(double seconds, bool failed) = 0;
  // Blob payload bytes of one finished upload or download (experts included).
  virtual void BytesUploaded(uint64_t bytes) = 0;
  virtual void BytesDownloaded(uint64_t bytes) = 0;
  // A call failed retryably and is about to be retried after a backoff. `call` is the RPC
  // ("Report", "UploadBlob", ...): a small fixed set.
  virtual void Retrying(absl::string_view call, const absl::Status& error) = 0;
  // The server acknowledged one of this agent's reports (initial evaluations included).
  virtual void ReportAcknowledged() = 0;
};

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_AGENT_OBSERVER_H_
