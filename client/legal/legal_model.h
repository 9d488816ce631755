// The built-in legal-text model (SPEC 7): a small byte-level language model whose two
// linear layers carry LoRA adapters. The vendor pretrains the base once on the general mix
// (cached in a directory, reused while its configuration and data are unchanged); each firm
// fine-tunes its own LoRA with LibTorch autograd on its private shard and writes it as a
// PEFT directory; a candidate's utility is its next-byte accuracy (and loss) on the
// vendor's held-out dev split, and results are reported on the test split.
//
// The model: the previous kContext bytes, each embedded in kEmbed dims and concatenated,
// -> fc1 (kHidden, tanh) -> head (256 logits). LoRA rank kRank on fc1 and head with
// lora_alpha = 2 * kRank (scaling 2), tensors named as PEFT names them
// ("base_model.model.fc1.lora_A.weight" [r, in], "...lora_B.weight" [out, r]).
//
// LibTorch stays inside legal_model.cc; errors from it become absl::Status.
#ifndef WXP_CLIENT_LEGAL_LEGAL_MODEL_H_
#define WXP_CLIENT_LEGAL_LEGAL_MODEL_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/legal/corpus.h"
#include "common/adapter.h"
#include "common/evaluator.h"

namespace wxp::legal {

inline constexpr int kContext = 12;
inline constexpr int kEmbed = 16;
inline constexpr int kHidden = 256;
inline constexpr int kRank = 4;
inline constexpr char kBaseFile[] = "legal_base.safetensors";

// The LoRA adapter's schema (F32, PEFT names).
Schema LoraSchema();

struct PretrainOptions {
  int steps = 600;
  int batch = 256;
  double learning_rate = 3e-3;
  uint64_t seed = 1;
  int threads = 2;
};

// Makes sure `base_dir`/legal_base.safetensors holds the base model for this corpus and
// options: reuses it when its recorded configuration matches, else trains it (logging
// progress through `log`, if given) and writes it atomically. Returns true if it trained.
absl::StatusOr<bool> EnsureBaseModel(const LegalCorpus& corpus, const std::string& base_dir,
                                     const PretrainOptions& options = {},
                                     const std::function<void(const std::string&)>& log = {});

struct FinetuneOptions {
  int steps = 250;
  int batch = 256;
  double learning_rate = 1e-2;
  uint64_t seed = 1;
  int threads = 2;
};

struct FinetuneResult {
  Adapter adapter;          // the LoRA, PEFT config included
  double loss_before = 0;   // mean cross-entropy on the shard's own text, base only
  double loss_after = 0;    // ... with the LoRA applied
};

// Fine-tunes a LoRA (base frozen) on `shard`'s private text. NotFound for an unknown shard
// (the message lists the shards); FailedPrecondition if the base is missing.
absl::StatusOr<FinetuneResult> FinetuneExpert(const LegalCorpus& corpus,
                                              const std::string& base_dir,
                                              const std::string& shard,
                                              const FinetuneOptions& options = {});

enum class Split { kDev, kTest };
absl::StatusOr<Split> ParseSplit(const std::string& name);  // "" -> dev

// Scores candidates: {"char_acc": next-byte accuracy in [0, 1] (maximise), "loss": mean
// cross-entropy in nats per byte (minimise)} on the chosen held-out split. Deterministic.
// Not thread-safe (one evaluation at a time).
class LegalEvaluator : public Evaluator {
 public:
  // FailedPrecondition if the base is missing or does not match this corpus.
  static absl::StatusOr<std::unique_ptr<LegalEvaluator>> Create(const LegalCorpus& corpus,
                                                                const std::string& base_dir,
                                                                Split split, int threads = 1);
  ~LegalEvaluator() override;
  // InvalidArgument unless params has LoraSchema().total_params() values.
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& request) override;
  // Scores of a text of the caller's choosing (e.g. a firm's own shard).
  absl::StatusOr<Scores> EvaluateOn(absl::Span<const float> lora, const std::string& text);

 private:
  struct Model;
  explicit LegalEvaluator(std::unique_ptr<Model> m);
  std::unique_ptr<Model> m_;
};

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_LEGAL_MODEL_H_
