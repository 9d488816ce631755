#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

// Far above any adapter's header (the 72-tensor test adapter's is 9 KB), far below memory.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr size_t kMaxHeaderDepth = 3;
constexpr char kMetadataKey[] = "__metadata__";

// The reader parses into nlohmann::json (std::map objects, O(log n) inserts): ordered_json's
// linear-search inserts would make a header of a million same-length keys take hours. The
// only order the reader needs besides data order is that of "__metadata__", recorded during
// the parse. The writer, whose input is trusted, uses ordered_json to control key order.
using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

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

// Control characters in a tensor name have no legitimate use and would make names ambiguous
// in the schema fingerprint's line format and in logs.
bool HasControlChar(absl::string_view name) {
  return std::any_of(name.begin(), name.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// Thrown from the parser callback to stop a parse early; never leaves this file.
struct HeaderRejected {
  std::string why;
};

// Parses the header with two guards nlohmann lacks. Duplicate keys are legal JSON that the
// parser silently merges (a second "a" would hide the first tensor), so keys are collected
// per object. A safetensors header nests at most three containers deep (root, tensor entry,
// shape), so deeper input is refused before a "[[[[..." header can exhaust memory.
struct ParsedHeader {
  Json root;
  std::vector<std::string> metadata_keys;  // "__metadata__" keys in header order
};

absl::StatusOr<ParsedHeader> ParseHeaderJson(absl::string_view header) {
  ParsedHeader out;
  struct Frame {
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<Frame> frames;
  const Json::parser_callback_t on_event = [&](int /*depth*/, Json::parse_event_t event,
                                               Json& value) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (frames.size() >= kMaxHeaderDepth) {
          throw HeaderRejected{
              absl::StrCat("header nests deeper than ", kMaxHeaderDepth, " levels")};
        }
        frames.emplace_back();
        break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        frames.pop_back();
        break;
      case Json::parse_event_t::key: {
        Frame& top = frames.back();
        top.last_key = value.get<std::string>();
        if (!top.keys.insert(top.last_key).second) {
          throw HeaderRejected{
              frames.size() == 1
                  ? absl::StrCat("tensor '", top.last_key, "' appears twice in the header")
                  : absl::StrCat("key '", top.last_key, "' appears twice in '",
                                 frames[frames.size() - 2].last_key, "'")};
        }
        if (frames.size() == 2 && frames[0].last_key == kMetadataKey) {
          out.metadata_keys.push_back(top.last_key);
        }
        break;
      }
      case Json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    out.root = Json::parse(header.begin(), header.end(), on_event);
    return out;
  } catch (const HeaderRejected& e) {
    return absl::InvalidArgumentError(e.why);
  } catch (const Json::exception& e) {
    // e.g. "[json.exception.out_of_range.406] number overflow parsing '1e999'".
    return absl::InvalidArgumentError(absl::StrCat("header is not valid JSON: ", e.what()));
  }
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

  if (header.empty() || header[0] != '{') {
    return Invalid(label, "header does not start with '{'");
  }
  absl::StatusOr<ParsedHeader> parsed = ParseHeaderJson(header);
  if (!parsed.ok()) return Invalid(label, parsed.status().message());
  const Json& root = parsed->root;
  if (!root.is_object()) return Invalid(label, "header is not a JSON object");

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
      for (const std::string& key : parsed->metadata_keys) {
        auto value_it = entry.find(key);  // always present: the key was recorded from it
        if (value_it == entry.end()) continue;
        const Json& value = *value_it;
        if (!value.is_string()) {
          return Invalid(label, absl::StrCat("__metadata__ value of '", key, "' is not a string"));
        }
        file.metadata_.emplace_back(key, value.get<std::string>());
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor '", name, "'");
    if (name.empty()) return Invalid(label, "a tensor has an empty name");
    if (HasControlChar(name)) {
      return Invalid(label,
                     absl::StrCat(Json(name).dump(), ": tensor name has a control character"));
    }
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
      return Invalid(label,
                     absl::StrCat(where, " has shape ", ShapeString(view.shape), " of ",
                                  DTypeName(view.dtype), " but ", end - begin, " data bytes"));
    }
    view.numel = numel;
    view.data = file.data_section_.substr(begin, end - begin);
    extents.push_back({begin, end, tensors.size()});
    tensors.push_back(std::move(view));
  }

  // The tensors must tile the data section exactly, as the reference implementation demands.
  std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
    return std::tie(a.begin, a.end, a.index) < std::tie(b.begin, b.end, b.index);
  });
  int64_t cursor = 0;
  for (const Extent& e : extents) {
    const std::string& name = tensors[e.index].name;
    if (e.begin < cursor) {
      return Invalid(label, absl::StrCat("tensor '", name, "' overlaps the tensor before it"));
    }
    if (e.begin > cursor) {
      return Invalid(
          label, absl::StrCat("gap of ", e.begin - cursor, " bytes before tensor '", name, "'"));
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

absl::StatusOr<std::string> SerializeSafetensorsHeader(const std::vector<TensorToWrite>& tensors,
                                                       const SafetensorsMetadata& metadata) {
  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) {
    OrderedJson meta = OrderedJson::object();
    for (const auto& [k, v] : metadata) {
      if (meta.contains(k)) {
        return absl::InvalidArgumentError(absl::StrCat("metadata key '", k, "' given twice"));
      }
      meta[k] = v;
    }
    header[kMetadataKey] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey || HasControlChar(t.name)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid tensor name '", t.name, "'"));
    }
    if (header.contains(t.name)) {
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
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' has ", t.data.size(),
                                                     " bytes for shape ", ShapeString(t.shape),
                                                     " of ", DTypeName(t.dtype)));
    }
    // Key order dtype, shape, data_offsets is the reference writer's (its struct order).
    OrderedJson entry = OrderedJson::object();
    entry["dtype"] = DTypeName(t.dtype);
    entry["shape"] = t.shape;
    entry["data_offsets"] = OrderedJson::array({offset, offset + t.data.size()});
    header[t.name] = std::move(entry);
    offset += t.data.size();
  }
  std::string json;
  try {
    // Compact, UTF-8 kept as is (not \u-escaped): byte-for-byte what serde_json emits.
    json = header.dump();
  } catch (const OrderedJson::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor or metadata name is not valid UTF-8: ", e.what()));
  }
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
  out += json;
  return out;
}

absl::StatusOr<std::string> SerializeSafetensors(const std::vector<TensorToWrite>& tensors,
                                                 const SafetensorsMetadata& metadata) {
  absl::StatusOr<std::string> out = SerializeSafetensorsHeader(tensors, metadata);
  if (!out.ok()) return out.status();
  size_t total = out->size();
  for (const TensorToWrite& t : tensors) total += t.data.size();
  out->reserve(total);
  for (const TensorToWrite& t : tensors) out->append(t.data.data(), t.data.size());
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const SafetensorsMetadata& metadata) {
  absl::StatusOr<std::string> header = SerializeSafetensorsHeader(tensors, metadata);
  if (!header.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", header.status().message()));
  }
  std::vector<absl::string_view> pieces;
  pieces.reserve(tensors.size() + 1);
  pieces.push_back(*header);
  for (const TensorToWrite& t : tensors) pieces.push_back(t.data);
  return WriteFileAtomically(path, pieces);
}

}  // namespace wxp
