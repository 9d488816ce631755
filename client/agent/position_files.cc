#include "client/agent/position_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/dtype.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace wxp::agent {
namespace fs = std::filesystem;

namespace {

absl::Status PreadAll(int fd, char* out, size_t n, int64_t offset, const std::string& path) {
  while (n > 0) {
    ssize_t r = pread(fd, out, n, offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot read", path);
    }
    if (r == 0) return absl::DataLossError(absl::StrCat(path, ": file shrank while being read"));
    out += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
  return absl::OkStatus();
}

absl::Status SyncAndClose(FILE*& f, const std::string& path) {
  bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  int e = errno;
  ok = fclose(f) == 0 && ok;
  f = nullptr;
  if (!ok) return ErrnoStatus(e ? e : errno, "cannot write", path);
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ErrnoStatus(errno, "cannot open directory", dir);
  fsync(fd);
  close(fd);
  return absl::OkStatus();
}

absl::StatusOr<FILE*> OpenTemp(const std::string& path, std::string* tmp) {
  *tmp = absl::StrCat(path, ".tmp.", getpid());
  FILE* f = fopen(tmp->c_str(), "wb");
  if (f == nullptr) return ErrnoStatus(errno, "cannot create", *tmp);
  return f;
}

}  // namespace

absl::StatusOr<FlatReader> FlatReader::Position(const std::string& path, const Schema& schema) {
  // The mapping gives the layout; the data is read with pread so that untouched pages of a
  // large file never count against this process's memory.
  WXP_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
  const auto& tensors = file.tensors();
  if (tensors.size() != schema.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " has ", tensors.size(), " tensors; the swarm's schema has ", schema.size()));
  }
  FlatReader r;
  r.path_ = path;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec& want = schema.tensor(i);
    if (tensors[i].name != want.name || tensors[i].shape != want.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor ", i, " is ", tensors[i].name, " ", ShapeToString(tensors[i].shape),
          ", the swarm's schema has ", want.name, " ", ShapeToString(want.shape)));
    }
    if (tensors[i].dtype == DType::kF64) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", tensors[i].name, " is F64, not a position dtype"));
    }
    r.segments_.push_back(
        {tensors[i].data.data() - file.bytes().data(), tensors[i].numel, tensors[i].dtype});
    r.total_ += tensors[i].numel;
  }
  r.fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r.fd_ < 0) return ErrnoStatus(errno, "cannot open", path);
  return r;
}

absl::StatusOr<FlatReader> FlatReader::Velocity(const std::string& path, int64_t n) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot stat", path);
  if (size != static_cast<uintmax_t>(n) * 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " holds ", size, " bytes, expected ", n * 4, " (", n, " fp32 values)"));
  }
  FlatReader r;
  r.path_ = path;
  r.segments_.push_back({0, n, DType::kF32});
  r.total_ = n;
  r.fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r.fd_ < 0) return ErrnoStatus(errno, "cannot open", path);
  return r;
}

FlatReader FlatReader::Zeros(int64_t n) {
  FlatReader r;
  r.total_ = n;
  return r;
}

FlatReader& FlatReader::operator=(FlatReader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    segments_ = std::move(o.segments_);
    total_ = o.total_;
    pos_ = o.pos_;
    seg_ = o.seg_;
    in_seg_ = o.in_seg_;
  }
  return *this;
}

FlatReader::~FlatReader() {
  if (fd_ >= 0) close(fd_);
}

absl::Status FlatReader::Read(float* out, int64_t n) {
  if (n > total_ - pos_) {
    return absl::OutOfRangeError(absl::StrCat(path_, ": read past the end"));
  }
  if (segments_.empty()) {
    std::fill(out, out + n, 0.0f);
    pos_ += n;
    return absl::OkStatus();
  }
  while (n > 0) {
    while (segments_[seg_].numel == in_seg_) {  // also skips empty tensors
      ++seg_;
      in_seg_ = 0;
    }
    const Segment& s = segments_[seg_];
    const int64_t take = std::min(n, s.numel - in_seg_);
    const int size = DTypeSize(s.dtype);
    if (s.dtype == DType::kF32) {
      WXP_RETURN_IF_ERROR(PreadAll(fd_, reinterpret_cast<char*>(out), take * 4,
                                   s.file_offset + in_seg_ * 4, path_));
    } else {
      buf_.resize(take * size);
      WXP_RETURN_IF_ERROR(
          PreadAll(fd_, buf_.data(), buf_.size(), s.file_offset + in_seg_ * size, path_));
      ToFloat32(s.dtype, buf_.data(), take, out);
    }
    out += take;
    n -= take;
    pos_ += take;
    in_seg_ += take;
  }
  return absl::OkStatus();
}

absl::StatusOr<PositionWriter> PositionWriter::Create(const std::string& dir, const Schema& schema,
                                                      const SafetensorsMetadata& metadata) {
  std::vector<TensorToWrite> layout;
  for (const TensorSpec& t : schema.tensors()) {
    layout.push_back({t.name, t.dtype, t.shape, {}});
  }
  // The header only needs sizes: give each tensor a view of the right length over nothing
  // readable (it is never dereferenced).
  static const char kNothing = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    layout[i].data = absl::string_view(
        &kNothing, static_cast<size_t>(schema.tensor(i).numel() * DTypeSize(layout[i].dtype)));
  }
  WXP_ASSIGN_OR_RETURN(std::string header, SerializeSafetensorsHeader(layout, metadata));
  PositionWriter w;
  w.dir_ = dir;
  w.schema_ = schema;
  WXP_ASSIGN_OR_RETURN(w.f_, OpenTemp(dir + "/position", &w.tmp_));
  if (fwrite(header.data(), 1, header.size(), w.f_) != header.size()) {
    return ErrnoStatus(errno, "cannot write", w.tmp_);
  }
  w.hasher_.Update(header);
  return w;
}

PositionWriter& PositionWriter::operator=(PositionWriter&& o) noexcept {
  if (this != &o) {
    if (f_ != nullptr) {
      fclose(f_);
      std::remove(tmp_.c_str());
    }
    dir_ = std::move(o.dir_);
    tmp_ = std::move(o.tmp_);
    f_ = std::exchange(o.f_, nullptr);
    schema_ = std::move(o.schema_);
    hasher_ = std::move(o.hasher_);
    seg_ = o.seg_;
    in_seg_ = o.in_seg_;
    written_ = o.written_;
  }
  return *this;
}

PositionWriter::~PositionWriter() {
  if (f_ != nullptr) {
    fclose(f_);
    std::remove(tmp_.c_str());
  }
}

absl::Status PositionWriter::Write(const float* values, int64_t n) {
  while (n > 0) {
    while (seg_ < schema_.size() && in_seg_ == schema_.tensor(seg_).numel()) {
      ++seg_;
      in_seg_ = 0;
    }
    if (seg_ >= schema_.size()) {
      return absl::OutOfRangeError("position writer: more values than the schema holds");
    }
    const TensorSpec& t = schema_.tensor(seg_);
    const int64_t take = std::min(n, t.numel() - in_seg_);
    const int size = DTypeSize(t.dtype);
    buf_.resize(take * size);
    FromFloat32(t.dtype, values, take, buf_.data());
    if (fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) {
      return ErrnoStatus(errno, "cannot write", tmp_);
    }
    hasher_.Update(absl::string_view(buf_.data(), buf_.size()));
    values += take;
    n -= take;
    written_ += take;
    in_seg_ += take;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PositionWriter::Finish() {
  if (written_ != schema_.total_params()) {
    return absl::FailedPreconditionError(absl::StrCat("position writer: ", written_, " of ",
                                                      schema_.total_params(), " values written"));
  }
  WXP_RETURN_IF_ERROR(SyncAndClose(f_, tmp_));
  const std::string id = hasher_.FinalHex();
  const std::string final_path = dir_ + "/" + id;
  if (std::rename(tmp_.c_str(), final_path.c_str()) != 0) {
    return ErrnoStatus(errno, "cannot rename to", final_path);
  }
  WXP_RETURN_IF_ERROR(SyncDir(dir_));
  return id;
}

absl::StatusOr<VelocityWriter> VelocityWriter::Create(const std::string& path) {
  VelocityWriter w;
  w.path_ = path;
  WXP_ASSIGN_OR_RETURN(w.f_, OpenTemp(path, &w.tmp_));
  return w;
}

VelocityWriter& VelocityWriter::operator=(VelocityWriter&& o) noexcept {
  if (this != &o) {
    if (f_ != nullptr) {
      fclose(f_);
      std::remove(tmp_.c_str());
    }
    path_ = std::move(o.path_);
    tmp_ = std::move(o.tmp_);
    f_ = std::exchange(o.f_, nullptr);
  }
  return *this;
}

VelocityWriter::~VelocityWriter() {
  if (f_ != nullptr) {
    fclose(f_);
    std::remove(tmp_.c_str());
  }
}

absl::Status VelocityWriter::Write(const float* values, int64_t n) {
  if (fwrite(values, 4, n, f_) != static_cast<size_t>(n)) {
    return ErrnoStatus(errno, "cannot write", tmp_);
  }
  return absl::OkStatus();
}

absl::Status VelocityWriter::Finish() {
  WXP_RETURN_IF_ERROR(SyncAndClose(f_, tmp_));
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(errno, "cannot rename to", path_);
  }
  return SyncDir(fs::path(path_).parent_path().string());
}

absl::Status StreamMove(const MoveCoefficients& k, bool restart, const MoveInputs& in,
                        PositionWriter& x_out, VelocityWriter& v_out) {
  const int64_t n = in.x->size();
  for (FlatReader* r : {in.v, in.p, in.g, in.gw}) {
    if (r->size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("move inputs differ in length: ", n, " and ", r->size()));
    }
  }
  std::vector<float> x(kChunkValues), v(kChunkValues), p(kChunkValues), g(kChunkValues),
      gw(kChunkValues);
  for (int64_t done = 0; done < n;) {
    const int64_t m = std::min(kChunkValues, n - done);
    WXP_RETURN_IF_ERROR(in.x->Read(x.data(), m));
    WXP_RETURN_IF_ERROR(in.v->Read(v.data(), m));
    WXP_RETURN_IF_ERROR(in.p->Read(p.data(), m));
    WXP_RETURN_IF_ERROR(in.g->Read(g.data(), m));
    WXP_RETURN_IF_ERROR(in.gw->Read(gw.data(), m));
    if (restart) RestartParticle(x.data(), v.data(), p.data(), m);
    MoveParticle(k, x.data(), v.data(), p.data(), g.data(), gw.data(), m);
    WXP_RETURN_IF_ERROR(x_out.Write(x.data(), m));
    WXP_RETURN_IF_ERROR(v_out.Write(v.data(), m));
    done += m;
  }
  return absl::OkStatus();
}

absl::Status StreamDifference(FlatReader& target, FlatReader& x, VelocityWriter& v_out) {
  const int64_t n = x.size();
  if (target.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("velocity target has ", target.size(), " values, the position ", n));
  }
  std::vector<float> t(kChunkValues), xs(kChunkValues), v(kChunkValues);
  for (int64_t done = 0; done < n;) {
    const int64_t m = std::min(kChunkValues, n - done);
    WXP_RETURN_IF_ERROR(target.Read(t.data(), m));
    WXP_RETURN_IF_ERROR(x.Read(xs.data(), m));
    Difference(t.data(), xs.data(), v.data(), m);
    WXP_RETURN_IF_ERROR(v_out.Write(v.data(), m));
    done += m;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> LoadFlat(const std::string& path, const Schema& schema) {
  WXP_ASSIGN_OR_RETURN(FlatReader r, FlatReader::Position(path, schema));
  std::vector<float> out(r.size());
  WXP_RETURN_IF_ERROR(r.Read(out.data(), r.size()));
  return out;
}

}  // namespace wxp::agent
