#include "client/agent/agent_metrics.h"

#include <string>

namespace wxp::agent {
namespace {

// From the synthetic evaluator's milliseconds to an hour-long benchmark run.
const std::vector<double> kEvaluationSecondsBuckets = {0.01, 0.05, 0.1, 0.5, 1,   5,    10,
                                                       30,   60,   120, 300, 600, 1800, 3600};

}  // namespace

AgentMetrics::AgentMetrics()
    : evaluations_(registry_.AddCounter("wxp_agent_evaluations_total",
                                        "Candidates evaluated locally, by result (ok, failed).",
                                        {"result"})),
      evaluation_seconds_(registry_
                              .AddHistogram("wxp_agent_evaluation_duration_seconds",
                                            "Time the local evaluator took per candidate.",
                                            kEvaluationSecondsBuckets)
                              .Get()),
      uploaded_(registry_
                    .AddCounter("wxp_agent_uploaded_bytes_total",
                                "Blob bytes uploaded to the server (experts included).")
                    .Get()),
      downloaded_(registry_
                      .AddCounter("wxp_agent_downloaded_bytes_total",
                                  "Blob bytes downloaded from the server.")
                      .Get()),
      retries_(registry_.AddCounter("wxp_agent_retries_total",
                                    "Calls retried after a retryable failure, by call and code.",
                                    {"call", "code"})),
      reports_(registry_
                   .AddCounter("wxp_agent_reports_acknowledged_total",
                               "Reports the server acknowledged (initial evaluations included).")
                   .Get()) {}

void AgentMetrics::EvaluationDone(double seconds, bool failed) {
  evaluations_.WithLabels({failed ? "failed" : "ok"}).Increment();
  evaluation_seconds_.Observe(seconds);
}

void AgentMetrics::BytesUploaded(uint64_t bytes) {
  uploaded_.Increment(static_cast<double>(bytes));
}

void AgentMetrics::BytesDownloaded(uint64_t bytes) {
  downloaded_.Increment(static_cast<double>(bytes));
}

void AgentMetrics::Retrying(absl::string_view call, const absl::Status& error) {
  retries_.WithLabels({std::string(call), absl::StatusCodeToString(error.code())}).Increment();
}

void AgentMetrics::ReportAcknowledged() { reports_.Increment(); }

}  // namespace wxp::agent
