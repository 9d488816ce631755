// The built-in legal-text task's data (SPEC 7): licence texts split into firms' private
// shards and the vendor's held-out mixed splits. No LibTorch here.
//
// Default corpus: /usr/share/common-licenses (on every Debian system). Files are grouped
// into licence families by name (GPL-2, GPL-3 -> "GPL"; LGPL-2.1 -> "LGPL"; symlinks
// skipped); the four largest families are the firms' shards and the rest only feed the
// base model's general mix. A corpus directory with sub-directories instead makes every
// sub-directory one firm (its files, recursively).
//
// Each shard's text is cut into 256-byte blocks; block i goes to dev if i % 20 == 7, to
// test if i % 20 is 8 or 17, to train otherwise (dev is kept small: it is scored once per
// particle per iteration): deterministic, so every site and the
// vendor cut the same way. The base mix holds the non-firm families plus the first 10% of each firm's train
// blocks (the vendor's general data), so a firm's LoRA has something to learn.
#ifndef WXP_CLIENT_LEGAL_CORPUS_H_
#define WXP_CLIENT_LEGAL_CORPUS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace wxp::legal {

inline constexpr char kDefaultCorpusDir[] = "/usr/share/common-licenses";

struct LegalCorpus {
  std::vector<std::string> shards;           // firm shard names, largest first
  std::map<std::string, std::string> train;  // shard -> its private training text
  std::string base_mix;                      // the vendor's pretraining text
  std::string dev;                           // held-out mix of every shard (search utility)
  std::string test;                          // held-out mix of every shard (reporting)
};

// `dir` empty means kDefaultCorpusDir. NotFound for a missing directory; InvalidArgument
// if it holds fewer than two usable shards (at least 2 KiB of text each).
absl::StatusOr<LegalCorpus> LoadLegalCorpus(const std::string& dir);

// The family a licence file belongs to: the name up to its first '-' followed by a digit
// or its first '.', e.g. "GPL-2" -> "GPL", "Apache-2.0" -> "Apache", "CC0-1.0" -> "CC0".
std::string LicenceFamily(const std::string& file_name);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_CORPUS_H_
