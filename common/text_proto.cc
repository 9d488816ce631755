#include "common/text_proto.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace wxp {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Protobuf logs parse errors through its own logger; the first one, with its position,
// belongs in the caller's one-line error instead.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty()) first = absl::StrCat("line ", line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, int, const std::string&) override {}
  std::string first;
};

// The path ("utility[1].name") of the first string field holding invalid UTF-8; map
// entries are visited as the repeated key/value messages they are on the wire.
std::optional<std::string> FirstInvalidString(const Message& m, const std::string& prefix) {
  const Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    const std::string name = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string at = f->is_repeated() ? absl::StrCat(name, "[", i, "]") : name;
      if (f->type() == FieldDescriptor::TYPE_STRING) {
        std::string scratch;
        const std::string& s = f->is_repeated() ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                                : r->GetStringReference(m, f, &scratch);
        if (!IsValidUtf8(s)) return at;
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const Message& sub =
            f->is_repeated() ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f);
        if (auto bad = FirstInvalidString(sub, at)) return bad;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

namespace {

// Bytes of the well-formed UTF-8 character at p (< end), or 0 if there is none.
int Utf8CharLength(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = *p;
  int len;
  uint32_t cp;
  if (c < 0x80) {
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;  // a continuation byte first, or 0xF8..0xFF
  }
  if (end - p < len) return 0;
  for (int k = 1; k < len; ++k) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[k] & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

bool IsValidUtf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const int len = Utf8CharLength(p, end);
    if (len == 0) return false;
    p += len;
  }
  return true;
}

std::string Utf8Prefix(absl::string_view s, size_t max_bytes) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const int len = Utf8CharLength(p, end);
    if (out.size() + std::max(len, 1) > max_bytes) break;
    if (len == 0) {
      out.push_back('?');
      ++p;
    } else {
      out.append(reinterpret_cast<const char*>(p), len);
      p += len;
    }
  }
  return out;
}

absl::Status ParseTextProto(const std::string& text, const std::string& path, Message* out) {
  const std::string what =
      absl::StrCat(path, ": not a text-format ", out->GetDescriptor()->full_name(), ": ");
  FirstError errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, out)) {
    return absl::InvalidArgumentError(absl::StrCat(what, errors.first));
  }
  if (std::optional<std::string> field = FirstInvalidString(*out, "")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, "field ", *field, " is not valid UTF-8 text"));
  }
  return absl::OkStatus();
}

}  // namespace wxp
