// `wxpctl legal ...`: the built-in legal-text task (SPEC 7) from the command line: the
// vendor pretrains the base, each firm fine-tunes its expert, anyone scores an adapter.
// `legal eval` prints {"scores": {...}}, so it also serves as an external-command evaluator.
#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/admin/command_util.h"
#include "client/admin/commands.h"
#include "client/legal/corpus.h"
#include "client/legal/legal_model.h"
#include "common/adapter.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

const std::vector<cli::FlagSpec> kCommon = {
    {"work-dir", "where the base model lives (legal_base.safetensors)"},
    {"corpus", "corpus directory (default /usr/share/common-licenses)"},
};

std::vector<cli::FlagSpec> With(std::vector<cli::FlagSpec> more) {
  more.insert(more.begin(), kCommon.begin(), kCommon.end());
  return more;
}

constexpr char kHelp[] =
    "usage: wxpctl legal <sub-command> [flags]   (each takes --help)\n"
    "  shards                   the firms' shards of the corpus, one per line\n"
    "  pretrain --work-dir D    pretrain (or reuse) the vendor's base model in D\n"
    "  finetune --work-dir D --shard S --out DIR\n"
    "                           fine-tune shard S's LoRA expert, written as a PEFT directory\n"
    "  eval --work-dir D --adapter A [--split dev|test] [DIR]\n"
    "                           score an adapter: {\"scores\": {\"char_acc\": .., \"loss\": ..}}\n";

int Shards(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  auto p = ParseOrExit(args, kCommon, "legal shards", "[flags]", out, err, &code);
  if (!p) return code;
  auto corpus = legal::LoadLegalCorpus(p->Get("corpus"));
  if (!corpus.ok()) return Fail(err, corpus.status());
  for (const std::string& s : corpus->shards) out << s << "\n";
  return kExitOk;
}

int Pretrain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  const auto flags = With({{"steps", "training steps", false, "600"}});
  auto p = ParseOrExit(args, flags, "legal pretrain", "--work-dir D [flags]", out, err, &code);
  if (!p) return code;
  if (p->Get("work-dir").empty()) return UsageError(err, "legal pretrain", "--work-dir is required");
  auto steps = p->GetInt("steps");
  if (!steps.ok() || *steps < 1) return UsageError(err, "legal pretrain", "--steps must be >= 1");
  auto corpus = legal::LoadLegalCorpus(p->Get("corpus"));
  if (!corpus.ok()) return Fail(err, corpus.status());
  legal::PretrainOptions o;
  o.steps = static_cast<int>(*steps);
  const absl::Time start = absl::Now();
  auto trained = legal::EnsureBaseModel(*corpus, p->Get("work-dir"), o,
                                        [&](const std::string& line) { out << line << std::endl; });
  if (!trained.ok()) return Fail(err, trained.status());
  out << absl::StrFormat("base model %s in %s/%s (%.1f s; %zu bytes of general text)\n",
                         *trained ? "trained" : "reused", p->Get("work-dir"), legal::kBaseFile,
                         absl::ToDoubleSeconds(absl::Now() - start), corpus->base_mix.size());
  return kExitOk;
}

int Finetune(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  const auto flags = With({{"shard", "the firm's shard (see `wxpctl legal shards`)"},
                           {"out", "PEFT directory to write"},
                           {"steps", "training steps", false, "250"},
                           {"seed", "initialisation and batch order", false, "1"}});
  auto p = ParseOrExit(args, flags, "legal finetune", "--work-dir D --shard S --out DIR", out,
                       err, &code);
  if (!p) return code;
  for (const char* f : {"work-dir", "shard", "out"}) {
    if (p->Get(f).empty()) return UsageError(err, "legal finetune", std::string("--") + f + " is required");
  }
  auto steps = p->GetInt("steps");
  auto seed = p->GetInt("seed");
  if (!steps.ok() || *steps < 1 || !seed.ok()) {
    return UsageError(err, "legal finetune", "--steps must be >= 1 and --seed an integer");
  }
  auto corpus = legal::LoadLegalCorpus(p->Get("corpus"));
  if (!corpus.ok()) return Fail(err, corpus.status());
  legal::FinetuneOptions o;
  o.steps = static_cast<int>(*steps);
  o.seed = static_cast<uint64_t>(*seed);
  const absl::Time start = absl::Now();
  auto r = legal::FinetuneExpert(*corpus, p->Get("work-dir"), p->Get("shard"), o);
  if (!r.ok()) return Fail(err, r.status());
  if (absl::Status s = SaveAdapterDir(r->adapter, p->Get("out")); !s.ok()) return Fail(err, s);
  out << absl::StrFormat(
      "expert %s: loss on its shard %.3f -> %.3f nats/byte (%.1f s), written to %s\n",
      p->Get("shard"), r->loss_before, r->loss_after, absl::ToDoubleSeconds(absl::Now() - start),
      p->Get("out"));
  return kExitOk;
}

int Eval(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  const auto flags = With({{"adapter", "PEFT directory or .safetensors file to score"},
                           {"split", "dev (the search's utility) or test (reporting)", false, "dev"}});
  auto p = ParseOrExit(args, flags, "legal eval", "--work-dir D (--adapter A | A)", out, err,
                       &code);
  if (!p) return code;
  std::string adapter = p->Get("adapter");
  // As an external evaluator the candidate directory arrives as the last argument.
  if (adapter.empty() && !p->positional().empty()) adapter = p->positional().back();
  if (p->Get("work-dir").empty() || adapter.empty()) {
    return UsageError(err, "legal eval", "--work-dir and an adapter are required");
  }
  auto split = legal::ParseSplit(p->Get("split"));
  if (!split.ok()) return UsageError(err, "legal eval", std::string(split.status().message()));
  auto corpus = legal::LoadLegalCorpus(p->Get("corpus"));
  if (!corpus.ok()) return Fail(err, corpus.status());
  auto a = LoadAdapter(adapter);
  if (!a.ok()) return Fail(err, a.status());
  if (absl::Status s = a->schema.CheckSame(legal::LoraSchema()); !s.ok()) {
    return Fail(err, absl::InvalidArgumentError(
                         absl::StrCat(adapter, " is not a legal-model LoRA: ", s.message())));
  }
  auto e = legal::LegalEvaluator::Create(*corpus, p->Get("work-dir"), *split);
  if (!e.ok()) return Fail(err, e.status());
  auto scores = (*e)->Evaluate({0, 0, a->values});
  if (!scores.ok()) return Fail(err, scores.status());
  out << nlohmann::json({{"scores", *scores}}).dump() << "\n";
  return kExitOk;
}

}  // namespace

int Legal(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kHelp;
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "shards") return Shards(rest, out, err);
  if (args[0] == "pretrain") return Pretrain(rest, out, err);
  if (args[0] == "finetune") return Finetune(rest, out, err);
  if (args[0] == "eval") return Eval(rest, out, err);
  return UsageError(err, "legal", "unknown sub-command '" + args[0] + "'");
}

}  // namespace wxp::admin
