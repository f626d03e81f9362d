// common/status.h
//
// Status and Result<T>: how every recoverable error crosses a part boundary in apxserve.
// No exception crosses a part; libraries that throw (yaml-cpp, CLI11, nlohmann::json) are
// caught in their adapter file and turned into a Status whose message names the culprit
// (spec field and line, CSV line and column, request key).
//
// Thread safety: Status and Result are plain values; const methods may be called concurrently.
#ifndef APX_COMMON_STATUS_H_
#define APX_COMMON_STATUS_H_

#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace apx {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kOutOfRange,
  kFailedPrecondition,
  kUnavailable,
  kDeadlineExceeded,
  kDataLoss,
  kIoError,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status OutOfRange(std::string msg) { return {StatusCode::kOutOfRange, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) { return {StatusCode::kFailedPrecondition, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status DeadlineExceeded(std::string msg) { return {StatusCode::kDeadlineExceeded, std::move(msg)}; }
  static Status DataLoss(std::string msg) { return {StatusCode::kDataLoss, std::move(msg)}; }
  static Status IoError(std::string msg) { return {StatusCode::kIoError, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<prefix>: <message>" (adds context while propagating).
  Status WithPrefix(std::string_view prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Result<T> holds either a value or a non-OK Status (a small std::expected).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace apx

#define APX_CONCAT_INNER_(a, b) a##b
#define APX_CONCAT_(a, b) APX_CONCAT_INNER_(a, b)

#define APX_RETURN_IF_ERROR(expr)            \
  do {                                       \
    ::apx::Status apx_status_ = (expr);      \
    if (!apx_status_.ok()) return apx_status_; \
  } while (0)

#define APX_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define APX_ASSIGN_OR_RETURN(lhs, expr) \
  APX_ASSIGN_OR_RETURN_IMPL_(APX_CONCAT_(apx_result_, __LINE__), lhs, expr)

// Invariant checks (programmer errors, never user input). Aborts with a message when false.
#define APX_CHECK(cond)                                                              \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::cerr << __FILE__ << ":" << __LINE__ << ": check failed: " #cond << "\n"; \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#ifdef NDEBUG
#define APX_DCHECK(cond) \
  do {                   \
  } while (0)
#else
#define APX_DCHECK(cond) APX_CHECK(cond)
#endif

#endif  // APX_COMMON_STATUS_H_
