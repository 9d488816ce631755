#include "client/legal/internal/config.h"

#include <cmath>
#include <functional>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace wxp::legal {
namespace {

// Canonical tags; the MLP's predates the transformer and keeps its text (and so its hashes
// and cached files).
constexpr char kMlpTag[] = "wxp-legal-lm-v1";
constexpr char kTransformerTag[] = "wxp-legal-transformer-v1";
constexpr char kNamePrefix[] = "wxp-legal-byte-";

const char* NameInfix(Architecture a) { return a == Architecture::kMlp ? "lm" : "transformer"; }

}  // namespace

const char* ArchitectureName(Architecture a) {
  return a == Architecture::kMlp ? "mlp" : "transformer";
}

absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name) {
  if (name == "mlp") return Architecture::kMlp;
  if (name == "transformer") return Architecture::kTransformer;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown architecture '", name, "' (mlp or transformer)"));
}

ModelConfig ModelConfig::Defaults(Architecture a) {
  ModelConfig c;
  if (a == Architecture::kMlp) return c;
  c.architecture = a;
  c.context = 64;
  c.embed = 48;
  c.hidden = 128;
  c.layers = 2;
  c.heads = 4;
  // Measured on the 2-core machine (one intra-op thread, 41 s of CPU; README): dev loss
  // 2.04 nats/byte and 45 % next-byte accuracy, against the MLP base's 2.36 and 36 %.
  c.pretrain_steps = 1500;
  c.pretrain_batch = 256;  // four windows of 64
  c.pretrain_lr = 3e-3;
  return c;
}

std::string ModelConfig::Canonical() const {
  if (architecture == Architecture::kMlp) {
    return absl::StrFormat(
        "%s context=%d embed=%d hidden=%d lora_rank=%d lora_alpha=%.17g "
        "pretrain_steps=%d pretrain_batch=%d pretrain_lr=%.17g seed=%d",
        kMlpTag, context, embed, hidden, lora_rank, lora_alpha, pretrain_steps, pretrain_batch,
        pretrain_lr, seed);
  }
  return absl::StrFormat(
      "%s context=%d embed=%d hidden=%d layers=%d heads=%d lora_mlp=%d lora_rank=%d "
      "lora_alpha=%.17g pretrain_steps=%d pretrain_batch=%d pretrain_lr=%.17g seed=%d",
      kTransformerTag, context, embed, hidden, layers, heads, lora_mlp ? 1 : 0, lora_rank,
      lora_alpha, pretrain_steps, pretrain_batch, pretrain_lr, seed);
}

absl::StatusOr<ModelConfig> ModelConfig::FromCanonical(const std::string& canonical) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("legal model config '", canonical, "': ", why));
  };
  std::vector<std::string> words = absl::StrSplit(canonical, ' ');
  ModelConfig c;
  if (words[0] == kTransformerTag) {
    c = Defaults(Architecture::kTransformer);
  } else if (words[0] != kMlpTag) {
    return bad("unknown tag (not a configuration of the built-in model)");
  }
  auto int_field = [](int* f) {
    return [f](const std::string& v) { return absl::SimpleAtoi(v, f); };
  };
  int lora_mlp = 0;
  const std::map<std::string, std::function<bool(const std::string&)>> fields = {
      {"context", int_field(&c.context)},
      {"embed", int_field(&c.embed)},
      {"hidden", int_field(&c.hidden)},
      {"layers", int_field(&c.layers)},
      {"heads", int_field(&c.heads)},
      {"lora_mlp", int_field(&lora_mlp)},
      {"lora_rank", int_field(&c.lora_rank)},
      {"lora_alpha", [&c](const std::string& v) { return absl::SimpleAtod(v, &c.lora_alpha); }},
      {"pretrain_steps", int_field(&c.pretrain_steps)},
      {"pretrain_batch", int_field(&c.pretrain_batch)},
      {"pretrain_lr", [&c](const std::string& v) { return absl::SimpleAtod(v, &c.pretrain_lr); }},
      {"seed", [&c](const std::string& v) { return absl::SimpleAtoi(v, &c.seed); }},
  };
  for (size_t i = 1; i < words.size(); ++i) {
    const std::vector<std::string> kv = absl::StrSplit(words[i], absl::MaxSplits('=', 1));
    auto it = fields.find(kv[0]);
    if (kv.size() != 2 || it == fields.end() || !it->second(kv[1])) {
      return bad(absl::StrCat("cannot read '", words[i], "'"));
    }
  }
  c.lora_mlp = lora_mlp != 0;
  // Missing, repeated or differently written fields all show as a different encoding.
  if (c.Canonical() != canonical) return bad("not in canonical form");
  if (absl::Status s = internal::CheckConfig(c); !s.ok()) return bad(s.message());
  return c;
}

std::string LegalBaseName(const ModelConfig& config, const std::string& corpus_fingerprint) {
  return absl::StrCat(kNamePrefix, NameInfix(config.architecture), "-",
                      internal::ConfigHash(config, corpus_fingerprint).substr(0, 16));
}

std::string LegalBasePath(const std::string& work_dir, const std::string& base_name) {
  return absl::StrCat(work_dir.empty() ? "." : work_dir, "/legal-base-",
                      base_name.substr(base_name.size() < 16 ? 0 : base_name.size() - 16),
                      ".safetensors");
}

bool IsLegalBaseName(absl::string_view name) {
  for (Architecture a : {Architecture::kMlp, Architecture::kTransformer}) {
    const std::string prefix = absl::StrCat(kNamePrefix, NameInfix(a), "-");
    if (absl::StartsWith(name, prefix) && name.size() == prefix.size() + 16) return true;
  }
  return false;
}

absl::StatusOr<ModelConfig> ReadLegalBaseConfig(const std::string& path) {
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  if (!f.ok()) return f.status();
  const std::string* canonical = nullptr;
  const std::string* architecture = nullptr;
  for (const auto& [k, v] : f->metadata()) {
    if (k == internal::kConfigKey) canonical = &v;
    if (k == internal::kArchitectureKey) architecture = &v;
  }
  if (canonical == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a base model of the built-in legal model (no ",
                     internal::kConfigKey, " in its metadata)"));
  }
  absl::StatusOr<ModelConfig> c = ModelConfig::FromCanonical(*canonical);
  if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", c.status().message()));
  // Files written before architectures existed have no such entry: they are MLPs, which
  // the canonical text says too.
  if (architecture != nullptr && *architecture != ArchitectureName(c->architecture)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": metadata says architecture '",
                                                   *architecture, "' but its configuration is ",
                                                   ArchitectureName(c->architecture), "'s"));
  }
  return c;
}

namespace internal {

absl::Status CheckConfig(const ModelConfig& c) {
  if (c.context < 1 || c.embed < 1 || c.hidden < 1 || c.lora_rank < 1 || !(c.lora_alpha > 0) ||
      c.pretrain_steps < 0 || c.pretrain_batch < 1 || !(c.pretrain_lr > 0) || c.threads < 1) {
    return absl::InvalidArgumentError(
        "legal model config: sizes, steps, batch, lr, "
        "lora_alpha and threads must be positive");
  }
  if (c.architecture == Architecture::kTransformer &&
      (c.layers < 1 || c.heads < 1 || c.embed % c.heads != 0)) {
    return absl::InvalidArgumentError(
        "legal model config: the transformer needs layers >= 1 and heads >= 1 dividing embed");
  }
  return absl::OkStatus();
}

std::string ConfigHash(const ModelConfig& config, const std::string& corpus_fingerprint) {
  return Sha256Hex(config.Canonical() + "\n" + corpus_fingerprint);
}

std::string LoraConfigJson(const ModelConfig& config, const std::string& base_name,
                           const std::vector<std::string>& target_modules) {
  nlohmann::json j;  // std::map-backed: keys sorted, as PEFT writes them
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["r"] = config.lora_rank;
  j["lora_alpha"] = config.lora_alpha;
  j["lora_dropout"] = 0.0;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["target_modules"] = target_modules;
  j["base_model_name_or_path"] = base_name;
  if (config.architecture == Architecture::kTransformer) {
    // The rest of what PEFT 0.17 writes, at its defaults.
    if (config.lora_alpha == std::floor(config.lora_alpha) && std::abs(config.lora_alpha) < 1e9) {
      j["lora_alpha"] = static_cast<int64_t>(config.lora_alpha);
    }
    for (const char* k :
         {"auto_mapping", "corda_config", "eva_config", "exclude_modules", "layer_replication",
          "layers_pattern", "layers_to_transform", "megatron_config", "modules_to_save", "revision",
          "target_parameters", "trainable_token_indices"}) {
      j[k] = nullptr;
    }
    j["alpha_pattern"] = nlohmann::json::object();
    j["rank_pattern"] = nlohmann::json::object();
    j["loftq_config"] = nlohmann::json::object();
    j["lora_bias"] = false;
    j["megatron_core"] = "megatron.core";
    j["qalora_group_size"] = 16;
    j["use_dora"] = false;
    j["use_qalora"] = false;
    j["use_rslora"] = false;
  }
  return j.dump(2);
}

}  // namespace internal
absl::Status CheckLegalBaseFile(const std::string& path, const ModelConfig& config,
                                const std::string& corpus_fingerprint) {
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  if (!f.ok()) return f.status();
  const std::string want = internal::ConfigHash(config, corpus_fingerprint);
  for (const auto& [k, v] : f->metadata()) {
    if (k == internal::kConfigHashKey && v == want) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": not the base model of this configuration pretrained on this corpus (its ",
      internal::kConfigHashKey, " differs): pretrained on another corpus?"));
}

}  // namespace wxp::legal
