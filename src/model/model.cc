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

}  // namespace apx::model
