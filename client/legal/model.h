// The built-in evaluator's language model (SPEC 7): a small byte-level LM of legal text with
// LoRA adapters on its linear layers, in one of two architectures. LibTorch stays behind this
// header (the model library's own translation units compile it), so callers and tests build
// without the torch headers.
//
// kMlp (the default): the previous `context` bytes (left-padded with byte 0 at a segment
// start) are embedded (256 -> embed each) and concatenated, then
//   h1 = relu(fc1(x)),  h2 = h1 + relu(fc2(h1)),  logits = head(h2)   (256 classes).
// LoRA sits on fc1, fc2 and head; its adapter is the PEFT tensors
//   base_model.model.<fc1|fc2|head>.lora_A.weight / lora_B.weight
// in that order.
//
// kTransformer: a causal decoder laid out and named like a Llama checkpoint: token embedding
// plus learned positions (model.embed_tokens, model.embed_positions), `layers` pre-norm blocks
// (RMSNorm; causal multi-head self-attention q_proj/k_proj/v_proj/o_proj without biases;
// SwiGLU MLP gate_proj/up_proj/down_proj), a final RMSNorm (model.norm) and lm_head. Text is
// read in windows of `context` bytes that tile each segment from its start: byte t is
// predicted from the bytes of its window before it (and the byte before the window, or the
// 0 pad at a segment start). Its own LoRA sits on the attention projections (and, with
// lora_mlp, the MLP projections) of every layer, named and ordered exactly as PEFT saves a
// Llama LoRA:
//   base_model.model.model.layers.<i>.self_attn.<q|k|v|o>_proj.lora_<A|B>.weight
// sorted by name as the safetensors library writes them, with PEFT's full adapter_config.json
// (task_type CAUSAL_LM, target_modules, r, lora_alpha, base_model_name_or_path, ...).
//
// Both: LoRA (rank r, scaling lora_alpha / r) adds s·B·A to a weight W [out, in], with A
// [r, in] and B [out, r], exactly PEFT's layout (the Schema returned by lora_schema()). The
// model trains adapters of that schema only, but applies any PEFT LoRA on its linear layers
// (LoraPlacement): any rank, any subset of the layers, per-module scaling from the adapter's
// config, so candidates decoded from expert coefficients (common/lora_decode.h, rank Σ r_j)
// can be scored.
//
// The base weights are pretrained once per (config, corpus) with a fixed seed on the
// corpus's general split and cached in a work directory as
//   <work_dir>/legal-base-<first 16 hex of the config hash>.safetensors
// written atomically; a later run with the same config and corpus loads it instead. The
// file's "__metadata__" carries the configuration (wxp_legal_config, its canonical text,
// which names the architecture; wxp_legal_architecture, "mlp" or "transformer"; and the
// hash), so a base model file says what it is (ReadLegalBaseConfig) and adapters name it by
// base_model_name_or_path (base_model_name()).
//
// Everything is deterministic for a fixed configuration and thread count: initial weights
// and batch order come from seeded counter-based generators, not torch's global RNG.
// A LegalModel is immutable after construction; Score and FineTune may run concurrently
// only if the caller accepts that torch's intra-op thread count is process-global.
#ifndef WXP_CLIENT_LEGAL_MODEL_H_
#define WXP_CLIENT_LEGAL_MODEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "client/legal/corpus.h"
#include "common/dp_sgd.h"
#include "common/schema.h"

namespace wxp::legal {

enum class Architecture { kMlp, kTransformer };

// "mlp", "transformer".
const char* ArchitectureName(Architecture a);
// Parses ArchitectureName's spellings; InvalidArgument naming both otherwise.
absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name);

// The defaults are the MLP's; ModelConfig::Defaults(kTransformer) gives the transformer's.
struct ModelConfig {
  Architecture architecture = Architecture::kMlp;
  int context = 12;       // MLP: bytes of left context; transformer: window (positions) length
  int embed = 12;         // MLP: embedding width per byte; transformer: model width
  int hidden = 128;       // MLP: width of fc1/fc2; transformer: the MLP's intermediate width
  int layers = 2;         // transformer only: blocks
  int heads = 4;          // transformer only: attention heads (divides embed)
  bool lora_mlp = false;  // transformer only: own LoRA also on gate/up/down_proj
  int lora_rank = 8;
  double lora_alpha = 16;
  // Deliberately short: the vendor's base is a generalist from a small public mix, and the
  // firms' private shards carry most of the domain knowledge (what makes experts worth
  // combining). ~4 s on two quiet cores with reference BLAS.
  int pretrain_steps = 300;
  int pretrain_batch = 128;
  double pretrain_lr = 3e-3;
  uint64_t seed = 20240607;  // base initialisation and batch order
  // Intra-op threads torch may use (process-global; set when a model is loaded).
  int threads = 2;

  // The default configuration of `a`, sized for two cores (README: pretraining about a
  // minute for the transformer, seconds for the MLP).
  static ModelConfig Defaults(Architecture a);

  // The fields that determine the base weights, canonically encoded (threads excluded:
  // results do not depend on it), starting with a tag naming the architecture.
  std::string Canonical() const;
  // Inverts Canonical (threads left at its default). InvalidArgument unless `canonical` is
  // exactly what Canonical() writes for the configuration it describes.
  static absl::StatusOr<ModelConfig> FromCanonical(const std::string& canonical);
};

struct FineTuneOptions {
  int steps = 1000;  // the number of steps; with early stopping, the most it may run
  // Next-byte examples per step. The MLP draws `batch` positions; the transformer draws
  // ceil(batch / context) windows of `context` positions each.
  int batch = 64;
  double lr = 5e-3;
  uint64_t seed = 1;  // batch order
  // Seed of the LoRA A initialisation (B starts at zero, as in PEFT).
  uint64_t init_seed = 1;
  // Early stopping, as a firm would train: 0 (the default) runs exactly `steps` steps on
  // the whole train text. K > 0 holds out every `held_out_every`-th piece of the train text
  // (SplitOffHeldOut), fits on the rest, scores the held-out loss every K steps (and at
  // step 0), stops once `patience` evaluations in a row have not improved on the best, and
  // returns the adapter of the best evaluation.
  int eval_every = 0;
  int patience = 5;
  int held_out_every = 10;
  // Where training starts: empty (the default) for a fresh adapter initialised from
  // init_seed, else an adapter of lora_schema() to train further (local training between
  // swarm iterations, and the compute-matched baseline that trains an expert on). Must stay
  // valid during the call.
  absl::Span<const float> start;
  // Whether to score the train text's loss before and after (initial_loss, final_loss):
  // two passes over the whole text, which local training (a few steps, every particle)
  // does without.
  bool report_losses = true;
  // DP-SGD (SPEC 12, common/dp_sgd.h) when dp.enabled(): every step Poisson-samples the
  // train examples with rate dp.sample_rate (`batch` is then unused: the expected batch is
  // sample_rate x examples()), clips each example's gradient over all LoRA parameters to
  // dp.clip_norm, adds N(0, σ²C²) and divides by the expected batch; Adam steps on that.
  // An example is one row of the text's scoring tiling (TokenData::examples()). Sampling and
  // noise are drawn from `seed`. Not with early stopping (its held-out choices would read
  // the private text outside the accountant's view).
  dp::DpSgdParams dp;
};

struct LmScores {
  double char_acc = 0;  // fraction of next bytes predicted exactly (argmax)
  double loss = 0;      // mean cross-entropy, nats per byte
  int64_t positions = 0;
  // Scored with parts (LegalModel::Score's part_ends): the exactly predicted bytes of each
  // part, in order; their sum is char_acc * positions. Empty otherwise.
  std::vector<int64_t> part_correct;
};

// Where an adapter's tensors act on the model. Built by LegalModel::PlaceLora (or
// own_placement() for the model's own schema); positions scored with it are flat over
// `schema`.
struct LoraPlacement {
  struct Module {
    int a_tensor = -1;  // schema index of lora_A.weight; -1: the adapter leaves it alone
    int b_tensor = -1;  // schema index of lora_B.weight
    double scaling = 0;
  };
  Schema schema;
  // One per linear layer a LoRA may sit on, in the model's order: fc1, fc2, head for the
  // MLP; per layer q/k/v/o_proj then gate/up/down_proj for the transformer.
  std::vector<Module> modules;
};

// One adapter applied with a weight: the model's W becomes W + Σ weight·scaling·B·A.
struct PlacedLora {
  const LoraPlacement* placement = nullptr;
  absl::Span<const float> values;  // flat over placement->schema
  double weight = 1;
};

struct FineTuneResult {
  std::vector<float> lora;  // flat, in lora_schema() order
  double initial_loss = 0;  // train-shard loss of the start (the base for a fresh adapter)
  double final_loss = 0;    // train-shard loss of the returned adapter
  double seconds = 0;
  int steps_run = 0;  // optimizer steps taken (== steps without early stopping)
  // Early stopping only: (step, held-out loss) of every evaluation, step 0 first, and the
  // step of the returned adapter (the first evaluation with the lowest loss).
  std::vector<std::pair<int, double>> held_out_curve;
  int best_step = 0;
};

// Text turned into (context, next byte) pairs once, for repeated scoring.
class TokenData {
 public:
  TokenData(TokenData&&) noexcept;
  TokenData& operator=(TokenData&&) noexcept;
  ~TokenData();
  int64_t positions() const;
  // The units DP-SGD samples, clips and protects: one per next-byte position for the MLP,
  // one per window of `context` positions (tiling each segment from its start) for the
  // transformer. Every position is the target of exactly one example.
  int64_t examples() const;

  struct Impl;  // opaque outside the model library

 private:
  friend class LegalModel;
  explicit TokenData(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class LegalModel {
 public:
  ~LegalModel();

  // Loads the cached base for (config, corpus) from `work_dir`, or pretrains and caches it
  // (created if needed). `log`, if given, receives one line on what happened and how long
  // it took. InvalidArgument for a bad config or an empty general split; the I/O error
  // naming the path if the cache cannot be written; Internal for a LibTorch failure.
  static absl::StatusOr<std::shared_ptr<const LegalModel>> LoadOrPretrain(
      const ModelConfig& config, const Corpus& corpus, const std::string& work_dir,
      std::ostream* log = nullptr);

  const ModelConfig& config() const;
  // The adapter's schema (PEFT names, F32, fixed order).
  const Schema& lora_schema() const;
  // adapter_config.json for adapters of this model (r, lora_alpha, target_modules,
  // peft_type LORA, task_type CAUSAL_LM, base_model_name_or_path = base_model_name()).
  std::string LoraConfigJson() const;
  // The base model's name in its adapters' configs: LegalBaseName(config, corpus).
  const std::string& base_model_name() const;
  // Path of the cached base weights.
  const std::string& base_path() const;
  // True if this process pretrained the base (rather than loading the cache).
  bool pretrained_now() const;
  double pretrain_seconds() const;

  absl::StatusOr<TokenData> Tokenize(const Segments& segments) const;

  // The placement of the model's own adapters: lora_schema(), scaling lora_alpha / r.
  const LoraPlacement& own_placement() const;

  // The placement of a PEFT LoRA with `schema` and, if given, adapter_config.json text (its
  // r, lora_alpha, rank_pattern, alpha_pattern and use_rslora give each module's scaling, as
  // PEFT computes it). Without a config only lora_schema() itself is accepted (scaling from
  // this model's config): a foreign rank says nothing about its scaling. InvalidArgument,
  // naming the tensor, for tensors that are not LoRA factors of the model's linear layers
  // (LoraPlacement::modules) or whose shapes do not fit them, and for what ParseLoraLayout
  // (common/lora_layout.h) refuses.
  absl::StatusOr<LoraPlacement> PlaceLora(const Schema& schema,
                                          const std::optional<std::string>& config_json) const;

  // Next-byte accuracy and loss of base + LoRA on `data`. An empty `lora` means the base
  // alone. InvalidArgument if `lora` is neither empty nor lora_schema().total_params() long
  // or holds a non-finite value.
  absl::StatusOr<LmScores> Score(absl::Span<const float> lora, const TokenData& data) const;
  // The same for an adapter placed by PlaceLora (length placement.schema.total_params()).
  // For own_placement() the result is bit for bit that of the overload above.
  absl::StatusOr<LmScores> Score(const LoraPlacement& placement, absl::Span<const float> lora,
                                 const TokenData& data) const;
  // The same in one pass, also counting the correct predictions of consecutive parts of
  // `data` (per-family scores of a mixed split): part j is positions [part_ends[j-1],
  // part_ends[j]) (part 0 starts at 0). char_acc and loss are bit for bit those without
  // parts. InvalidArgument unless part_ends is non-decreasing, starts >= 0 and ends at
  // data.positions().
  absl::StatusOr<LmScores> Score(const LoraPlacement& placement, absl::Span<const float> lora,
                                 const TokenData& data, absl::Span<const int64_t> part_ends) const;

  // Logits (row-major [rows, 256]) of base + Σ weight·ΔW of `loras` on the first
  // min(rows, positions) positions of `data` (in text order): several adapters applied at once,
  // each with its own factors and scaling. InvalidArgument as Score for each adapter.
  absl::StatusOr<std::vector<float>> Logits(absl::Span<const PlacedLora> loras,
                                            const TokenData& data, int64_t rows) const;

  // Next-byte log-probabilities (log_softmax of the logits) of base + LoRA placed by
  // `placement` (an empty `lora`: the base alone) on every position of `data`, in text order,
  // with the byte each position predicts: what a token swarm combines across models (one
  // position per byte of the segments, whatever the architecture, so two models' positions
  // of the same text line up). InvalidArgument as Score; Internal for a LibTorch failure.
  struct PositionLogProbs {
    std::vector<float> log_probs;  // row-major [positions, 256]
    std::vector<uint8_t> targets;  // [positions]
  };
  absl::StatusOr<PositionLogProbs> LogProbs(const LoraPlacement& placement,
                                            absl::Span<const float> lora,
                                            const TokenData& data) const;

  // Trains a LoRA (fresh, or from options.start) on `train` with autograd and Adam, the
  // base frozen (early stopping as FineTuneOptions says). Deterministic for fixed options
  // and thread count. InvalidArgument for empty text, non-positive steps/batch/lr, negative
  // eval_every, a start that Score would refuse, or, with eval_every > 0, patience < 1,
  // held_out_every < 2 or a train text too short to leave both parts non-empty.
  absl::StatusOr<FineTuneResult> FineTune(const Segments& train,
                                          const FineTuneOptions& options) const;
  // The same on text tokenized once (for callers that train on it again and again), without
  // early stopping (InvalidArgument if eval_every != 0).
  absl::StatusOr<FineTuneResult> FineTune(const TokenData& train,
                                          const FineTuneOptions& options) const;

 private:
  struct Impl;
  explicit LegalModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The name adapters of `config`'s base pretrained on the corpus with `corpus_fingerprint`
// carry as base_model_name_or_path: "wxp-legal-byte-lm-<h>" (MLP) or
// "wxp-legal-byte-transformer-<h>", h the first 16 hex digits of the config hash.
std::string LegalBaseName(const ModelConfig& config, const std::string& corpus_fingerprint);
// The cached base's file in `work_dir` (empty: ".") for that name.
std::string LegalBasePath(const std::string& work_dir, const std::string& base_name);
// True for names of LegalBaseName's form (whatever the configuration).
bool IsLegalBaseName(absl::string_view name);

// The configuration recorded in a base model file's metadata (threads left at the default):
// NotFound for a missing file; InvalidArgument naming the file for one that is not
// safetensors, lacks wxp_legal_config, records a configuration FromCanonical refuses, or
// whose wxp_legal_architecture disagrees with it. The tensors are checked when the model is
// loaded (LegalModel::LoadOrPretrain).
absl::StatusOr<ModelConfig> ReadLegalBaseConfig(const std::string& path);

// OK if the base model file at `path` records the configuration hash of `config` pretrained
// on the corpus with `corpus_fingerprint`, so LoadOrPretrain finds it under its name and
// loads it instead of pretraining (a model received from elsewhere, e.g. a token swarm's
// expert blob). InvalidArgument naming the file otherwise (another corpus or configuration,
// or no recorded hash); the file's I/O and parse errors pass through.
absl::Status CheckLegalBaseFile(const std::string& path, const ModelConfig& config,
                                const std::string& corpus_fingerprint);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_MODEL_H_
