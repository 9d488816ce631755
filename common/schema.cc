#include "common/schema.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sha256.h"

namespace wxp {

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

Schema::Schema(std::vector<TensorSpec> tensors) : tensors_(std::move(tensors)) {
  offsets_.reserve(tensors_.size());
  for (const TensorSpec& t : tensors_) {
    offsets_.push_back(total_);
    total_ += t.numel();
  }
}

std::vector<int64_t> Schema::tensor_sizes() const {
  std::vector<int64_t> sizes;
  sizes.reserve(tensors_.size());
  for (const TensorSpec& t : tensors_) sizes.push_back(t.numel());
  return sizes;
}

int64_t Schema::storage_bytes() const {
  int64_t bytes = 0;
  for (const TensorSpec& t : tensors_) bytes += t.numel() * DTypeSize(t.dtype);
  return bytes;
}

std::string Schema::Fingerprint() const {
  std::string canonical = "wxp-schema-v1\n";
  for (const TensorSpec& t : tensors_) {
    absl::StrAppend(&canonical, t.name, "\t", DTypeName(t.dtype), "\t",
                    absl::StrJoin(t.shape, ","), "\n");
  }
  return Sha256Hex(canonical);
}

absl::Status Schema::CheckSame(const Schema& expected) const {
  if (tensors_.size() != expected.tensors_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("schema mismatch: ", tensors_.size(),
                                                   " tensors, expected ",
                                                   expected.tensors_.size()));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorSpec& a = tensors_[i];
    const TensorSpec& b = expected.tensors_[i];
    if (a.name != b.name) {
      return absl::InvalidArgumentError(absl::StrCat("schema mismatch: tensor ", i, " is '",
                                                     a.name, "', expected '", b.name, "'"));
    }
    if (a.dtype != b.dtype) {
      return absl::InvalidArgumentError(absl::StrCat("schema mismatch: tensor '", a.name,
                                                     "' is ", DTypeName(a.dtype),
                                                     ", expected ", DTypeName(b.dtype)));
    }
    if (a.shape != b.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "schema mismatch: tensor '", a.name, "' has shape ", ShapeToString(a.shape),
          ", expected ", ShapeToString(b.shape)));
    }
  }
  return absl::OkStatus();
}

}  // namespace wxp
