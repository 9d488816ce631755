// The legal-text corpus of the built-in evaluator (SPEC 7), split into firms' private shards
// and the vendor's held-out splits. No LibTorch here: the splits are plain byte strings.
//
// Sources:
//  * A directory with sub-directories (corpus_dir): each sub-directory is one firm's shard,
//    named after it; its regular files (sorted by name) are the firm's text.
//  * A flat directory of licence texts, by default /usr/share/common-licenses: files are
//    grouped into licence families by file name, dropping a trailing version suffix
//    ("-<digits and dots>"): GPL-1/GPL-2/GPL-3/GPL -> "GPL", LGPL-2/LGPL-2.1/... -> "LGPL",
//    Apache-2.0 -> "Apache", CC0-1.0 -> "CC0", GFDL-1.2/1.3 -> "GFDL", MPL-1.1/2.0 -> "MPL",
//    Artistic, BSD. Files with identical content count once, under the real file's name
//    (Debian's GPL -> GPL-3 link is dropped, GPL-3 kept).
//
// Splits. Each shard's text (its distinct files in name order, concatenated) is cut into
// chunks of kChunkBytes; every chunk goes to exactly one split, chosen by a hash of the
// shard name and the chunk index (so the assignment is fixed by the corpus alone):
//   general 10%  the vendor's public pretraining mix (all shards),
//   train   70%  the firm's private fine-tuning shard,
//   dev     10%  the vendor's held-out mix (utility during the search, all shards),
//   test    10%  a separate held-out mix for final reporting only.
// The four are disjoint as text chunks (licences of one family do share boilerplate, as
// real firms' documents do). Dev and test take at most kMaxHeldOutBytesPerShard per shard so
// that a large family does not swamp the mix and an evaluation stays cheap; the kept chunks
// are evenly spaced over the family's text, so every file of the family is represented.
#ifndef WXP_CLIENT_LEGAL_CORPUS_H_
#define WXP_CLIENT_LEGAL_CORPUS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wxp::legal {

inline constexpr char kDefaultCorpusDir[] = "/usr/share/common-licenses";
inline constexpr int kChunkBytes = 192;
inline constexpr int kMaxHeldOutBytesPerShard = 1200;

enum class Split { kGeneral, kTrain, kDev, kTest };

// "general", "train", "dev", "test".
const char* SplitName(Split split);
// Parses "dev"/"test"/"train"/"general" (empty means "dev", the proto's default);
// InvalidArgument otherwise.
absl::StatusOr<Split> ParseSplit(absl::string_view name);

// The licence family of a file name: the name without a trailing "-<digits and dots>".
std::string LicenceFamily(absl::string_view file_name);

// Text of one split: independent segments (a model never predicts across a segment border).
using Segments = std::vector<std::string>;

// An immutable, loaded corpus. Copyable; thread-safe for const use.
class Corpus {
 public:
  // Loads `dir` (empty = kDefaultCorpusDir). NotFound if it does not exist; InvalidArgument
  // if it is not a directory or holds no non-empty text file (or, with sub-directories, a
  // sub-directory holds none).
  static absl::StatusOr<Corpus> Load(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Shard names, sorted.
  std::vector<std::string> ShardNames() const;
  // The files behind a shard (for `wxpctl legal shards`); NotFound for an unknown shard.
  absl::StatusOr<std::vector<std::string>> ShardFiles(const std::string& shard) const;
  // Bytes of a shard's distinct text.
  absl::StatusOr<int64_t> ShardBytes(const std::string& shard) const;

  // kTrain needs `shard` (NotFound naming the known shards if it is unknown); the mixed
  // splits (general, dev, test) ignore it and cover every shard in name order.
  absl::StatusOr<Segments> Get(Split split, const std::string& shard = "") const;
  // One shard's part of a mixed split (per-family scores); NotFound for an unknown shard.
  absl::StatusOr<Segments> GetForShard(Split split, const std::string& shard) const;

  // SHA-256 hex over the shard names and their texts: a cached model trained on this corpus
  // is valid only for the same fingerprint.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  struct Shard {
    std::vector<std::string> files;
    std::string text;
  };
  absl::Status CheckShard(const std::string& shard) const;

  std::string dir_;
  std::map<std::string, Shard> shards_;
  std::string fingerprint_;
};

// A firm's own held-out part, carved from its train split for early stopping (no vendor
// split is touched): the train text is cut into kChunkBytes pieces in order and every
// `every`-th piece (the last of each run of `every`) is held out; the rest is what the firm
// fits on. Adjacent pieces of one part stay one segment. `every` < 2 holds out nothing.
struct HeldOutSplit {
  Segments fit;
  Segments held_out;
};
HeldOutSplit SplitOffHeldOut(const Segments& train, int every);

}  // namespace wxp::legal

#endif  // WXP_CLIENT_LEGAL_CORPUS_H_
