#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

// Far above any adapter's header (the 72-tensor test adapter's is 9 KB), far below memory.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr char kMetadataKey[] = "__metadata__";

using Json = nlohmann::ordered_json;

absl::Status Invalid(const std::string& label, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(label, ": ", what));
}

// A non-negative integer that fits int64 (floats, negatives, huge values are refused).
bool AsIndex(const Json& j, int64_t* out) {
  if (!j.is_number_unsigned()) return false;
  const uint64_t v = j.get<uint64_t>();
  if (v > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

}  // namespace

struct SafetensorsFile::Storage {
  std::string owned;
  void* map = nullptr;
  size_t map_size = 0;
  ~Storage() {
    if (map != nullptr) ::munmap(map, map_size);
  }
  absl::string_view bytes() const {
    return map != nullptr ? absl::string_view(static_cast<const char*>(map), map_size)
                          : absl::string_view(owned);
  }
};

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    const std::string msg = absl::StrCat("cannot open ", path, ": ", std::strerror(e));
    return e == ENOENT ? absl::NotFoundError(msg) : absl::InternalError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Invalid(path, "not a regular file");
  }
  auto storage = std::make_shared<Storage>();
  if (st.st_size > 0) {
    void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot map ", path, ": ", std::strerror(e)));
    }
    storage->map = map;
    storage->map_size = static_cast<size_t>(st.st_size);
  }
  ::close(fd);  // the mapping stays valid
  return Parse(std::move(storage), path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::FromBytes(std::string bytes,
                                                           const std::string& label) {
  auto storage = std::make_shared<Storage>();
  storage->owned = std::move(bytes);
  return Parse(std::move(storage), label);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Parse(std::shared_ptr<Storage> storage,
                                                       const std::string& label) {
  SafetensorsFile file;
  file.bytes_ = storage->bytes();
  file.storage_ = std::move(storage);
  const absl::string_view all = file.bytes_;
  if (all.size() < 8) {
    return Invalid(label, absl::StrCat("truncated: ", all.size(),
                                       " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(all[i]);
  if (header_len > kMaxHeaderBytes) {
    return Invalid(label, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                       kMaxHeaderBytes, " bytes"));
  }
  if (header_len > all.size() - 8) {
    return Invalid(label, absl::StrCat("header length ", header_len, " runs past the end of the ",
                                       all.size(), "-byte file"));
  }
  const absl::string_view header = all.substr(8, header_len);
  file.data_section_ = all.substr(8 + header_len);

  // Duplicate names are legal JSON that the parser would silently merge: count top-level
  // keys during the parse instead.
  std::set<std::string> seen_keys;
  std::string duplicate;
  const Json::parser_callback_t on_event = [&](int depth, Json::parse_event_t event,
                                               Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!seen_keys.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  Json root = Json::parse(header.begin(), header.end(), on_event, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid(label, "header is not valid JSON");
  if (!root.is_object()) return Invalid(label, "header is not a JSON object");
  if (!duplicate.empty()) {
    return Invalid(label, absl::StrCat("tensor '", duplicate, "' appears twice in the header"));
  }

  struct Extent {
    int64_t begin, end;
    size_t index;
  };
  std::vector<Extent> extents;
  std::vector<TensorView> tensors;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const Json& entry = it.value();
    if (name == kMetadataKey) {
      if (!entry.is_object()) return Invalid(label, "__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) {
          return Invalid(label, absl::StrCat("__metadata__ value of '", m.key(),
                                             "' is not a string"));
        }
        file.metadata_.emplace_back(m.key(), m.value().get<std::string>());
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor '", name, "'");
    if (name.empty()) return Invalid(label, "a tensor has an empty name");
    if (!entry.is_object()) return Invalid(label, absl::StrCat(where, " is not an object"));
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return Invalid(label, absl::StrCat(where, " has no string 'dtype'"));
    }
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return Invalid(label, absl::StrCat(where, " has no 'shape' array"));
    }
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      return Invalid(label, absl::StrCat(where, " has no 'data_offsets' pair [begin, end]"));
    }
    absl::StatusOr<DType> dtype = ParseDType(dtype_it->get<std::string>());
    if (!dtype.ok()) return Invalid(label, absl::StrCat(where, ": ", dtype.status().message()));
    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    int64_t numel = 1;
    for (const Json& dim : *shape_it) {
      int64_t d;
      if (!AsIndex(dim, &d)) {
        return Invalid(label, absl::StrCat(where, " has shape entry ", dim.dump(),
                                           ", not a non-negative integer"));
      }
      if (__builtin_mul_overflow(numel, d, &numel)) {
        return Invalid(label, absl::StrCat(where, " has a shape whose size overflows"));
      }
      view.shape.push_back(d);
    }
    int64_t begin, end, nbytes;
    if (!AsIndex((*offsets_it)[0], &begin) || !AsIndex((*offsets_it)[1], &end)) {
      return Invalid(label, absl::StrCat(where, " has data_offsets ", offsets_it->dump(),
                                         ", not non-negative integers"));
    }
    if (begin > end) {
      return Invalid(label, absl::StrCat(where, " has data_offsets begin ", begin, " > end ", end));
    }
    if (static_cast<uint64_t>(end) > file.data_section_.size()) {
      return Invalid(label, absl::StrCat(where, " ends at byte ", end, ", beyond the ",
                                         file.data_section_.size(), "-byte data section"));
    }
    if (__builtin_mul_overflow(numel, static_cast<int64_t>(DTypeSize(view.dtype)), &nbytes) ||
        nbytes != end - begin) {
      return Invalid(label, absl::StrCat(where, " has shape ", ShapeString(view.shape), " of ",
                                         DTypeName(view.dtype), " but ", end - begin,
                                         " data bytes"));
    }
    view.numel = numel;
    view.data = file.data_section_.substr(begin, end - begin);
    extents.push_back({begin, end, tensors.size()});
    tensors.push_back(std::move(view));
  }

  // The tensors must tile the data section exactly, as the reference implementation demands.
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  int64_t cursor = 0;
  for (const Extent& e : extents) {
    const std::string& name = tensors[e.index].name;
    if (e.begin < cursor) {
      return Invalid(label, absl::StrCat("tensor '", name, "' overlaps the tensor before it"));
    }
    if (e.begin > cursor) {
      return Invalid(label, absl::StrCat("gap of ", e.begin - cursor, " bytes before tensor '",
                                         name, "'"));
    }
    cursor = e.end;
  }
  if (static_cast<uint64_t>(cursor) != file.data_section_.size()) {
    return Invalid(label, absl::StrCat(file.data_section_.size() - cursor,
                                       " trailing bytes after the last tensor"));
  }
  file.tensors_.reserve(tensors.size());
  for (const Extent& e : extents) file.tensors_.push_back(std::move(tensors[e.index]));
  return file;
}

std::optional<absl::Span<const float>> SafetensorsFile::FlatF32View() const {
  int64_t n = 0;
  for (const TensorView& t : tensors_) {
    if (t.dtype != DType::kF32) return std::nullopt;
    n += t.numel;
  }
  if (reinterpret_cast<uintptr_t>(data_section_.data()) % alignof(float) != 0) {
    return std::nullopt;
  }
  return absl::Span<const float>(reinterpret_cast<const float*>(data_section_.data()),
                                 static_cast<size_t>(n));
}

absl::StatusOr<std::string> SerializeSafetensors(const std::vector<TensorToWrite>& tensors,
                                                 const SafetensorsMetadata& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey) {
      return absl::InvalidArgumentError(absl::StrCat("invalid tensor name '", t.name, "'"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' given twice"));
    }
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", t.name, "' has an invalid shape ", ShapeString(t.shape)));
      }
    }
    if (static_cast<uint64_t>(numel) * DTypeSize(t.dtype) != t.data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", t.name, "' has ", t.data.size(), " bytes for shape ",
                       ShapeString(t.shape), " of ", DTypeName(t.dtype)));
    }
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string json = header.dump(-1, ' ', false, Json::error_handler_t::replace);
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  out += json;
  for (const TensorToWrite& t : tensors) out.append(t.data.data(), t.data.size());
  return out;
}

}  // namespace wxp
