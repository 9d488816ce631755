#include "client/agent/blob_cache.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace wxp::agent {

namespace fs = std::filesystem;

absl::StatusOr<BlobCache> BlobCache::Open(std::string dir) {
  WXP_RETURN_IF_ERROR(MakeDirs(dir));
  return BlobCache(std::move(dir));
}

bool BlobCache::Has(const std::string& name) const {
  std::error_code ec;
  return fs::exists(Path(name), ec);
}

absl::Status BlobCache::AddLocalFile(const std::string& file, const std::string& name) {
  if (Has(name)) return absl::OkStatus();
  std::error_code ec;
  fs::create_hard_link(file, Path(name), ec);
  if (ec) fs::copy_file(file, Path(name), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot copy ", file, " into the blob cache: ", ec.message()));
  }
  return absl::OkStatus();
}

void BlobCache::Touch(const std::string& name, size_t keep_recent) {
  recent_.erase(std::remove(recent_.begin(), recent_.end(), name), recent_.end());
  recent_.push_back(name);
  if (recent_.size() > keep_recent) {
    recent_.erase(recent_.begin(), recent_.end() - static_cast<ptrdiff_t>(keep_recent));
  }
}

void BlobCache::CollectGarbage(const std::set<std::string>& referenced) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    const bool recent = std::find(recent_.begin(), recent_.end(), name) != recent_.end();
    if (referenced.count(name) == 0 && !recent && name.find(".partial") == std::string::npos) {
      fs::remove(e.path(), ec);
    }
  }
}

}  // namespace wxp::agent
