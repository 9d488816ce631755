// A LoRA adapter as WXP handles it (SPEC 3): its schema, its parameters as one flat fp32
// vector in schema order, the safetensors metadata, and the PEFT adapter_config.json text.
//
// Reading accepts a PEFT adapter directory (adapter_model.safetensors + adapter_config.json)
// or a bare .safetensors file. The config text is kept verbatim, so unknown keys survive and
// an unchanged adapter is written back byte for byte. Storage dtypes are kept per tensor:
// values are fp32 in memory and converted back on write (exact for F32, F16 and BF16; F64 is
// read into fp32 and written back from it).
#ifndef WXP_COMMON_ADAPTER_H_
#define WXP_COMMON_ADAPTER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/safetensors.h"
#include "common/schema.h"

namespace wxp {

inline constexpr char kPeftWeightsFile[] = "adapter_model.safetensors";
inline constexpr char kPeftConfigFile[] = "adapter_config.json";

// A value type, thread-compatible. Invariant the functions below check where it matters:
// values.size() == schema.total_params(), tensor i at values[schema.offset(i)...].
struct Adapter {
  Schema schema;
  std::vector<float> values;  // schema.total_params() entries
  SafetensorsMetadata metadata;
  std::optional<std::string> config_json;  // adapter_config.json, verbatim
};

// The LoRA fields of adapter_config.json that WXP looks at; absent keys stay empty.
struct LoraConfig {
  std::string peft_type;
  std::optional<int64_t> r;
  std::optional<double> lora_alpha;
  std::vector<std::string> target_modules;
  std::string base_model_name_or_path;
  std::string task_type;
};

// Loads a PEFT directory or a .safetensors file. NotFound for a missing path or a missing
// file inside the directory; InvalidArgument (naming the file) for a malformed safetensors
// file, a config that is not a JSON object, or a directory holding only the pickle format.
absl::StatusOr<Adapter> LoadAdapter(const std::string& path);

// Decodes a parsed safetensors file into an adapter (no config).
Adapter AdapterFromSafetensors(const SafetensorsFile& file);

// Parses adapter_config.json text. InvalidArgument if it is not a JSON object or a known
// field has the wrong type.
absl::StatusOr<LoraConfig> ParseLoraConfig(const std::string& json_text);

// The safetensors bytes of the adapter: each tensor converted from fp32 to its schema dtype
// (round to nearest even), in schema order, the metadata kept. This is the adapter's blob.
// InvalidArgument if values and schema disagree in size or the metadata cannot be written
// (a duplicate key, invalid UTF-8).
absl::StatusOr<std::string> SerializeAdapter(const Adapter& adapter);

// The blob id: Sha256Hex(SerializeAdapter(adapter)), hashed piece by piece without
// assembling the bytes. Fails as SerializeAdapter.
absl::StatusOr<std::string> BlobId(const Adapter& adapter);

// Writes SerializeAdapter's bytes to `path` crash-safely (temporary file, fsync, rename),
// streaming them rather than assembling them. Fails as SerializeAdapter, or with the I/O
// error naming the path.
absl::Status SaveSafetensors(const Adapter& adapter, const std::string& path);

// Writes a PEFT directory (created with its parents if needed): adapter_model.safetensors
// (as SaveSafetensors) and adapter_config.json (the verbatim config text), each replaced
// atomically; a crash between the two can leave new weights beside the old config. Without
// a config, writes InferLoraConfig's. An unchanged loaded adapter is written back byte for
// byte.
absl::Status SaveAdapterDir(const Adapter& adapter, const std::string& dir);

// The config SaveAdapterDir writes for an adapter that has none: peft_type LORA, r from the
// first "<module>.lora_A" tensor's leading dim ([r, in_features]; 8 if there is none),
// lora_alpha = r (scaling 1: the weights mean what they say), target_modules the distinct
// module names before ".lora_A" in schema order, base model and task type null. Keys sorted
// and indented by 2, as PEFT writes its configs.
std::string InferLoraConfig(const Schema& schema);

// InvalidArgument naming the first tensor holding a NaN or an infinity.
absl::Status CheckFinite(const Adapter& adapter);

}  // namespace wxp

#endif  // WXP_COMMON_ADAPTER_H_
