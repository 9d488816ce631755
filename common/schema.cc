#include "common/schema.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
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

absl::StatusOr<Schema> Schema::Create(std::vector<TensorSpec> tensors) {
  absl::flat_hash_set<absl::string_view> names;
  int64_t total = 0;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty()) return absl::InvalidArgumentError("schema has a tensor with no name");
    if (t.name.find_first_of("\t\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor name '", t.name, "' contains a tab or newline"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' appears twice"));
    }
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", t.name, "' has shape ", ShapeToString(t.shape)));
      }
    }
    if (__builtin_add_overflow(total, numel, &total)) {
      return absl::InvalidArgumentError("schema has more than 2^63 parameters");
    }
  }
  return Schema(std::move(tensors));
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
    absl::StrAppend(&canonical, t.name, "\t", DTypeName(t.dtype), "\t", absl::StrJoin(t.shape, ","),
                    "\n");
  }
  return Sha256Hex(canonical);
}

absl::Status Schema::CheckSame(const Schema& expected) const {
  if (tensors_.size() != expected.tensors_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schema mismatch: ", tensors_.size(), " tensors, expected ", expected.tensors_.size()));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorSpec& a = tensors_[i];
    const TensorSpec& b = expected.tensors_[i];
    if (a.name != b.name) {
      return absl::InvalidArgumentError(absl::StrCat("schema mismatch: tensor ", i, " is '", a.name,
                                                     "', expected '", b.name, "'"));
    }
    if (a.dtype != b.dtype) {
      return absl::InvalidArgumentError(absl::StrCat("schema mismatch: tensor '", a.name, "' is ",
                                                     DTypeName(a.dtype), ", expected ",
                                                     DTypeName(b.dtype)));
    }
    if (a.shape != b.shape) {
      return absl::InvalidArgumentError(absl::StrCat("schema mismatch: tensor '", a.name,
                                                     "' has shape ", ShapeToString(a.shape),
                                                     ", expected ", ShapeToString(b.shape)));
    }
  }
  return absl::OkStatus();
}

}  // namespace wxp
