// Particle state on the agent's disk, streamed: positions are safetensors files named by
// their blob id (exactly the bytes that travel to and from the server), velocities raw
// little-endian fp32. The move (SPEC 4 step 6) runs chunk by chunk from files to files, so
// the agent's memory stays flat whatever the adapter size: five 1 MiB-ish buffers, never
// five whole vectors.
#ifndef WXP_CLIENT_AGENT_POSITION_FILES_H_
#define WXP_CLIENT_AGENT_POSITION_FILES_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/safetensors.h"
#include "common/schema.h"
#include "common/sha256.h"
#include "common/swarm_move.h"

namespace wxp::agent {

// Reads a flat fp32 vector sequentially (schema order) from a position file, a velocity
// file, or nothing (zeros). Move-only.
class FlatReader {
 public:
  // A safetensors position whose tensors have the names and shapes of `schema`, in order
  // (dtypes may differ: positions travel in the transport dtype). InvalidArgument naming
  // the first difference; NotFound / InvalidArgument from the file.
  static absl::StatusOr<FlatReader> Position(const std::string& path, const Schema& schema);
  // A raw fp32 file of exactly n values (InvalidArgument otherwise).
  static absl::StatusOr<FlatReader> Velocity(const std::string& path, int64_t n);
  static FlatReader Zeros(int64_t n);

  FlatReader(FlatReader&& other) noexcept { *this = std::move(other); }
  FlatReader& operator=(FlatReader&& other) noexcept;
  ~FlatReader();

  // The next n values; OutOfRange past the end, DataLoss if the file shrank.
  absl::Status Read(float* out, int64_t n);
  int64_t size() const { return total_; }

 private:
  FlatReader() = default;
  struct Segment {
    int64_t file_offset = 0;  // of the tensor's data
    int64_t numel = 0;
    DType dtype = DType::kF32;
  };
  std::string path_;
  int fd_ = -1;
  std::vector<Segment> segments_;  // empty: zeros
  int64_t total_ = 0;
  int64_t pos_ = 0;  // flat index of the next value
  size_t seg_ = 0;
  int64_t in_seg_ = 0;
  std::vector<char> buf_;
};

// Writes a position as a safetensors file laid out as `schema` (its dtypes are the storage
// dtypes), hashing as it goes, into `dir`; Finish() makes it durable under its blob id.
class PositionWriter {
 public:
  static absl::StatusOr<PositionWriter> Create(const std::string& dir, const Schema& schema,
                                               const SafetensorsMetadata& metadata);
  PositionWriter(PositionWriter&& other) noexcept { *this = std::move(other); }
  PositionWriter& operator=(PositionWriter&& other) noexcept;
  ~PositionWriter();  // removes the temporary file if Finish() was not reached

  // Appends n values, converted to the tensors' dtypes (rounding to nearest even).
  absl::Status Write(const float* values, int64_t n);
  // fsync, rename to dir/<blob id>, fsync dir. Returns the blob id.
  absl::StatusOr<std::string> Finish();

 private:
  PositionWriter() = default;
  std::string dir_, tmp_;
  FILE* f_ = nullptr;
  Schema schema_;
  Sha256Hasher hasher_;
  size_t seg_ = 0;
  int64_t in_seg_ = 0;
  int64_t written_ = 0;
  std::vector<char> buf_;
};

// Writes a raw fp32 velocity file crash-safely (temporary, fsync, rename on Finish).
class VelocityWriter {
 public:
  static absl::StatusOr<VelocityWriter> Create(const std::string& path);
  VelocityWriter(VelocityWriter&& other) noexcept { *this = std::move(other); }
  VelocityWriter& operator=(VelocityWriter&& other) noexcept;
  ~VelocityWriter();
  absl::Status Write(const float* values, int64_t n);
  absl::Status Finish();

 private:
  VelocityWriter() = default;
  std::string path_, tmp_;
  FILE* f_ = nullptr;
};

// Values per chunk of the streamed operations (1 MiB of fp32).
inline constexpr int64_t kChunkValues = 1 << 18;

// Where one move reads from.
struct MoveInputs {
  FlatReader* x;
  FlatReader* v;
  FlatReader* p;
  FlatReader* g;
  FlatReader* gw;
};

// SPEC 4 steps 5-6 streamed: (restart: x <- p, v <- 0), then
// v <- a v + b (p - x) + c (g - x) + d (x - g_w); x <- x + step v. The new x goes to
// `x_out` (stored in the transport dtype: a no-op for F32), the new v to `v_out` (always
// fp32). The arithmetic is MoveParticle's, element for element, so an F32 swarm moves
// exactly as the in-process runner does.
absl::Status StreamMove(const MoveCoefficients& k, bool restart, const MoveInputs& in,
                        PositionWriter& x_out, VelocityWriter& v_out);

// v = target - x, streamed (SPEC 4 step 2).
absl::Status StreamDifference(FlatReader& target, FlatReader& x, VelocityWriter& v_out);

// The whole position as fp32 (for in-process evaluators, which need it in memory anyway).
absl::StatusOr<std::vector<float>> LoadFlat(const std::string& path, const Schema& schema);

}  // namespace wxp::agent

#endif  // WXP_CLIENT_AGENT_POSITION_FILES_H_
