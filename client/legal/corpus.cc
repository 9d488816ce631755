#include "client/legal/corpus.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/sha256.h"

namespace wxp::legal {
namespace {

// Every block of this many chunks holds a fixed share of each split (1/7/1/1 of 10), so even
// a small family contributes to every split in proportion; the order inside a block is a
// hashed shuffle, so the held-out chunks are spread over the whole text.
constexpr int kBlock = 10;
constexpr std::array<Split, kBlock> kBlockLayout = {
    Split::kGeneral, Split::kTrain, Split::kTrain, Split::kTrain, Split::kTrain,
    Split::kTrain,   Split::kTrain, Split::kTrain, Split::kDev,   Split::kTest};

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

struct DirEntry {
  std::string name;
  bool is_dir;
  bool is_link;
};

absl::StatusOr<std::vector<DirEntry>> ListDir(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "corpus directory", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("corpus ", dir, " is not a directory"));
  }
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "cannot open corpus directory", dir);
  std::vector<DirEntry> out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    struct stat es;
    // stat, not lstat: Debian's GPL -> GPL-3 links are files for this purpose.
    if (stat((dir + "/" + name).c_str(), &es) != 0) continue;
    struct stat ls;
    const bool is_link = lstat((dir + "/" + name).c_str(), &ls) == 0 && S_ISLNK(ls.st_mode);
    if (S_ISDIR(es.st_mode))
      out.push_back({name, true, is_link});
    else if (S_ISREG(es.st_mode))
      out.push_back({name, false, is_link});
  }
  closedir(d);
  // Links after files, so a duplicate text is credited to its real, versioned file name
  // (GPL-3, not the GPL alias).
  std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) {
    return std::make_pair(a.is_link, a.name) < std::make_pair(b.is_link, b.name);
  });
  return out;
}

}  // namespace

const char* SplitName(Split split) {
  switch (split) {
    case Split::kGeneral:
      return "general";
    case Split::kTrain:
      return "train";
    case Split::kDev:
      return "dev";
    case Split::kTest:
      return "test";
  }
  return "?";
}

absl::StatusOr<Split> ParseSplit(absl::string_view name) {
  if (name.empty() || name == "dev") return Split::kDev;
  if (name == "test") return Split::kTest;
  if (name == "train") return Split::kTrain;
  if (name == "general") return Split::kGeneral;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split '", name, "' (want dev, test, train or general)"));
}

std::string LicenceFamily(absl::string_view file_name) {
  size_t end = file_name.size();
  while (end > 0 && (absl::ascii_isdigit(file_name[end - 1]) || file_name[end - 1] == '.')) {
    --end;
  }
  if (end < file_name.size() && end > 1 && file_name[end - 1] == '-') {
    return std::string(file_name.substr(0, end - 1));
  }
  return std::string(file_name);
}

absl::StatusOr<Corpus> Corpus::Load(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? kDefaultCorpusDir : dir_in;
  absl::StatusOr<std::vector<DirEntry>> top = ListDir(dir);
  if (!top.ok()) return top.status();
  Corpus c;
  c.dir_ = dir;
  const bool by_subdir =
      std::any_of(top->begin(), top->end(), [](const DirEntry& e) { return e.is_dir; });
  std::set<std::string> seen_digests;  // identical texts count once
  auto add_file = [&](const std::string& shard, const std::string& path) -> absl::Status {
    absl::StatusOr<std::string> text = ReadFile(path);
    if (!text.ok()) return text.status();
    if (text->empty() || !seen_digests.insert(Sha256Hex(*text)).second) return absl::OkStatus();
    Shard& s = c.shards_[shard];
    s.files.push_back(path);
    s.text += *text;
    return absl::OkStatus();
  };
  for (const DirEntry& e : *top) {
    const std::string path = dir + "/" + e.name;
    if (by_subdir) {
      if (!e.is_dir) continue;  // a README beside the firms' directories is not a firm's
      absl::StatusOr<std::vector<DirEntry>> files = ListDir(path);
      if (!files.ok()) return files.status();
      for (const DirEntry& f : *files) {
        if (f.is_dir) continue;
        if (absl::Status s = add_file(e.name, path + "/" + f.name); !s.ok()) return s;
      }
      if (!c.shards_.count(e.name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("corpus shard directory ", path, " holds no non-empty text file"));
      }
    } else {
      if (absl::Status s = add_file(LicenceFamily(e.name), path); !s.ok()) return s;
    }
  }
  if (c.shards_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("corpus directory ", dir, " holds no non-empty text file"));
  }
  std::string digest_input = "wxp-legal-corpus-v1\n";
  for (const auto& [name, shard] : c.shards_) {
    absl::StrAppend(&digest_input, name, "\t", Sha256Hex(shard.text), "\n");
  }
  c.fingerprint_ = Sha256Hex(digest_input);
  return c;
}

std::vector<std::string> Corpus::ShardNames() const {
  std::vector<std::string> names;
  for (const auto& [name, shard] : shards_) names.push_back(name);
  return names;
}

absl::Status Corpus::CheckShard(const std::string& shard) const {
  if (shards_.count(shard)) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("unknown shard '", shard, "' in corpus ", dir_,
                                          " (known: ", absl::StrJoin(ShardNames(), ", "), ")"));
}

absl::StatusOr<std::vector<std::string>> Corpus::ShardFiles(const std::string& shard) const {
  if (absl::Status s = CheckShard(shard); !s.ok()) return s;
  return shards_.at(shard).files;
}

absl::StatusOr<int64_t> Corpus::ShardBytes(const std::string& shard) const {
  if (absl::Status s = CheckShard(shard); !s.ok()) return s;
  return static_cast<int64_t>(shards_.at(shard).text.size());
}

absl::StatusOr<Segments> Corpus::GetForShard(Split split, const std::string& shard) const {
  if (absl::Status s = CheckShard(shard); !s.ok()) return s;
  const std::string& text = shards_.at(shard).text;
  const uint64_t shard_hash = Fnv1a(shard);
  const int64_t chunks = (static_cast<int64_t>(text.size()) + kChunkBytes - 1) / kChunkBytes;
  std::vector<int64_t> mine;  // this split's chunk indices, ascending
  for (int64_t block = 0; block * kBlock < chunks; ++block) {
    std::array<int, kBlock> order;
    for (int i = 0; i < kBlock; ++i) order[i] = i;
    uint64_t h = SplitMix64(shard_hash ^ static_cast<uint64_t>(block));
    for (int i = kBlock - 1; i > 0; --i) {  // Fisher-Yates on a counter-based stream
      h = SplitMix64(h);
      std::swap(order[i], order[h % (i + 1)]);
    }
    for (int i = 0; i < kBlock; ++i) {
      const int64_t chunk = block * kBlock + i;
      if (chunk < chunks && kBlockLayout[order[i]] == split) mine.push_back(chunk);
    }
  }
  const int64_t cap = kMaxHeldOutBytesPerShard / kChunkBytes;
  if ((split == Split::kDev || split == Split::kTest) && static_cast<int64_t>(mine.size()) > cap) {
    // Evenly spaced over the family's whole text, so every file of the family (GPL-1 as
    // much as GPL-3) is represented, not just the first.
    std::vector<int64_t> kept;
    for (int64_t j = 0; j < cap; ++j) kept.push_back(mine[j * mine.size() / cap]);
    mine = std::move(kept);
  }
  Segments out;
  for (size_t k = 0; k < mine.size(); ++k) {
    std::string piece = text.substr(mine[k] * kChunkBytes, kChunkBytes);
    // Adjacent chunks of one split are one segment, so the model keeps its context.
    if (k > 0 && mine[k - 1] + 1 == mine[k]) {
      out.back() += piece;
    } else {
      out.push_back(std::move(piece));
    }
  }
  return out;
}

absl::StatusOr<Segments> Corpus::Get(Split split, const std::string& shard) const {
  if (split == Split::kTrain) return GetForShard(split, shard);
  Segments all;
  for (const auto& [name, unused] : shards_) {
    absl::StatusOr<Segments> part = GetForShard(split, name);
    if (!part.ok()) return part.status();
    for (std::string& s : *part) all.push_back(std::move(s));
  }
  return all;
}

HeldOutSplit SplitOffHeldOut(const Segments& train, int every) {
  HeldOutSplit out;
  int64_t piece_index = 0;
  for (const std::string& segment : train) {
    int last = -1;  // 0: fit, 1: held out; which part the previous piece of this segment went to
    for (size_t at = 0; at < segment.size(); at += kChunkBytes, ++piece_index) {
      const int part = every >= 2 && piece_index % every == every - 1 ? 1 : 0;
      Segments& into = part == 1 ? out.held_out : out.fit;
      std::string piece = segment.substr(at, kChunkBytes);
      if (part == last) {
        into.back() += piece;
      } else {
        into.push_back(std::move(piece));
      }
      last = part;
    }
  }
  return out;
}

}  // namespace wxp::legal
