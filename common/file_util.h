// Small file helpers with absl::Status errors that name the path and the OS reason.
#ifndef WXP_COMMON_FILE_UTIL_H_
#define WXP_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace wxp {

// "<what> <path>: <strerror(e)>" with the matching code: NotFound (ENOENT),
// PermissionDenied (EACCES, EPERM), ResourceExhausted (ENOSPC, EDQUOT), else Internal.
// The one place OS errors become statuses.
absl::Status ErrnoStatus(int e, absl::string_view what, const std::string& path);

// The whole file. NotFound if it does not exist, InvalidArgument if it is a directory.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `bytes` to `path` crash-safely: a temporary file in the same directory, fsync,
// rename over `path`, fsync of the directory. Readers see the old file or the new one,
// never a partial one; a crash leaves at most a stray "<path>.tmp.*" file.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);
// The same for a file made of several pieces written back to back, so large files (a
// safetensors header followed by tensor data that lives elsewhere) need no concatenation.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::Span<const absl::string_view> pieces);

// Creates `dir` and its parents (like mkdir -p).
absl::Status MakeDirs(const std::string& dir);

// `path` as written in the config file `config_path`: a relative path means relative to the
// file's directory (so a config works from any working directory); absolute and empty
// paths are returned unchanged.
std::string ResolveRelativeTo(const std::string& config_path, const std::string& path);

}  // namespace wxp

#endif  // WXP_COMMON_FILE_UTIL_H_
