#include "server/service/parsed_request.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace wxp::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// Nesting deeper than protobuf's own default limit is not a request of ours anyway.
constexpr int kMaxDepth = 100;

// The path of the first string field under `type` whose bytes are not UTF-8, or "".
std::string FirstBadString(const Descriptor& type, const UnknownFieldSet& fields,
                           const std::string& prefix, int depth) {
  if (depth > kMaxDepth) return "";
  std::map<int, int> seen;  // field number -> occurrences so far
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    const FieldDescriptor* field = type.FindFieldByNumber(f.number());
    const int occurrence = seen[f.number()]++;
    if (field == nullptr || f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    std::string path = absl::StrCat(prefix, field->name());
    if (field->is_repeated()) absl::StrAppend(&path, "[", occurrence, "]");
    const std::string& bytes = f.length_delimited();
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (!google::protobuf::internal::IsStructurallyValidUTF8(bytes.data(),
                                                               static_cast<int>(bytes.size()))) {
        return path;
      }
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
      UnknownFieldSet inner;
      if (!inner.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
      std::string bad = FirstBadString(*field->message_type(), inner, path + ".", depth + 1);
      if (!bad.empty()) return bad;
    }
  }
  return "";
}

}  // namespace

absl::Status ExplainUnparsable(const Descriptor& type, absl::string_view bytes) {
  const std::string what = absl::StrCat("request is not a valid ", type.full_name(), ": ");
  UnknownFieldSet fields;
  if (!fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, "its bytes are not a protocol buffer message"));
  }
  const std::string bad = FirstBadString(type, fields, "", 0);
  if (!bad.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, "string field ", bad, " is not valid UTF-8"));
  }
  return absl::OkStatus();
}

absl::Status ParseRequest(grpc::ByteBuffer* buffer, google::protobuf::Message* out) {
  const Descriptor& type = *out->GetDescriptor();
  if (buffer == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("request is not a valid ", type.full_name(), ": no message was sent"));
  }
  bool parsed = false;
  {
    grpc::ProtoBufferReader reader(buffer);
    parsed = reader.status().ok() && out->ParseFromZeroCopyStream(&reader);
  }
  if (parsed) {
    buffer->Clear();
    return absl::OkStatus();
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (buffer->Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  buffer->Clear();
  absl::Status why = ExplainUnparsable(type, bytes);
  if (why.ok()) {
    why = absl::InvalidArgumentError(
        absl::StrCat("request is not a valid ", type.full_name(), ": it does not parse"));
  }
  return why;
}

}  // namespace wxp::server
