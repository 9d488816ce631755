// An adapter's schema (SPEC 3): ordered tensor names, shapes and storage dtypes. A swarm
// fixes one schema; every position, velocity and upload must match it exactly. The flat
// parameter vector lays the tensors out in schema order.
#ifndef WXP_COMMON_SCHEMA_H_
#define WXP_COMMON_SCHEMA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace wxp {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t numel() const;
  friend bool operator==(const TensorSpec& a, const TensorSpec& b) {
    return a.name == b.name && a.dtype == b.dtype && a.shape == b.shape;
  }
};

class Schema {
 public:
  Schema() = default;
  explicit Schema(std::vector<TensorSpec> tensors);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  int64_t total_params() const { return total_; }
  // Start of tensor i in the flat vector.
  int64_t offset(size_t i) const { return offsets_[i]; }
  // numel of every tensor, in order (the segment sizes per-tensor merges need).
  std::vector<int64_t> tensor_sizes() const;
  // Bytes of the tensor data in storage dtypes (the safetensors data section).
  int64_t storage_bytes() const;

  // SHA-256 hex of the canonical encoding: "wxp-schema-v1\n" then one line per tensor,
  // "<name>\t<DTYPE>\t<d0>,<d1>,...\n". Equal schemas, and only they, share it.
  std::string Fingerprint() const;

  // OK if identical; otherwise InvalidArgument naming the first difference (tensor count,
  // then name, dtype or shape of the first differing tensor).
  absl::Status CheckSame(const Schema& expected) const;

  friend bool operator==(const Schema& a, const Schema& b) { return a.tensors_ == b.tensors_; }

 private:
  std::vector<TensorSpec> tensors_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
};

std::string ShapeToString(const std::vector<int64_t>& shape);

}  // namespace wxp

#endif  // WXP_COMMON_SCHEMA_H_
