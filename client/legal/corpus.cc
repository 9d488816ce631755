#include "client/legal/corpus.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace wxp::legal {
namespace fs = std::filesystem;

namespace {

constexpr size_t kBlock = 256;
constexpr size_t kMinShardBytes = 2048;
constexpr int kFirmShards = 4;

struct Split {
  std::string train, dev, test;
};

Split SplitText(const std::string& text) {
  Split s;
  for (size_t i = 0, b = 0; i < text.size(); i += kBlock, ++b) {
    const std::string block = text.substr(i, kBlock);
    switch (b % 20) {
      case 7:
        s.dev += block;
        break;
      case 8:
      case 17:
        s.test += block;
        break;
      default:
        s.train += block;
    }
  }
  return s;
}

}  // namespace

std::string LicenceFamily(const std::string& name) {
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '.') return name.substr(0, i);
    if (name[i] == '-' && i + 1 < name.size() && std::isdigit(static_cast<unsigned char>(name[i + 1]))) {
      return name.substr(0, i);
    }
  }
  return name;
}

absl::StatusOr<LegalCorpus> LoadLegalCorpus(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? kDefaultCorpusDir : dir_in;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("corpus directory ", dir, " does not exist"));
  }
  std::vector<fs::directory_entry> entries;
  for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e);
  std::sort(entries.begin(), entries.end());
  const bool by_subdir = std::any_of(entries.begin(), entries.end(),
                                     [](const fs::directory_entry& e) { return e.is_directory(); });
  std::map<std::string, std::string> families;
  for (const auto& e : entries) {
    if (by_subdir) {
      if (!e.is_directory()) continue;
      std::vector<std::string> files;
      for (const auto& f : fs::recursive_directory_iterator(e.path(), ec)) {
        if (f.is_regular_file() && !f.is_symlink()) files.push_back(f.path().string());
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        absl::StatusOr<std::string> text = ReadFile(f);
        if (text.ok()) families[e.path().filename().string()] += *text;
      }
    } else {
      if (e.is_symlink() || !e.is_regular_file()) continue;
      absl::StatusOr<std::string> text = ReadFile(e.path().string());
      if (!text.ok()) return text.status();
      families[LicenceFamily(e.path().filename().string())] += *text;
    }
  }
  std::vector<std::pair<size_t, std::string>> by_size;
  for (const auto& [name, text] : families) {
    if (text.size() >= kMinShardBytes) by_size.push_back({text.size(), name});
  }
  std::sort(by_size.begin(), by_size.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (by_size.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, " holds ", by_size.size(), " usable shard(s); the task needs at least two with ",
        kMinShardBytes, " bytes of text or more"));
  }
  LegalCorpus c;
  // With sub-directories every one is a firm; otherwise the largest families are.
  const size_t firms = by_subdir ? by_size.size() : std::min<size_t>(kFirmShards, by_size.size());
  for (size_t i = 0; i < by_size.size(); ++i) {
    const std::string& name = by_size[i].second;
    const std::string& text = families[name];
    if (i >= firms) {
      c.base_mix += text;
      continue;
    }
    Split s = SplitText(text);
    c.shards.push_back(name);
    const size_t vendor = s.train.size() / 10;
    c.base_mix += s.train.substr(0, vendor);
    c.train[name] = s.train.substr(vendor);
    c.dev += s.dev;
    c.test += s.test;
  }
  return c;
}

}  // namespace wxp::legal
