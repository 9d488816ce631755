// Fuzzes what `wxpctl swarm create --spec FILE` and CreateSwarm do with an operator's spec:
// protobuf text format into wxp.v1.SwarmSpec, the wire, then ResolveSwarmSpec (SPEC 4, 5.2,
// 5.4).
// Checks on an accepted spec:
// - resolving it again succeeds and changes nothing: the server stores the resolved spec
//   and re-resolves it on every restart (Coordinator::Create), so a spec that resolves once
//   but not twice would keep the server from starting;
// - the same holds after the binary round trip the store does;
// - an explicit schema is one Schema::Create accepts (unique names free of tab and newline,
//   so fingerprints are unambiguous; a parameter count that fits int64).
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/spec/swarm_spec.h"
#include "tests/fuzz/fuzz_check.h"

namespace wxp::server {
namespace {

// Parse errors are the expected outcome for most inputs; printing each would drown the run.
class Silent : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
  void AddWarning(int, int, const std::string&) override {}
};

std::string Text(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(m, &out);
  return out;
}

void Fuzz(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  wxp::v1::SwarmSpec parsed;
  Silent silent;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&silent);
  if (!parser.ParseFromString(text, &parsed)) return;
  // What the server receives: wxpctl sends the parsed spec over gRPC, whose protobuf parse
  // refuses what proto3 cannot carry (text-format escapes can put invalid UTF-8 in a string
  // field). Such a spec never reaches ResolveSwarmSpec.
  wxp::v1::SwarmSpec spec;
  if (!spec.ParseFromString(parsed.SerializeAsString())) return;

  absl::StatusOr<ResolvedSpec> resolved = ResolveSwarmSpec(spec, /*seed_if_unset=*/42);
  if (!resolved.ok()) {
    WXP_FUZZ_CHECK(resolved.status().code() == absl::StatusCode::kInvalidArgument,
                   resolved.status().ToString());
    WXP_FUZZ_CHECK(!resolved.status().message().empty(), "refusal without a message");
    return;
  }
  const wxp::v1::SwarmSpec& stored = resolved->spec;
  WXP_FUZZ_CHECK(stored.hyperparameters().has_seed(), "the resolved spec has no seed");

  absl::StatusOr<ResolvedSpec> again = ResolveSwarmSpec(stored, /*seed_if_unset=*/7);
  WXP_FUZZ_CHECK(again.ok(), absl::StrCat("the resolved spec does not resolve again: ",
                                          again.status().ToString(), "\n", Text(stored)));
  WXP_FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(again->spec, stored),
                 absl::StrCat("resolving twice changed the spec:\n", Text(stored), "---\n",
                              Text(again->spec)));
  WXP_FUZZ_CHECK(again->min_experts == resolved->min_experts, "min_experts changed");

  wxp::v1::SwarmSpec reloaded;
  WXP_FUZZ_CHECK(reloaded.ParseFromString(stored.SerializeAsString()), "binary round trip");
  absl::StatusOr<ResolvedSpec> restarted =
      ResolveSwarmSpec(reloaded, reloaded.hyperparameters().seed());
  WXP_FUZZ_CHECK(restarted.ok(), absl::StrCat("the stored spec does not resolve on restart: ",
                                              restarted.status().ToString()));

  if (resolved->schema) {
    WXP_FUZZ_CHECK(resolved->schema->size() == static_cast<size_t>(stored.schema().tensors_size()),
                   "schema size");
    absl::StatusOr<Schema> checked = Schema::Create(resolved->schema->tensors());
    WXP_FUZZ_CHECK(checked.ok(), absl::StrCat("accepted a schema Schema::Create refuses: ",
                                              checked.status().ToString()));
    WXP_FUZZ_CHECK(stored.schema().fingerprint() == resolved->schema->Fingerprint(),
                   "stored fingerprint differs from the schema's");
  }
  WXP_FUZZ_CHECK(std::isfinite(stored.round_deadline_seconds()), "infinite deadline accepted");
}

}  // namespace
}  // namespace wxp::server

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs parse problems of its own (e.g. out-of-range enum numbers) to stderr.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wxp::server::Fuzz(data, size);
  return 0;
}
