// SHA-256 (OpenSSL EVP): blob ids and schema fingerprints are lower-case hex digests.
#ifndef WXP_COMMON_SHA256_H_
#define WXP_COMMON_SHA256_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace wxp {

// Hex digest of `bytes` (64 lower-case characters).
std::string Sha256Hex(absl::string_view bytes);

// Streaming digest for data that arrives in chunks (uploads, large files). Move-only.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&&) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&&) noexcept;

  void Update(absl::string_view bytes);
  // The hex digest of everything passed to Update; the hasher is reset afterwards.
  std::string FinalHex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Hex digest of a file's contents, read in chunks. NotFound / Internal naming the path.
absl::StatusOr<std::string> Sha256File(const std::string& path);

// True if `s` looks like a digest: 64 lower-case hex characters.
bool IsSha256Hex(absl::string_view s);

}  // namespace wxp

#endif  // WXP_COMMON_SHA256_H_
