#include "model/loader.h"

#include "model/flat_forest.h"
#include "model/linear_model.h"
#include "model/mlp.h"
#include "model/xgboost_json_internal.h"
#include "model/xgboost_model.h"

namespace apx::model {

Result<std::unique_ptr<Model>> CompileModel(const std::string& xgboost_json, Task task) {
  APX_ASSIGN_OR_RETURN(const nlohmann::json root, internal::ParseJson(xgboost_json, "model"));
  if (root.is_object() && root.contains("apxserve_linear")) {
    return CompileApxLinearModel(xgboost_json, task);
  }
  if (root.is_object() && root.contains("apxserve_mlp")) return CompileMlpModel(xgboost_json, task);
  APX_ASSIGN_OR_RETURN(const internal::LearnerInfo info, internal::ReadLearner(root, task));
  if (info.booster == "gbtree") return CompileFlatForest(xgboost_json, task);
  if (info.booster == "gblinear") return CompileLinearModel(xgboost_json, task);
  if (info.booster == "dart") {
    APX_ASSIGN_OR_RETURN(std::unique_ptr<XGBoostModel> model,
                         XGBoostModel::FromJson(xgboost_json, task));
    return std::unique_ptr<Model>(std::move(model));
  }
  return Status::InvalidArgument("unsupported booster '" + info.booster + "'");
}

Result<std::unique_ptr<Model>> LoadModel(const std::string& path, Task task) {
  APX_ASSIGN_OR_RETURN(const std::string text, internal::ReadFile(path));
  auto model = CompileModel(text, task);
  if (!model.ok()) return model.status().WithPrefix("loading model '" + path + "'");
  return model;
}

Result<std::vector<std::string>> ModelFeatureNames(const std::string& path) {
  APX_ASSIGN_OR_RETURN(const std::string text, internal::ReadFile(path));
  APX_ASSIGN_OR_RETURN(const nlohmann::json root, internal::ParseJson(text, "model"));
  std::vector<std::string> names;
  const nlohmann::json* learner = internal::Find(root, "learner");
  const nlohmann::json* stored = learner != nullptr ? internal::Find(*learner, "feature_names")
                                                    : internal::Find(root, "feature_names");
  if (stored != nullptr && stored->is_array()) {
    for (const nlohmann::json& name : *stored) {
      if (!name.is_string()) return Status::DataLoss("loading model '" + path + "': a feature name is not a string");
      names.push_back(name.get<std::string>());
    }
  }
  return names;
}

Result<std::string> WithFeatureNames(const std::string& model_json, const std::vector<std::string>& names) {
  APX_ASSIGN_OR_RETURN(nlohmann::json root, internal::ParseJson(model_json, "model"));
  if (!root.is_object() || !(root.contains("apxserve_mlp") || root.contains("apxserve_linear"))) {
    return Status::InvalidArgument("feature names go into apxserve_mlp and apxserve_linear models only");
  }
  root["feature_names"] = names;
  return root.dump();
}

bool IsModelFileHead(std::string_view head) {
  const size_t start = head.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || head[start] != '{') return false;
  for (std::string_view key : {"\"learner\"", "\"apxserve_mlp\"", "\"apxserve_linear\""}) {
    if (head.find(key) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace apx::model
