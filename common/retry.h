// Which failures a WXP client retries, decided by the status code alone (never by the
// message text, which is for people and may change). This is the client half of the code
// table in proto/wxp.proto; an independent client should make the same decision.
#ifndef WXP_COMMON_RETRY_H_
#define WXP_COMMON_RETRY_H_

#include "absl/status/status.h"

namespace wxp {

// True if calling again, unchanged and later, may succeed:
//   UNAVAILABLE        the server is unreachable, restarting, its disk is full, or what the
//                      call needs is not there yet
//   DEADLINE_EXCEEDED  no answer in time (a busy server, a long round trip)
//   ABORTED            a conflicting operation ran at the same time (e.g. a concurrent
//                      upload of the same blob)
//   CANCELLED          the server cancelled the call while shutting down
//   INTERNAL           a broken stream (RST_STREAM) or an unexpected server failure; retried
//                      with backoff so a daemon rides out a server restart
// False for everything else, in particular RESOURCE_EXHAUSTED (a blob, chunk or message over
// a limit: the same request will be refused again) and the refusals of SPEC 5.4
// (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, PERMISSION_DENIED, ...). OK is not
// retryable (there is nothing to retry).
//
// Only idempotent calls may be retried blindly; every WXP call is (reports carry an
// idempotency key, uploads resume).
bool IsRetryable(const absl::Status& status);

}  // namespace wxp

#endif  // WXP_COMMON_RETRY_H_
