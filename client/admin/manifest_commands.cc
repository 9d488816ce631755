// `wxpctl manifest inspect|eval|generate`: a token swarm's export (SPEC 4.5), the directory
// `wxpctl export` writes for a TOKEN_MIXTURE swarm: the manifest (common/token_manifest.h)
// and every expert's adapter and base model blob as <blob id>.safetensors. `inspect` reads
// the manifest alone; `eval` scores the combination on the built-in legal task, offline;
// `generate` writes text with it.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/admin/command_util.h"
#include "client/admin/tensor_commands.h"
#include "client/legal/mixture_evaluator.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/token_manifest.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

namespace fs = std::filesystem;

constexpr char kManifestHelp[] =
    "usage: wxpctl manifest <sub-command> PATH [flags]   (each takes --help)\n"
    "\n"
    "  inspect PATH                    the experts (blob ids, architectures), combination and\n"
    "                                  weights of a token swarm's export (PATH: the exported\n"
    "                                  directory or its token_swarm_manifest.json)\n"
    "  eval PATH [--split dev|test --work_dir D --threads N --alpha A --combination C]\n"
    "                                  score the combined model on the built-in legal task:\n"
    "                                  print {\"scores\": {...}} as `legal eval` does (with\n"
    "                                  --alpha, one line per alpha; see eval --help)\n"
    "  generate PATH --prompt TEXT [--bytes N --temperature T --seed S --alpha A]\n"
    "                                  write the text the combined model continues TEXT with\n";

absl::StatusOr<TokenManifest> ReadManifest(const std::string& path, std::string* dir) {
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  *dir = is_dir ? path : fs::path(path).parent_path().string();
  if (dir->empty()) *dir = ".";
  const std::string file = is_dir ? path + "/" + kTokenManifestFile : path;
  absl::StatusOr<std::string> text = ReadFile(file);
  if (!text.ok()) return text.status();
  absl::StatusOr<TokenManifest> m = ParseTokenManifest(*text);
  if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", m.status().message()));
  return m;
}

int Inspect(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<cli::ParsedArgs> p = ParseOrExit(args, {{"json", "print JSON", true}},
                                                 "manifest inspect", "PATH", out, err, &code);
  if (!p) return code;
  if (p->positional().size() != 1) return UsageError(err, "manifest inspect", "give one PATH");
  std::string dir;
  absl::StatusOr<TokenManifest> m = ReadManifest(p->positional()[0], &dir);
  if (!m.ok()) return Fail(err, m.status());
  if (p->GetBool("json")) {
    out << *SerializeTokenManifest(*m);
    return kExitOk;
  }
  out << absl::StrFormat("token swarm manifest: %d experts, combination %s, utility %s\n",
                         m->experts.size(), TokenCombinationName(m->combination),
                         absl::StrCat(m->utility));
  for (size_t j = 0; j < m->experts.size(); ++j) {
    const TokenManifestExpert& e = m->experts[j];
    out << absl::StrFormat("  expert %d  alpha %-10s weight %-10s %-11s %s\n", j,
                           absl::StrCat(m->alpha[j]), absl::StrCat(m->weights[j]),
                           e.architecture.architecture, e.base_model);
    out << "      adapter " << e.adapter_blob_id << "\n      base    " << e.base_model_blob_id
        << "\n";
  }
  return kExitOk;
}

// The blob file `id` of an export directory, checked against its id.
absl::StatusOr<std::string> BlobFile(const std::string& dir, const std::string& id) {
  const std::string path = absl::StrCat(dir, "/", id, ".safetensors");
  WXP_ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
  if (digest != id) {
    return absl::DataLossError(
        absl::StrCat(path, " is not blob ", id, " (its SHA-256 is ", digest, ")"));
  }
  return path;
}

// The manifest's experts, loaded from the export directory `dir` (blobs checked against
// their ids), their base models cached in `work_dir`.
absl::StatusOr<std::vector<legal::MixtureExpert>> LoadExperts(const TokenManifest& m,
                                                              const std::string& dir,
                                                              const legal::Corpus& corpus,
                                                              const std::string& work_dir,
                                                              int threads) {
  std::vector<legal::MixtureExpert> experts;
  for (const TokenManifestExpert& e : m.experts) {
    WXP_ASSIGN_OR_RETURN(std::string adapter, BlobFile(dir, e.adapter_blob_id));
    WXP_ASSIGN_OR_RETURN(std::string base, BlobFile(dir, e.base_model_blob_id));
    WXP_ASSIGN_OR_RETURN(legal::MixtureExpert x,
                         legal::LoadMixtureExpert({base, adapter, e.adapter_config_json}, corpus,
                                                  work_dir, threads));
    experts.push_back(std::move(x));
  }
  return experts;
}

// --alpha: α vectors separated by ';', each n comma-separated numbers (n: the manifest's
// experts); absent, the manifest's own α.
absl::StatusOr<std::vector<std::vector<float>>> AlphasFlag(const cli::ParsedArgs& p,
                                                           const TokenManifest& m) {
  if (!p.Has("alpha")) return std::vector<std::vector<float>>{m.alpha};
  std::vector<std::vector<float>> alphas;
  for (absl::string_view vector : absl::StrSplit(p.Get("alpha"), ';')) {
    std::vector<float> alpha;
    for (absl::string_view x : absl::StrSplit(vector, ',')) {
      float v = 0;
      if (!absl::SimpleAtof(absl::StripAsciiWhitespace(x), &v) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--alpha: '", x, "' is not a finite number"));
      }
      alpha.push_back(v);
    }
    if (alpha.size() != m.experts.size()) {
      return absl::InvalidArgumentError(absl::StrCat("--alpha: '", vector, "' has ", alpha.size(),
                                                     " coefficients; the manifest has ",
                                                     m.experts.size(), " experts"));
    }
    alphas.push_back(std::move(alpha));
  }
  return alphas;
}

// What eval and generate share: the flags, the manifest, the α vectors, the combination,
// the corpus and the experts, or the exit code to return.
struct Loaded {
  std::vector<std::vector<float>> alphas;
  TokenCombination combination = TokenCombination::kMixture;
  std::optional<legal::Corpus> corpus;
  std::vector<legal::MixtureExpert> experts;
};

std::optional<Loaded> Load(const cli::ParsedArgs& p, const std::string& command, std::ostream& err,
                           int* code) {
  int threads = 0;
  if (!absl::SimpleAtoi(p.Get("threads"), &threads) || threads < 1) {
    *code = UsageError(err, command, "--threads must be a positive integer");
    return std::nullopt;
  }
  std::string dir;
  absl::StatusOr<TokenManifest> m = ReadManifest(p.positional()[0], &dir);
  if (!m.ok()) {
    *code = Fail(err, m.status());
    return std::nullopt;
  }
  Loaded l;
  l.combination = m->combination;
  if (p.Has("combination")) {
    absl::StatusOr<TokenCombination> c = ParseTokenCombination(p.Get("combination"));
    if (!c.ok()) {
      *code = UsageError(err, command, "--combination: " + std::string(c.status().message()));
      return std::nullopt;
    }
    l.combination = *c;
  }
  absl::StatusOr<std::vector<std::vector<float>>> alphas = AlphasFlag(p, *m);
  if (!alphas.ok()) {
    *code = UsageError(err, command, std::string(alphas.status().message()));
    return std::nullopt;
  }
  l.alphas = *std::move(alphas);
  absl::StatusOr<legal::Corpus> corpus = legal::Corpus::Load(p.Get("corpus-dir"));
  if (!corpus.ok()) {
    *code = Fail(err, corpus.status());
    return std::nullopt;
  }
  l.corpus = *std::move(corpus);
  absl::StatusOr<std::vector<legal::MixtureExpert>> experts =
      LoadExperts(*m, dir, *l.corpus, p.Get("work-dir"), threads);
  if (!experts.ok()) {
    *code = Fail(err, experts.status());
    return std::nullopt;
  }
  l.experts = *std::move(experts);
  return l;
}

std::vector<cli::FlagSpec> CommonFlags() {
  return {{"work-dir", "where the experts' base models are cached", false, "."},
          {"corpus-dir", "licence texts (default /usr/share/common-licenses)"},
          {"threads", "torch intra-op threads", false, "2"},
          {"alpha",
           "coefficients instead of the manifest's: one per expert, comma-separated; "
           "several vectors separated by ';' (eval: one line each)"},
          {"combination", "mixture or log_linear instead of the manifest's"}};
}

int Eval(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::vector<cli::FlagSpec> flags = CommonFlags();
  flags.push_back({"split", "dev or test", false, "dev"});
  std::optional<cli::ParsedArgs> p = ParseOrExit(
      args, flags, "manifest eval", "PATH [--split dev|test] [--alpha A1;A2;...]", out, err, &code);
  if (!p) return code;
  if (p->positional().size() != 1) return UsageError(err, "manifest eval", "give one PATH");
  absl::StatusOr<legal::Split> split = legal::ParseSplit(p->Get("split"));
  if (!split.ok() || (*split != legal::Split::kDev && *split != legal::Split::kTest)) {
    return UsageError(err, "manifest eval", "--split must be dev or test");
  }
  std::optional<Loaded> l = Load(*p, "manifest eval", err, &code);
  if (!l) return code;
  // The experts run over the split once; each α is then arithmetic over their outputs.
  absl::StatusOr<std::unique_ptr<legal::MixtureEvaluator>> ev =
      legal::MixtureEvaluator::Create(l->experts, *l->corpus, *split, l->combination);
  if (!ev.ok()) return Fail(err, ev.status());
  for (const std::vector<float>& alpha : l->alphas) {
    absl::StatusOr<Scores> scores = (*ev)->Evaluate({0, 0, alpha});
    if (!scores.ok()) return Fail(err, scores.status());
    nlohmann::ordered_json j;
    if (p->Has("alpha")) j["alpha"] = alpha;
    if (p->Has("combination")) j["combination"] = TokenCombinationName(l->combination);
    j["scores"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : *scores) j["scores"][k] = v;
    out << j.dump() << "\n";
  }
  return kExitOk;
}

int Generate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::vector<cli::FlagSpec> flags = CommonFlags();
  flags.push_back({"prompt", "the text to continue (required)"});
  flags.push_back({"bytes", "how many bytes to write (at most 4096)", false, "200"});
  flags.push_back(
      {"temperature", "0: the most probable byte each time; T > 0: sampled", false, "0"});
  flags.push_back({"seed", "the sampling seed (with --temperature > 0)", false, "1"});
  std::optional<cli::ParsedArgs> p = ParseOrExit(args, flags, "manifest generate",
                                                 "PATH --prompt TEXT [--bytes N]", out, err, &code);
  if (!p) return code;
  if (p->positional().size() != 1) return UsageError(err, "manifest generate", "give one PATH");
  if (!p->Has("prompt")) return UsageError(err, "manifest generate", "--prompt is required");
  legal::GenerateOptions o;
  absl::StatusOr<int64_t> bytes = p->GetInt("bytes");
  absl::StatusOr<double> temperature = p->GetDouble("temperature");
  absl::StatusOr<int64_t> seed = p->GetInt("seed");
  // Each byte runs every expert over the text so far (the context a scored position has),
  // so the cost grows with the square of the length: a bound that keeps a run to seconds.
  if (!bytes.ok() || *bytes < 1 || *bytes > 4096) {
    return UsageError(err, "manifest generate", "--bytes must be an integer in [1, 4096]");
  }
  if (!temperature.ok() || !std::isfinite(*temperature) || *temperature < 0) {
    return UsageError(err, "manifest generate", "--temperature must be a number >= 0");
  }
  if (!seed.ok() || *seed < 0) {
    return UsageError(err, "manifest generate", "--seed must be a non-negative integer");
  }
  o.bytes = static_cast<int>(*bytes);
  o.temperature = *temperature;
  o.seed = static_cast<uint64_t>(*seed);
  std::optional<Loaded> l = Load(*p, "manifest generate", err, &code);
  if (!l) return code;
  if (l->alphas.size() != 1) {
    return UsageError(err, "manifest generate", "--alpha takes one vector here");
  }
  absl::StatusOr<std::string> text =
      legal::GenerateText(l->experts, l->combination, l->alphas[0], p->Get("prompt"), o);
  if (!text.ok()) return Fail(err, text.status());
  out << p->Get("prompt") << *text << "\n";
  return kExitOk;
}

}  // namespace

int Manifest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kManifestHelp;
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    out << kManifestHelp;
    return kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "inspect") return Inspect(rest, out, err);
  if (args[0] == "eval") return Eval(rest, out, err);
  if (args[0] == "generate") return Generate(rest, out, err);
  return UsageError(err, "manifest", "unknown sub-command '" + args[0] + "'");
}

}  // namespace wxp::admin
