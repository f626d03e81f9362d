#include "model/model.h"

namespace apx::model {

std::string_view TaskName(Task task) {
  switch (task) {
    case Task::kRegression: return "regression";
    case Task::kBinary: return "binary";
  }
  return "unknown";
}

Result<Task> ParseTask(std::string_view name) {
  if (name == "regression") return Task::kRegression;
  if (name == "binary" || name == "classification") return Task::kBinary;
  return Status::InvalidArgument("unknown task '" + std::string(name) +
                                 "' (expected regression or binary)");
}

Status CheckPredictArgs(std::span<const float> rows, size_t n_rows, size_t n_features,
                        std::span<float> out) {
  if (rows.size() < n_rows * n_features) {
    return Status::InvalidArgument("Predict: rows holds " + std::to_string(rows.size()) +
                                   " values, need " + std::to_string(n_rows) + " x " +
                                   std::to_string(n_features));
  }
  if (out.size() < n_rows) {
    return Status::InvalidArgument("Predict: out holds " + std::to_string(out.size()) +
                                   " values, need " + std::to_string(n_rows));
  }
  return Status::Ok();
}

}  // namespace apx::model
