// The safetensors format (SPEC 3): 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets} plus optional "__metadata__", then the data.
//
// The reader is an attack surface. It follows the reference (Rust) crate's rules: header
// length at most 100 MB and inside the file; the header a JSON object starting with '{';
// each tensor {dtype, shape, data_offsets} with non-negative integer shape and offsets
// (floats, negatives, 1e999, strings refused), a byte size equal to numel * dtype size, and
// the tensors tiling the data section exactly: no gap, no overlap, no trailing bytes.
// Beyond the crate it refuses duplicate keys (which JSON parsers silently merge), dtypes
// other than F32/F16/BF16/F64, empty tensor names or names with control characters, and
// nesting deeper than a header needs; unknown fields inside a tensor entry are ignored, as
// the crate does. It never reads outside the buffer and never throws. Every rejection is
// InvalidArgument with a message starting with the file's name and naming the tensor and the
// problem.
#ifndef WXP_COMMON_SAFETENSORS_H_
#define WXP_COMMON_SAFETENSORS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/dtype.h"

namespace wxp {

// Ordered "__metadata__" entries, as they appear in the header.
using SafetensorsMetadata = std::vector<std::pair<std::string, std::string>>;

// One tensor of a parsed file. `data` points into the file's bytes (zero-copy, not
// owned): numel * DTypeSize(dtype) bytes, little-endian, with no alignment guarantee.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  absl::string_view data;
};

// A parsed, validated safetensors file, memory-mapped or held in memory.
//
// Ownership: the object owns the bytes (an mmap released on destruction, or a string); every
// view it hands out (tensors()[i].data, bytes(), FlatF32View()) points into them and is valid
// exactly as long as the object, including after it is moved (the storage does not move).
// Move-only. Thread-compatible: concurrent const use is safe.
//
// A mapped file must not be truncated by another process while open: the kernel would
// answer reads of the lost pages with SIGBUS. WXP only maps immutable, renamed-into-place
// files (blobs, written adapters), so this does not arise in the product.
class SafetensorsFile {
 public:
  // Maps and validates the file at `path`. NotFound if it does not exist, InvalidArgument
  // (message starting with `path`) if it is not a regular file or is malformed, Internal for
  // other OS errors.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  // Validates an in-memory buffer (uploads, fuzzing); `label` starts every error message.
  static absl::StatusOr<SafetensorsFile> FromBytes(std::string bytes,
                                                   const std::string& label = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  ~SafetensorsFile() = default;

  // Tensors in data order (ascending data_offsets), which is the order the reference
  // writer lays them out in and lists them in its header.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // "__metadata__" entries in header order; empty when the header has none.
  const SafetensorsMetadata& metadata() const { return metadata_; }
  // The whole file.
  absl::string_view bytes() const { return bytes_; }

  // Zero-copy flat fp32 view of all parameters, in tensor order, when every tensor is F32
  // and the data section is 4-byte aligned in memory; nullopt otherwise.
  std::optional<absl::Span<const float>> FlatF32View() const;

 private:
  struct Storage;
  SafetensorsFile() = default;
  static absl::StatusOr<SafetensorsFile> Parse(std::shared_ptr<Storage> storage,
                                               const std::string& label);

  std::shared_ptr<Storage> storage_;  // owns the bytes (mapping or string)
  absl::string_view bytes_;
  absl::string_view data_section_;
  std::vector<TensorView> tensors_;
  SafetensorsMetadata metadata_;
};

// A tensor to write. `data` (not owned; must outlive the call) holds numel * DTypeSize(dtype)
// bytes already in `dtype`, little-endian.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  absl::string_view data;
};

// The canonical layout the reference (Python/Rust) safetensors library writes: the 8-byte
// length, then a compact JSON header with "__metadata__" first (only when `metadata` is
// non-empty), the tensors in the given order as {"dtype","shape","data_offsets"} with
// contiguous offsets, padded with spaces to a multiple of 8 bytes, then the data. A writer
// that passes tensors in the order a file listed them reproduces that file byte for byte.
//
// Failure is InvalidArgument: an empty, duplicate or "__metadata__" tensor name, a
// duplicate metadata key, a name that is not valid UTF-8, a negative or overflowing shape,
// or a data size that does not match shape and dtype.
absl::StatusOr<std::string> SerializeSafetensors(const std::vector<TensorToWrite>& tensors,
                                                 const SafetensorsMetadata& metadata = {});

// Only the part before the data: length prefix plus padded JSON header. Streaming writers
// and hashers follow it with each tensor's data in order. Fails as SerializeSafetensors.
absl::StatusOr<std::string> SerializeSafetensorsHeader(const std::vector<TensorToWrite>& tensors,
                                                       const SafetensorsMetadata& metadata = {});

// Writes SerializeSafetensors' bytes to `path` crash-safely (temporary file in the same
// directory, fsync, rename; see WriteFileAtomically) without assembling them in memory.
// InvalidArgument as above (nothing is written); I/O errors as WriteFileAtomically.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const SafetensorsMetadata& metadata = {});

}  // namespace wxp

#endif  // WXP_COMMON_SAFETENSORS_H_
