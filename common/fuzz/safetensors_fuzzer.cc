// Fuzzes the safetensors reader (SPEC 3: "the parser is an attack surface") on arbitrary
// bytes, and checks what it promises about the files it accepts: every view lies inside the
// buffer and has the size its shape and dtype say, the writer reproduces an accepted file's
// tensors and metadata (what one side accepts the other must too), and decoding into an
// adapter and serializing it back gives the same schema and values.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "tests/fuzz/fuzz_check.h"

namespace wxp {
namespace {

bool SameFloat(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

void CheckSameTensors(const SafetensorsFile& a, const SafetensorsFile& b) {
  WXP_FUZZ_CHECK(a.tensors().size() == b.tensors().size(), "tensor count changed");
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const TensorView& x = a.tensors()[i];
    const TensorView& y = b.tensors()[i];
    WXP_FUZZ_CHECK(x.name == y.name && x.dtype == y.dtype && x.shape == y.shape &&
                       x.numel == y.numel && x.data == y.data,
                   absl::StrCat("tensor ", i, " '", x.name, "' changed on the round trip"));
  }
  WXP_FUZZ_CHECK(a.metadata() == b.metadata(), "metadata changed on the round trip");
}

void Fuzz(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(input, "fuzz");
  if (!file.ok()) {
    WXP_FUZZ_CHECK(file.status().code() == absl::StatusCode::kInvalidArgument,
                   file.status().ToString());
    WXP_FUZZ_CHECK(absl::StartsWith(file.status().message(), "fuzz: "), file.status().ToString());
    return;
  }
  const absl::string_view all = file->bytes();
  WXP_FUZZ_CHECK(all == input, "bytes() differs from the input");
  for (const TensorView& t : file->tensors()) {
    WXP_FUZZ_CHECK(!t.name.empty() && t.name != "__metadata__", t.name);
    WXP_FUZZ_CHECK(
        t.data.data() >= all.data() && t.data.data() + t.data.size() <= all.data() + all.size(),
        absl::StrCat("tensor '", t.name, "' points outside the file"));
    WXP_FUZZ_CHECK(static_cast<uint64_t>(t.numel) * DTypeSize(t.dtype) == t.data.size(),
                   absl::StrCat("tensor '", t.name, "' size mismatch"));
  }
  if (std::optional<absl::Span<const float>> flat = file->FlatF32View()) {
    int64_t n = 0;
    for (const TensorView& t : file->tensors()) n += t.numel;
    WXP_FUZZ_CHECK(static_cast<int64_t>(flat->size()) == n, "FlatF32View has the wrong size");
  }

  // The writer accepts what the reader accepted and the reader reads it back unchanged.
  std::vector<TensorToWrite> tensors;
  for (const TensorView& t : file->tensors()) tensors.push_back({t.name, t.dtype, t.shape, t.data});
  absl::StatusOr<std::string> rewritten = SerializeSafetensors(tensors, file->metadata());
  WXP_FUZZ_CHECK(rewritten.ok(), rewritten.status().ToString());
  absl::StatusOr<SafetensorsFile> reread = SafetensorsFile::FromBytes(*rewritten, "rewritten");
  WXP_FUZZ_CHECK(reread.ok(), reread.status().ToString());
  CheckSameTensors(*file, *reread);

  // Decoding reads every tensor's bytes; the adapter's blob keeps schema and values.
  const Adapter adapter = AdapterFromSafetensors(*file);
  WXP_FUZZ_CHECK(static_cast<int64_t>(adapter.values.size()) == adapter.schema.total_params(),
                 "values and schema disagree");
  absl::StatusOr<std::string> blob = SerializeAdapter(adapter);
  WXP_FUZZ_CHECK(blob.ok(), blob.status().ToString());
  absl::StatusOr<std::string> id = BlobId(adapter);
  WXP_FUZZ_CHECK(id.ok() && *id == Sha256Hex(*blob), "BlobId is not the SHA-256 of the blob");
  absl::StatusOr<SafetensorsFile> blob_file = SafetensorsFile::FromBytes(*blob, "blob");
  WXP_FUZZ_CHECK(blob_file.ok(), blob_file.status().ToString());
  const Adapter back = AdapterFromSafetensors(*blob_file);
  WXP_FUZZ_CHECK(back.schema == adapter.schema, "schema changed on the adapter round trip");
  WXP_FUZZ_CHECK(back.metadata == adapter.metadata, "metadata changed on the adapter round trip");
  for (size_t i = 0; i < adapter.values.size(); ++i) {
    WXP_FUZZ_CHECK(SameFloat(back.values[i], adapter.values[i]),
                   absl::StrCat("value ", i, " changed on the adapter round trip"));
  }
}

}  // namespace
}  // namespace wxp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wxp::Fuzz(data, size);
  return 0;
}
