// Fuzzes the PEFT adapter_config.json reader (SPEC 3): ParseLoraConfig on arbitrary text,
// then the same text as the config of an adapter directory beside a fixed valid
// adapter_model.safetensors. Checks: LoadAdapter accepts the directory exactly when the
// config parses, never with a status other than InvalidArgument naming the config file, and
// SaveAdapterDir writes an accepted directory back byte for byte (unknown keys intact).
//
// The directory lives in a private temporary directory, on tmpfs when /dev/shm is there:
// the writes are fsynced, which on a disk would dominate the run time.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "tests/fuzz/fuzz_check.h"

namespace wxp {
namespace {

struct Dirs {
  std::string root, in, out, weights;
};

std::string TempRoot() {
  // tmpfs first even under `bazel test`: on disk the replay test's thousand fsynced inputs
  // take seconds.
  const char* const bases[] = {"/dev/shm", getenv("TEST_TMPDIR"), getenv("TMPDIR"), "/tmp"};
  for (const char* base : bases) {
    if (base == nullptr || access(base, W_OK) != 0) continue;
    std::string templ = absl::StrCat(base, "/wxp_adapter_fuzz.XXXXXX");
    if (mkdtemp(templ.data()) != nullptr) return templ;
  }
  std::fprintf(stderr, "adapter_config_fuzzer: no writable temporary directory\n");
  std::abort();
}

void RemoveTree(const std::string& root) {
  for (const char* sub : {"/in", "/out"}) {
    for (const char* f : {kPeftWeightsFile, kPeftConfigFile}) {
      unlink(absl::StrCat(root, sub, "/", f).c_str());
    }
    rmdir(absl::StrCat(root, sub).c_str());
  }
  rmdir(root.c_str());
}

const Dirs& GetDirs() {
  static const Dirs* dirs = [] {
    auto* d = new Dirs;
    d->root = TempRoot();
    d->in = d->root + "/in";
    d->out = d->root + "/out";
    // Two small tensors in the canonical layout, so a loaded directory is written back
    // byte for byte.
    Adapter a;
    a.schema = Schema({{"base_model.model.h.0.attn.c_attn.lora_A.weight", DType::kF32, {2, 3}},
                       {"base_model.model.h.0.attn.c_attn.lora_B.weight", DType::kBF16, {3, 2}}});
    a.values = {0.5f, -1, 2, 0.25f, 3, -4, 1, 2, 3, 4, 5, 6};
    a.metadata = {{"format", "pt"}};
    d->weights = *SerializeAdapter(a);
    if (!MakeDirs(d->in).ok() ||
        !WriteFileAtomically(absl::StrCat(d->in, "/", kPeftWeightsFile), d->weights).ok()) {
      std::fprintf(stderr, "adapter_config_fuzzer: cannot write %s\n", d->in.c_str());
      std::abort();
    }
    atexit([] { RemoveTree(GetDirs().root); });
    return d;
  }();
  return *dirs;
}

void Fuzz(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<LoraConfig> config = ParseLoraConfig(text);
  if (!config.ok()) {
    WXP_FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument,
                   config.status().ToString());
  } else if (config->r) {
    WXP_FUZZ_CHECK(*config->r > 0, "accepted a non-positive r");
  }

  const Dirs& d = GetDirs();
  const std::string config_path = absl::StrCat(d.in, "/", kPeftConfigFile);
  WXP_FUZZ_CHECK(WriteFileAtomically(config_path, text).ok(), config_path);
  const absl::StatusOr<Adapter> loaded = LoadAdapter(d.in);
  WXP_FUZZ_CHECK(loaded.ok() == config.ok(),
                 absl::StrCat("ParseLoraConfig says ", config.status().ToString(),
                              " but LoadAdapter says ", loaded.status().ToString()));
  if (!loaded.ok()) {
    WXP_FUZZ_CHECK(loaded.status().code() == absl::StatusCode::kInvalidArgument &&
                       absl::StartsWith(loaded.status().message(), config_path),
                   loaded.status().ToString());
    return;
  }
  WXP_FUZZ_CHECK(loaded->config_json == text, "the config text was not kept verbatim");
  WXP_FUZZ_CHECK(SaveAdapterDir(*loaded, d.out).ok(), "SaveAdapterDir failed");
  const absl::StatusOr<std::string> config_out =
      ReadFile(absl::StrCat(d.out, "/", kPeftConfigFile));
  const absl::StatusOr<std::string> weights_out =
      ReadFile(absl::StrCat(d.out, "/", kPeftWeightsFile));
  WXP_FUZZ_CHECK(config_out.ok() && *config_out == text,
                 "the config was not written back verbatim");
  WXP_FUZZ_CHECK(weights_out.ok() && *weights_out == d.weights,
                 "the weights were not written back byte for byte");
}

}  // namespace
}  // namespace wxp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wxp::Fuzz(data, size);
  return 0;
}
