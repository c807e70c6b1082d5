// Status propagation macros. Debian's Abseil (20220623) ships neither RETURN_IF_ERROR nor
// ASSIGN_OR_RETURN, so the project defines its own, once, here.
#ifndef ANERD_COMMON_STATUS_MACROS_H_
#define ANERD_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ANERD_STATUS_CONCAT_INNER_(a, b) a##b
#define ANERD_STATUS_CONCAT_(a, b) ANERD_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing function if not OK.
#define ANERD_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status anerd_status_ = (expr);         \
    if (!anerd_status_.ok()) return anerd_status_; \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status from the enclosing
// function. `lhs` may be a declaration (`auto x`) or an existing lvalue.
#define ANERD_ASSIGN_OR_RETURN(lhs, rexpr) \
  ANERD_ASSIGN_OR_RETURN_IMPL_(ANERD_STATUS_CONCAT_(anerd_statusor_, __LINE__), lhs, rexpr)

#define ANERD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return statusor.status();            \
  lhs = std::move(statusor).value()

#endif  // ANERD_COMMON_STATUS_MACROS_H_
