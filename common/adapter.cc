#include "common/adapter.h"

#include <sys/stat.h>

#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

using Json = nlohmann::ordered_json;

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Adapter AdapterFromSafetensors(const SafetensorsFile& file) {
  Adapter a;
  std::vector<TensorSpec> specs;
  specs.reserve(file.tensors().size());
  int64_t total = 0;
  for (const TensorView& t : file.tensors()) {
    specs.push_back({t.name, t.dtype, t.shape});
    total += t.numel;
  }
  a.schema = Schema(std::move(specs));
  a.values.resize(static_cast<size_t>(total));
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const TensorView& t = file.tensors()[i];
    ToFloat32(t.dtype, t.data.data(), t.numel, a.values.data() + a.schema.offset(i));
  }
  a.metadata = file.metadata();
  return a;
}

absl::StatusOr<Adapter> LoadAdapter(const std::string& path) {
  if (!Exists(path)) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  if (!IsDirectory(path)) {
    WXP_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
    return AdapterFromSafetensors(file);
  }
  const std::string weights = absl::StrCat(path, "/", kPeftWeightsFile);
  const std::string config = absl::StrCat(path, "/", kPeftConfigFile);
  if (!Exists(weights)) {
    if (Exists(absl::StrCat(path, "/adapter_model.bin"))) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " holds adapter_model.bin (pickle); only adapter_model.safetensors is read"));
    }
    return absl::NotFoundError(absl::StrCat(path, " has no ", kPeftWeightsFile));
  }
  if (!Exists(config)) return absl::NotFoundError(absl::StrCat(path, " has no ", kPeftConfigFile));
  WXP_ASSIGN_OR_RETURN(std::string config_text, ReadFile(config));
  if (absl::StatusOr<LoraConfig> parsed = ParseLoraConfig(config_text); !parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(config, ": ", parsed.status().message()));
  }
  WXP_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(weights));
  Adapter a = AdapterFromSafetensors(file);
  a.config_json = std::move(config_text);
  return a;
}

absl::StatusOr<LoraConfig> ParseLoraConfig(const std::string& json_text) {
  Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  LoraConfig c;
  auto string_field = [&](const char* key, std::string* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("'", key, "' is not a string"));
    }
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  WXP_RETURN_IF_ERROR(string_field("peft_type", &c.peft_type));
  WXP_RETURN_IF_ERROR(string_field("base_model_name_or_path", &c.base_model_name_or_path));
  WXP_RETURN_IF_ERROR(string_field("task_type", &c.task_type));
  if (auto it = j.find("r"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
      return absl::InvalidArgumentError("'r' is not a positive integer");
    }
    c.r = it->get<int64_t>();
  }
  if (auto it = j.find("lora_alpha"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) return absl::InvalidArgumentError("'lora_alpha' is not a number");
    c.lora_alpha = it->get<double>();
  }
  if (auto it = j.find("target_modules"); it != j.end() && !it->is_null()) {
    // PEFT allows a list of names or one regex string.
    if (it->is_string()) {
      c.target_modules.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const Json& m : *it) {
        if (!m.is_string()) {
          return absl::InvalidArgumentError("'target_modules' holds a non-string entry");
        }
        c.target_modules.push_back(m.get<std::string>());
      }
    } else {
      return absl::InvalidArgumentError("'target_modules' is neither a list nor a string");
    }
  }
  return c;
}

namespace {

// The adapter as safetensors pieces: F32 tensors point straight into the values (the host
// is little-endian, as the format), other dtypes into converted copies held by `buffers`.
absl::StatusOr<std::vector<TensorToWrite>> ToTensors(const Adapter& adapter,
                                                     std::vector<std::string>* buffers) {
  const Schema& s = adapter.schema;
  if (static_cast<int64_t>(adapter.values.size()) != s.total_params()) {
    return absl::InvalidArgumentError(absl::StrCat("adapter has ", adapter.values.size(),
                                                   " values but its schema has ", s.total_params(),
                                                   " parameters"));
  }
  std::vector<TensorToWrite> tensors;
  tensors.reserve(s.tensors().size());
  buffers->reserve(s.tensors().size());  // no reallocation: the views below stay valid
  for (size_t i = 0; i < s.tensors().size(); ++i) {
    const TensorSpec& t = s.tensors()[i];
    const float* values = adapter.values.data() + s.offset(i);
    const size_t bytes = static_cast<size_t>(t.numel()) * DTypeSize(t.dtype);
    absl::string_view data(reinterpret_cast<const char*>(values), bytes);
    if (t.dtype != DType::kF32) {
      std::string& buffer = buffers->emplace_back(bytes, '\0');
      FromFloat32(t.dtype, values, t.numel(), buffer.data());
      data = buffer;
    }
    tensors.push_back({t.name, t.dtype, t.shape, data});
  }
  return tensors;
}

}  // namespace

absl::StatusOr<std::string> SerializeAdapter(const Adapter& adapter) {
  std::vector<std::string> buffers;
  WXP_ASSIGN_OR_RETURN(std::vector<TensorToWrite> tensors, ToTensors(adapter, &buffers));
  return SerializeSafetensors(tensors, adapter.metadata);
}

absl::StatusOr<std::string> BlobId(const Adapter& adapter) {
  std::vector<std::string> buffers;
  WXP_ASSIGN_OR_RETURN(std::vector<TensorToWrite> tensors, ToTensors(adapter, &buffers));
  WXP_ASSIGN_OR_RETURN(std::string header, SerializeSafetensorsHeader(tensors, adapter.metadata));
  Sha256Hasher hasher;
  hasher.Update(header);
  for (const TensorToWrite& t : tensors) hasher.Update(t.data);
  return hasher.FinalHex();
}

absl::Status SaveSafetensors(const Adapter& adapter, const std::string& path) {
  std::vector<std::string> buffers;
  WXP_ASSIGN_OR_RETURN(std::vector<TensorToWrite> tensors, ToTensors(adapter, &buffers));
  return WriteSafetensors(path, tensors, adapter.metadata);
}

std::string InferLoraConfig(const Schema& schema) {
  std::optional<int64_t> r;
  std::vector<std::string> modules;
  std::set<std::string> seen;
  for (const TensorSpec& t : schema.tensors()) {
    const size_t pos = t.name.find(".lora_A");
    if (pos == std::string::npos) continue;
    if (!r && !t.shape.empty()) r = t.shape[0];
    const std::string prefix = t.name.substr(0, pos);
    const std::string module = prefix.substr(prefix.rfind('.') + 1);
    if (seen.insert(module).second) modules.push_back(module);
  }
  Json j = Json::object();
  j["base_model_name_or_path"] = nullptr;
  j["lora_alpha"] = r.value_or(8);
  j["peft_type"] = "LORA";
  j["r"] = r.value_or(8);
  j["target_modules"] = modules;
  j["task_type"] = nullptr;
  return j.dump(2) + "\n";
}

absl::Status SaveAdapterDir(const Adapter& adapter, const std::string& dir) {
  WXP_RETURN_IF_ERROR(MakeDirs(dir));
  WXP_RETURN_IF_ERROR(SaveSafetensors(adapter, absl::StrCat(dir, "/", kPeftWeightsFile)));
  return WriteFileAtomically(
      absl::StrCat(dir, "/", kPeftConfigFile),
      adapter.config_json ? *adapter.config_json : InferLoraConfig(adapter.schema));
}

absl::Status CheckFinite(const Adapter& adapter) {
  const Schema& s = adapter.schema;
  for (size_t i = 0; i < s.tensors().size(); ++i) {
    const float* v = adapter.values.data() + s.offset(i);
    for (int64_t k = 0; k < s.tensors()[i].numel(); ++k) {
      if (!std::isfinite(v[k])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor '", s.tensors()[i].name, "' holds a non-finite value at element ", k));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace wxp
