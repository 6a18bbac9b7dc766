// Result<T>: the project-wide way to return a value or an error.
//
// Error codes follow abseil's meaning of a retry: kInvalidArgument and
// kFailedPrecondition stay wrong until the input changes (terminal), while
// kUnavailable, kAborted, kDeadlineExceeded and kResourceExhausted may succeed
// when retried with backoff. Messages are written for the user: what failed and
// what to do. This header lives in crds/, the lowest library, so every module
// can use it.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace vmlab {

enum class ErrorCode {
  kInvalidArgument,
  kFailedPrecondition,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kResourceExhausted,
  kUnavailable,
  kAborted,
  kDeadlineExceeded,
  kInternal,
};

// Stable lower-case name of `code`, used in logs and metrics labels.
[[nodiscard]] std::string_view ErrorCodeName(ErrorCode code);

// True when retrying the same operation later may succeed.
[[nodiscard]] bool IsRetryable(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

// Result of an operation that yields nothing but may fail.
using Status = std::expected<void, Error>;

[[nodiscard]] inline std::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace vmlab
