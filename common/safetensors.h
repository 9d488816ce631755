// The safetensors format (SPEC 3): 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets} plus optional "__metadata__", then the data.
//
// The reader is an attack surface: it accepts a file only if every tensor is well-formed and
// the tensors tile the data section exactly (no gap, no overlap, no trailing bytes), and it
// never reads outside the buffer. Every rejection is InvalidArgument with a message naming
// the file, the tensor and the problem.
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

// One tensor of a parsed file; `data` points into the file's bytes (zero-copy).
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  absl::string_view data;
};

// A parsed, validated safetensors file, memory-mapped or held in memory. Move-only;
// the views it hands out live as long as it does. Thread-compatible (const use is safe).
class SafetensorsFile {
 public:
  // Maps and validates the file at `path`. NotFound if missing; InvalidArgument if malformed.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  // Validates an in-memory copy (uploads, fuzzing). `label` names it in error messages.
  static absl::StatusOr<SafetensorsFile> FromBytes(std::string bytes,
                                                   const std::string& label = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  ~SafetensorsFile() = default;

  // Tensors in data order (ascending offsets): the order a writer laid them out.
  const std::vector<TensorView>& tensors() const { return tensors_; }
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

// A tensor to write: its bytes must already be in `dtype` (numel * DTypeSize bytes).
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  absl::string_view data;
};

// The canonical bytes the reference safetensors library writes: compact JSON header with
// "__metadata__" first (when non-empty), tensors in the given order with contiguous
// offsets, the header padded with spaces to a multiple of 8. InvalidArgument for a
// duplicate or empty name, a negative dim, or a data size that does not match the shape.
absl::StatusOr<std::string> SerializeSafetensors(const std::vector<TensorToWrite>& tensors,
                                                 const SafetensorsMetadata& metadata = {});

}  // namespace wxp

#endif  // WXP_COMMON_SAFETENSORS_H_
