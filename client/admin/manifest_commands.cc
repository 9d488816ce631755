// `wxpctl manifest inspect|eval`: a token swarm's export (SPEC 4.5), the directory
// `wxpctl export` writes for a TOKEN_MIXTURE swarm: the manifest (common/token_manifest.h)
// and every expert's adapter and base model blob as <blob id>.safetensors. `inspect` reads
// the manifest alone; `eval` scores the combination on the built-in legal task, offline.
#include <filesystem>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
    "  eval PATH [--split dev|test --work_dir D --threads N]\n"
    "                                  score the combined model on the built-in legal task:\n"
    "                                  print {\"scores\": {...}} as `legal eval` does\n";

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

int Eval(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  int code = 0;
  std::optional<cli::ParsedArgs> p =
      ParseOrExit(args,
                  {{"split", "dev or test", false, "dev"},
                   {"work-dir", "where the experts' base models are cached", false, "."},
                   {"corpus-dir", "licence texts (default /usr/share/common-licenses)"},
                   {"threads", "torch intra-op threads", false, "2"}},
                  "manifest eval", "PATH [--split dev|test]", out, err, &code);
  if (!p) return code;
  if (p->positional().size() != 1) return UsageError(err, "manifest eval", "give one PATH");
  int threads = 0;
  if (!absl::SimpleAtoi(p->Get("threads"), &threads) || threads < 1) {
    return UsageError(err, "manifest eval", "--threads must be a positive integer");
  }
  absl::StatusOr<legal::Split> split = legal::ParseSplit(p->Get("split"));
  if (!split.ok() || (*split != legal::Split::kDev && *split != legal::Split::kTest)) {
    return UsageError(err, "manifest eval", "--split must be dev or test");
  }
  std::string dir;
  absl::StatusOr<TokenManifest> m = ReadManifest(p->positional()[0], &dir);
  if (!m.ok()) return Fail(err, m.status());
  absl::StatusOr<legal::Corpus> corpus = legal::Corpus::Load(p->Get("corpus-dir"));
  if (!corpus.ok()) return Fail(err, corpus.status());
  std::vector<legal::MixtureExpert> experts;
  for (const TokenManifestExpert& e : m->experts) {
    absl::StatusOr<std::string> adapter = BlobFile(dir, e.adapter_blob_id);
    if (!adapter.ok()) return Fail(err, adapter.status());
    absl::StatusOr<std::string> base = BlobFile(dir, e.base_model_blob_id);
    if (!base.ok()) return Fail(err, base.status());
    absl::StatusOr<legal::MixtureExpert> x = legal::LoadMixtureExpert(
        {*base, *adapter, e.adapter_config_json}, *corpus, p->Get("work-dir"), threads);
    if (!x.ok()) return Fail(err, x.status());
    experts.push_back(*std::move(x));
  }
  absl::StatusOr<std::unique_ptr<legal::MixtureEvaluator>> ev =
      legal::MixtureEvaluator::Create(experts, *corpus, *split, m->combination);
  if (!ev.ok()) return Fail(err, ev.status());
  absl::StatusOr<Scores> scores = (*ev)->Evaluate({0, 0, m->alpha});
  if (!scores.ok()) return Fail(err, scores.status());
  nlohmann::ordered_json j;
  j["scores"] = nlohmann::ordered_json::object();
  for (const auto& [k, v] : *scores) j["scores"][k] = v;
  out << j.dump() << "\n";
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
  return UsageError(err, "manifest", "unknown sub-command '" + args[0] + "'");
}

}  // namespace wxp::admin
