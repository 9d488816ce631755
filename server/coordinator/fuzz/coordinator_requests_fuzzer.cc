// Fuzzes request validation (SPEC 5.4) through the coordinator: each input is a sequence of
// serialized agent and admin requests (request_sequence.h) run against a fresh world of
// three swarms in different states.
#include <cstdint>

#include "google/protobuf/stubs/logging.h"
#include "server/coordinator/fuzz/request_sequence.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wxp::server::fuzz::RequestWorld::Create()->Run(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
