// `wxpctl adapter inspect PATH`: what an adapter is, for people and for scripts.
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "common/adapter.h"
#include "common/dp_record.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

const std::vector<cli::FlagSpec> kFlags = {
    {"json", "print JSON for scripts", true},
    {"tensors", "list every tensor (default: the first 20 in table output)", true},
};

constexpr int kDefaultTensorRows = 20;

}  // namespace

int AdapterInspect(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args, kFlags, "adapter inspect", "PATH [--json]", out, err, &code);
  if (!p) return code;
  if (p->positional().size() != 1) {
    return UsageError(err, "adapter inspect", "expected exactly one PATH");
  }
  const std::string path = p->positional()[0];
  absl::StatusOr<Adapter> a = LoadAdapter(path);
  if (!a.ok()) return Fail(err, a.status());
  // The blob id is the hash of the safetensors file's own bytes (SPEC 3). `canonical` says
  // whether WXP would write exactly those bytes back (true for files from the reference
  // safetensors library); if not, the blob of this adapter in a swarm gets another id.
  const std::string weights_path =
      a->config_json ? absl::StrCat(path, "/", kPeftWeightsFile) : path;
  absl::StatusOr<std::string> file_bytes = ReadFile(weights_path);
  if (!file_bytes.ok()) return Fail(err, file_bytes.status());
  absl::StatusOr<std::string> canonical_bytes = SerializeAdapter(*a);
  if (!canonical_bytes.ok()) return Fail(err, canonical_bytes.status());
  const bool canonical = *canonical_bytes == *file_bytes;
  const std::string blob_id = Sha256Hex(*file_bytes);
  const std::string* bytes = &*file_bytes;
  const Schema& s = a->schema;
  std::map<std::string, int64_t> params_by_dtype;
  for (const TensorSpec& t : s.tensors()) params_by_dtype[DTypeName(t.dtype)] += t.numel();
  int64_t non_finite = 0;
  for (float v : a->values) non_finite += !std::isfinite(v);
  std::optional<LoraConfig> config;
  if (a->config_json) {
    if (auto c = ParseLoraConfig(*a->config_json); c.ok()) config = *c;
  }

  // The training's privacy record (SPEC 12): a malformed one is reported, not fatal, since
  // the adapter itself is still what the rest shows.
  absl::StatusOr<std::optional<dp::PrivacyRecord>> privacy = dp::FindPrivacyRecord(a->metadata);
  const std::string privacy_text =
      privacy.ok() ? dp::DescribePrivacy(*privacy)
                   : absl::StrCat("INVALID record (", privacy.status().message(), ")");

  if (p->GetBool("json")) {
    nlohmann::ordered_json j;
    j["path"] = path;
    j["format"] = a->config_json ? "peft" : "safetensors";
    j["tensor_count"] = s.tensors().size();
    j["parameter_count"] = s.total_params();
    j["dtypes"] = params_by_dtype;
    j["schema_fingerprint"] = s.Fingerprint();
    j["blob_id"] = blob_id;
    j["size_bytes"] = bytes->size();
    j["canonical"] = canonical;
    j["non_finite_values"] = non_finite;
    if (config) {
      j["peft"] = {{"peft_type", config->peft_type},
                   {"r", config->r ? nlohmann::ordered_json(*config->r) : nullptr},
                   {"lora_alpha",
                    config->lora_alpha ? nlohmann::ordered_json(*config->lora_alpha) : nullptr},
                   {"target_modules", config->target_modules},
                   {"base_model_name_or_path", config->base_model_name_or_path}};
    }
    if (privacy.ok() && privacy->has_value()) {
      j["differential_privacy"] = nlohmann::ordered_json::parse(dp::EncodePrivacyRecord(**privacy));
    } else if (privacy.ok()) {
      j["differential_privacy"] = nullptr;
    } else {
      j["differential_privacy"] = {{"error", std::string(privacy.status().message())}};
    }
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    for (const TensorSpec& t : s.tensors()) {
      tensors.push_back({{"name", t.name}, {"dtype", DTypeName(t.dtype)}, {"shape", t.shape}});
    }
    j["tensors"] = tensors;
    out << j.dump(2) << "\n";
    return kExitOk;
  }

  std::vector<std::string> dtypes;
  for (const auto& [name, n] : params_by_dtype) dtypes.push_back(absl::StrCat(name, " ", n));
  out << absl::StrFormat("%-20s %s\n", "path", path);
  out << absl::StrFormat("%-20s %s\n", "format",
                         a->config_json ? "PEFT adapter directory" : "safetensors file");
  if (config) {
    out << absl::StrFormat(
        "%-20s %s r=%s alpha=%s targets=[%s] base=%s\n", "peft",
        config->peft_type.empty() ? "?" : config->peft_type,
        config->r ? absl::StrCat(*config->r) : "?",
        config->lora_alpha ? absl::StrCat(*config->lora_alpha) : "?",
        absl::StrJoin(config->target_modules, ","),
        config->base_model_name_or_path.empty() ? "?" : config->base_model_name_or_path);
  }
  out << absl::StrFormat("%-20s %d\n", "tensors", s.tensors().size());
  out << absl::StrFormat("%-20s %d\n", "parameters", s.total_params());
  out << absl::StrFormat("%-20s %s\n", "dtypes (params)", absl::StrJoin(dtypes, ", "));
  out << absl::StrFormat("%-20s %d\n", "size (bytes)", bytes->size());
  out << absl::StrFormat("%-20s %s\n", "schema fingerprint", s.Fingerprint());
  out << absl::StrFormat("%-20s %s%s\n", "blob id", blob_id,
                         canonical ? "" : "  (not canonical: WXP re-encodes it)");
  out << absl::StrFormat("%-20s %s\n", "differential privacy", privacy_text);
  if (non_finite > 0) {
    out << absl::StrFormat("%-20s %d (a swarm will refuse this adapter)\n", "NON-FINITE values",
                           non_finite);
  }
  const bool all = p->GetBool("tensors");
  const size_t rows =
      all ? s.tensors().size() : std::min<size_t>(s.tensors().size(), kDefaultTensorRows);
  out << "\n" << absl::StrFormat("%-6s %-5s %-16s %s\n", "#", "dtype", "shape", "name");
  for (size_t i = 0; i < rows; ++i) {
    const TensorSpec& t = s.tensors()[i];
    out << absl::StrFormat("%-6d %-5s %-16s %s\n", i, DTypeName(t.dtype), ShapeToString(t.shape),
                           t.name);
  }
  if (rows < s.tensors().size()) {
    out << absl::StrFormat("... %d more (--tensors lists all)\n", s.tensors().size() - rows);
  }
  return kExitOk;
}

}  // namespace wxp::admin
