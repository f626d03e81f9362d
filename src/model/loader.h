// model/loader.h
//
// Loading a saved XGBoost JSON model for serving: returns the fastest evaluator known to give
// the same outputs as XGBoost itself:
//   gbtree (incl. random-forest mode) -> flat forest (model/flat_forest.h, default options);
//   gblinear                          -> linear model (model/linear_model.h, linear() set);
//   dart                              -> the XGBoost adapter (model/xgboost_model.h).
// apxserve's own formats are recognised by their top-level key: "apxserve_linear" (least
// squares, model/linear_model.h) and "apxserve_mlp" (multilayer perceptron, model/mlp.h).
//
// Thread safety: LoadModel may be called concurrently; the returned model is immutable.
#ifndef APX_MODEL_LOADER_H_
#define APX_MODEL_LOADER_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "model/model.h"

namespace apx::model {

// Errors (message prefixed with the path): NotFound (no such file), IoError (unreadable),
// DataLoss (not a well-formed XGBoost JSON model), InvalidArgument (unsupported booster or
// model, or an objective that does not fit `task`).
Result<std::unique_ptr<Model>> LoadModel(const std::string& path, Task task);

// As LoadModel, from the JSON text.
Result<std::unique_ptr<Model>> CompileModel(const std::string& xgboost_json, Task task);

// True when `head` (the first KiB of a file) looks like a model file apxserve writes: a JSON
// object with the top-level key "learner" (XGBoost), "apxserve_mlp" or "apxserve_linear".
// Training replaces only such files (common/file.h CheckReplaceable).
bool IsModelFileHead(std::string_view head);

// The feature names a model file stores (XGBoost: learner.feature_names; the MLP and least
// squares formats: a top-level "feature_names"), set by training since 2026-12; empty when
// the file stores none (older models). Errors as LoadModel.
Result<std::vector<std::string>> ModelFeatureNames(const std::string& path);

// `model_json` (an "apxserve_mlp" or "apxserve_linear" model) with `names` stored as its
// top-level "feature_names". InvalidArgument for other JSON.
Result<std::string> WithFeatureNames(const std::string& model_json, const std::vector<std::string>& names);

}  // namespace apx::model

#endif  // APX_MODEL_LOADER_H_
