// An adapter's schema (SPEC 3): ordered tensor names, shapes and storage dtypes. A swarm
// fixes one schema; every position, velocity and upload must match it exactly. The flat
// fp32 parameter vector lays the tensors out back to back in schema order.
#ifndef WXP_COMMON_SCHEMA_H_
#define WXP_COMMON_SCHEMA_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace wxp {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // empty for a scalar
  // Product of the dims (1 for a scalar). Meaningful for specs a Schema accepted.
  int64_t numel() const;
  friend bool operator==(const TensorSpec& a, const TensorSpec& b) {
    return a.name == b.name && a.dtype == b.dtype && a.shape == b.shape;
  }
  friend bool operator!=(const TensorSpec& a, const TensorSpec& b) { return !(a == b); }
};

// An immutable, validated list of tensors. A value type: cheap to compare, copyable, and
// safe to share between threads.
class Schema {
 public:
  // The empty schema (no tensors, no parameters).
  Schema() = default;
  // Unchecked: the caller guarantees what Create checks (literals in code and tests, specs
  // read from a validated safetensors file). Use Create for anything else.
  explicit Schema(std::vector<TensorSpec> tensors);
  // InvalidArgument, naming the tensor, unless every name is non-empty, unique, free of tab
  // and newline (so the fingerprint encoding is unambiguous), every dim is non-negative and
  // the total parameter count fits int64.
  static absl::StatusOr<Schema> Create(std::vector<TensorSpec> tensors);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  size_t size() const { return tensors_.size(); }
  const TensorSpec& tensor(size_t i) const { return tensors_[i]; }
  // Parameters of all tensors: the length of the flat vector.
  int64_t total_params() const { return total_; }
  // Start of tensor i in the flat vector; i < size().
  int64_t offset(size_t i) const { return offsets_[i]; }
  // numel of every tensor, in order (the segment sizes per-tensor merges need).
  std::vector<int64_t> tensor_sizes() const;
  // Bytes of the tensor data in storage dtypes (the safetensors data section).
  int64_t storage_bytes() const;

  // SHA-256 hex of the canonical encoding, version-tagged so it can evolve:
  //   "wxp-schema-v1\n" then per tensor "<name>\t<DTYPE>\t<d0>,<d1>,...\n"
  // (DTYPE as DTypeName, dims in decimal, nothing between the tabs for a scalar). Equal
  // schemas, and only they, share a fingerprint.
  std::string Fingerprint() const;

  // OK if *this equals `expected`; otherwise InvalidArgument naming the first difference:
  // the tensor count, else the name, dtype or shape of the first differing tensor.
  absl::Status CheckSame(const Schema& expected) const;

  friend bool operator==(const Schema& a, const Schema& b) { return a.tensors_ == b.tensors_; }
  friend bool operator!=(const Schema& a, const Schema& b) { return !(a == b); }

 private:
  std::vector<TensorSpec> tensors_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
};

// "[2, 3]" (used in error messages).
std::string ShapeToString(const std::vector<int64_t>& shape);

}  // namespace wxp

#endif  // WXP_COMMON_SCHEMA_H_
