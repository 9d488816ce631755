// Early-return helpers for absl::Status / absl::StatusOr, used across the whole tree.
#ifndef WXP_COMMON_STATUS_MACROS_H_
#define WXP_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define WXP_STATUS_CONCAT_INNER_(a, b) a##b
#define WXP_STATUS_CONCAT_(a, b) WXP_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define WXP_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status wxp_status_ = (expr);       \
    if (!wxp_status_.ok()) return wxp_status_; \
  } while (0)

// `WXP_ASSIGN_OR_RETURN(auto x, F());` binds the value of a StatusOr or returns its error.
#define WXP_ASSIGN_OR_RETURN(lhs, expr) \
  WXP_ASSIGN_OR_RETURN_IMPL_(WXP_STATUS_CONCAT_(wxp_statusor_, __LINE__), lhs, expr)

#define WXP_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // WXP_COMMON_STATUS_MACROS_H_
