#include "model/xgboost_model.h"

#include "common/file.h"
#include "model/loader.h"

#include <unistd.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <system_error>

#include "model/xgboost_json_internal.h"

namespace apx::model {
namespace {

using DMatrixPtr = std::unique_ptr<void, XGDMatrixDeleter>;

// The one gate for XGBoost's C API: 0 is success; anything else becomes a Status holding the
// first line of XGBGetLastError() (XGBoost appends a stack trace after it).
Status XgbCall(int rc, std::string_view call, StatusCode code = StatusCode::kInternal) {
  if (rc == 0) return Status::Ok();
  std::string message = XGBGetLastError();
  if (const size_t eol = message.find('\n'); eol != std::string::npos) message.resize(eol);
  return Status(code, std::string(call) + " failed: " + message);
}

// Inference config for XGBoosterPredictFromDense/FromDMatrix (see c_api.h). "cache_id" and
// "missing" are required by the 1.7 in-place predictor; "type": 0 is the transformed output
// (probabilities for binary:logistic).
constexpr const char* kPredictConfig =
    R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, )"
    R"("strict_shape": false, "cache_id": 0, "missing": NaN})";

// __array_interface__ (version 3) describing n_rows x n_features row-major float32 data.
std::string DenseArrayInterface(const float* data, size_t n_rows, size_t n_features) {
  return R"({"data": [)" + std::to_string(reinterpret_cast<uintptr_t>(data)) +
         R"(, true], "shape": [)" + std::to_string(n_rows) + ", " + std::to_string(n_features) +
         R"(], "typestr": "<f4", "version": 3})";
}

Status SetParam(void* booster, const char* name, const std::string& value) {
  return XgbCall(XGBoosterSetParam(booster, name, value.c_str()),
                 std::string("XGBoosterSetParam(") + name + "=" + value + ")");
}

std::string FormatDouble(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

Status ValidateTrainingInput(std::span<const float> X, size_t n_rows, size_t n_features,
                             std::span<const float> y, const TrainOptions& options) {
  if (n_rows == 0 || n_features == 0) {
    return Status::InvalidArgument("training needs at least one row and one feature (got " +
                                   std::to_string(n_rows) + " x " + std::to_string(n_features) +
                                   ")");
  }
  if (X.size() != n_rows * n_features) {
    return Status::InvalidArgument("X has " + std::to_string(X.size()) + " values, expected " +
                                   std::to_string(n_rows) + " rows x " +
                                   std::to_string(n_features) + " features");
  }
  if (y.size() != n_rows) {
    return Status::InvalidArgument("y has " + std::to_string(y.size()) + " labels, expected " +
                                   std::to_string(n_rows));
  }
  for (size_t row_idx = 0; row_idx < n_rows; ++row_idx) {
    const float label = y[row_idx];
    if (!std::isfinite(label)) {
      return Status::InvalidArgument("label of row " + std::to_string(row_idx) + " is " +
                                     std::to_string(label) + " (labels must be finite)");
    }
    if (options.task == Task::kBinary && label != 0.0f && label != 1.0f) {
      return Status::InvalidArgument("label of row " + std::to_string(row_idx) + " is " +
                                     std::to_string(label) + " (binary labels must be 0 or 1)");
    }
    for (size_t col_idx = 0; col_idx < n_features; ++col_idx) {
      if (std::isinf(X[row_idx * n_features + col_idx])) {
        return Status::InvalidArgument("X row " + std::to_string(row_idx) + " feature " +
                                       std::to_string(col_idx) +
                                       " is infinite (use NaN for missing)");
      }
    }
  }
  if (options.booster != "gbtree" && options.booster != "rf" && options.booster != "gblinear") {
    return Status::InvalidArgument("unknown booster '" + options.booster +
                                   "' (expected gbtree, rf or gblinear)");
  }
  if (options.num_trees < 1) return Status::InvalidArgument("num_trees must be >= 1");
  if (options.max_depth < 1) return Status::InvalidArgument("max_depth must be >= 1");
  if (!(options.eta > 0.0)) return Status::InvalidArgument("eta must be > 0");
  if (options.nthread < 1) return Status::InvalidArgument("nthread must be >= 1");
  if (!(options.lambda >= 0.0)) return Status::InvalidArgument("lambda must be >= 0");
  if (!(options.scale_pos_weight > 0.0) || !std::isfinite(options.scale_pos_weight)) {
    return Status::InvalidArgument("scale_pos_weight must be a finite number > 0");
  }
  return Status::Ok();
}

}  // namespace

void XGBoosterDeleter::operator()(void* handle) const {
  if (handle != nullptr) XGBoosterFree(handle);
}

void XGDMatrixDeleter::operator()(void* handle) const {
  if (handle != nullptr) XGDMatrixFree(handle);
}

XGBoostModel::~XGBoostModel() = default;

Status XGBoostModel::Init() {
  bst_ulong n_features = 0;
  APX_RETURN_IF_ERROR(
      XgbCall(XGBoosterGetNumFeature(booster_.get(), &n_features), "XGBoosterGetNumFeature"));
  if (n_features == 0) return Status::DataLoss("model has no features");
  num_features_ = static_cast<size_t>(n_features);

  bst_ulong length = 0;
  const char* config = nullptr;
  APX_RETURN_IF_ERROR(XgbCall(XGBoosterSaveJsonConfig(booster_.get(), &length, &config),
                              "XGBoosterSaveJsonConfig"));
  APX_ASSIGN_OR_RETURN(const nlohmann::json root,
                       internal::ParseJson(std::string_view(config, length), "booster config"));
  // The config has the same "learner" skeleton as the model (objective, gradient_booster.name,
  // learner_model_param), so the same reader checks the objective against the task.
  APX_ASSIGN_OR_RETURN(const internal::LearnerInfo info, internal::ReadLearner(root, task_));
  booster_name_ = info.booster;
  objective_ = info.objective;
  return Status::Ok();
}

Result<std::unique_ptr<XGBoostModel>> XGBoostModel::FromJson(const std::string& json, Task task) {
  // Check the text and the learner skeleton first: XGBoost's own complaints about malformed
  // JSON or a missing field are less specific ("map::at").
  APX_ASSIGN_OR_RETURN(const nlohmann::json root, internal::ParseJson(json, "model"));
  APX_RETURN_IF_ERROR(internal::ReadLearner(root, task).status());
  void* handle = nullptr;
  APX_RETURN_IF_ERROR(XgbCall(XGBoosterCreate(nullptr, 0, &handle), "XGBoosterCreate"));
  BoosterPtr booster(handle);
  APX_RETURN_IF_ERROR(XgbCall(
      XGBoosterLoadModelFromBuffer(booster.get(), json.data(), static_cast<bst_ulong>(json.size())),
      "XGBoosterLoadModelFromBuffer", StatusCode::kDataLoss));
  // One OpenMP thread: callers (server workers) already run in parallel, and a 2-thread
  // OpenMP barrier on a busy machine made predictions up to 50x slower in tests.
  APX_RETURN_IF_ERROR(SetParam(booster.get(), "nthread", "1"));
  auto model = std::make_unique<XGBoostModel>(ConstructionKey{}, std::move(booster), task);
  APX_RETURN_IF_ERROR(model->Init());
  return model;
}

Result<std::unique_ptr<XGBoostModel>> XGBoostModel::Load(const std::string& path, Task task) {
  APX_ASSIGN_OR_RETURN(const std::string text, internal::ReadFile(path));
  auto model = FromJson(text, task);
  if (!model.ok()) return model.status().WithPrefix("loading model '" + path + "'");
  return model;
}

Status XGBoostModel::SetNumThreads(int nthread) {
  if (nthread < 1) return Status::InvalidArgument("nthread must be >= 1");
  std::lock_guard<std::mutex> lock(mu_);
  return SetParam(booster_.get(), "nthread", std::to_string(nthread));
}

Status XGBoostModel::Predict(std::span<const float> rows, size_t n_rows,
                             std::span<float> out) const {
  APX_RETURN_IF_ERROR(CheckPredictArgs(rows, n_rows, num_features_, out));
  if (n_rows == 0) return Status::Ok();

  std::lock_guard<std::mutex> lock(mu_);
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* result = nullptr;
  DMatrixPtr dmatrix;  // gblinear only; must outlive `result`
  if (booster_name_ == "gblinear") {
    // XGBoost 1.7's gblinear has no in-place predict ("Inplace predict is not supported").
    void* handle = nullptr;
    APX_RETURN_IF_ERROR(
        XgbCall(XGDMatrixCreateFromMat(rows.data(), n_rows, num_features_, std::nanf(""), &handle),
                "XGDMatrixCreateFromMat", StatusCode::kInvalidArgument));
    dmatrix.reset(handle);
    APX_RETURN_IF_ERROR(XgbCall(XGBoosterPredictFromDMatrix(booster_.get(), dmatrix.get(),
                                                            kPredictConfig, &shape, &dim, &result),
                                "XGBoosterPredictFromDMatrix"));
  } else {
    const std::string array = DenseArrayInterface(rows.data(), n_rows, num_features_);
    APX_RETURN_IF_ERROR(
        XgbCall(XGBoosterPredictFromDense(booster_.get(), array.c_str(), kPredictConfig, nullptr,
                                          &shape, &dim, &result),
                "XGBoosterPredictFromDense"));
  }
  // One value per row: shape [n_rows] (or [n_rows, 1]).
  const bool shape_ok =
      result != nullptr && shape != nullptr &&
      ((dim == 1 && shape[0] == n_rows) || (dim == 2 && shape[0] == n_rows && shape[1] == 1));
  if (!shape_ok) {
    return Status::Internal("XGBoost returned a prediction of unexpected shape (dim " +
                            std::to_string(dim) + ") for " + std::to_string(n_rows) + " rows");
  }
  // The buffer belongs to the booster and is reused by its next call: copy it now.
  std::copy(result, result + n_rows, out.begin());
  return Status::Ok();
}

std::string XGBoostModel::Describe() const {
  int rounds = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (XGBoosterBoostedRounds(booster_.get(), &rounds) != 0) rounds = -1;
  }
  return "xgboost " + booster_name_ + " (" + objective_ + "): " + std::to_string(num_features_) +
         " features, " + std::to_string(rounds) + " rounds";
}

Result<std::string> XGBoostModel::ToJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  bst_ulong length = 0;
  const char* buffer = nullptr;
  APX_RETURN_IF_ERROR(
      XgbCall(XGBoosterSaveModelToBuffer(booster_.get(), R"({"format": "json"})", &length, &buffer),
              "XGBoosterSaveModelToBuffer"));
  return std::string(buffer, length);  // copy before the booster reuses its buffer
}

Status XGBoostModel::Save(const std::string& path) const {
  APX_ASSIGN_OR_RETURN(const std::string json, ToJson());
  return WriteFileAtomically(path, json, "model file", IsModelFileHead);
}

Result<std::unique_ptr<XGBoostModel>> TrainXGBoost(std::span<const float> X, size_t n_rows,
                                                   size_t n_features, std::span<const float> y,
                                                   const TrainOptions& options) {
  APX_RETURN_IF_ERROR(ValidateTrainingInput(X, n_rows, n_features, y, options));

  void* dmatrix_handle = nullptr;
  APX_RETURN_IF_ERROR(
      XgbCall(XGDMatrixCreateFromMat(X.data(), n_rows, n_features, std::nanf(""), &dmatrix_handle),
              "XGDMatrixCreateFromMat"));
  DMatrixPtr dtrain(dmatrix_handle);
  APX_RETURN_IF_ERROR(XgbCall(
      XGDMatrixSetFloatInfo(dtrain.get(), "label", y.data(), static_cast<bst_ulong>(n_rows)),
      "XGDMatrixSetFloatInfo(label)"));
  std::vector<const char*> feature_name_ptrs;  // also set on the booster below (saved with it)
  if (!options.feature_names.empty()) {
    if (options.feature_names.size() != n_features) {
      return Status::InvalidArgument("feature_names has " + std::to_string(options.feature_names.size()) +
                                     " names for " + std::to_string(n_features) + " features");
    }
    std::vector<const char*> names;
    for (const std::string& name : options.feature_names) names.push_back(name.c_str());
    APX_RETURN_IF_ERROR(XgbCall(XGDMatrixSetStrFeatureInfo(dtrain.get(), "feature_name", names.data(),
                                                           static_cast<bst_ulong>(names.size())),
                                "XGDMatrixSetStrFeatureInfo(feature_name)"));
    feature_name_ptrs = std::move(names);
  }

  void* booster_handle = nullptr;
  void* const cache[] = {dtrain.get()};
  APX_RETURN_IF_ERROR(XgbCall(XGBoosterCreate(cache, 1, &booster_handle), "XGBoosterCreate"));
  XGBoostModel::BoosterPtr booster(booster_handle);
  void* const b = booster.get();

  if (!feature_name_ptrs.empty()) {
    APX_RETURN_IF_ERROR(XgbCall(XGBoosterSetStrFeatureInfo(b, "feature_name", feature_name_ptrs.data(),
                                                           static_cast<bst_ulong>(feature_name_ptrs.size())),
                                "XGBoosterSetStrFeatureInfo(feature_name)"));
  }
  const bool binary = options.task == Task::kBinary;
  APX_RETURN_IF_ERROR(SetParam(b, "objective", binary ? "binary:logistic" : "reg:squarederror"));
  APX_RETURN_IF_ERROR(SetParam(b, "nthread", std::to_string(options.nthread)));
  APX_RETURN_IF_ERROR(SetParam(b, "seed", std::to_string(options.seed)));
  APX_RETURN_IF_ERROR(SetParam(b, "lambda", FormatDouble(options.lambda)));
  if (binary) {
    APX_RETURN_IF_ERROR(SetParam(b, "scale_pos_weight", FormatDouble(options.scale_pos_weight)));
  }
  int rounds = options.num_trees;
  if (options.booster == "gblinear") {
    APX_RETURN_IF_ERROR(SetParam(b, "booster", "gblinear"));
    // coord_descent is deterministic; the default "shotgun" updater races across threads.
    APX_RETURN_IF_ERROR(SetParam(b, "updater", "coord_descent"));
    APX_RETURN_IF_ERROR(SetParam(b, "eta", FormatDouble(options.eta)));
  } else {
    APX_RETURN_IF_ERROR(SetParam(b, "booster", "gbtree"));
    APX_RETURN_IF_ERROR(SetParam(b, "tree_method", "hist"));
    APX_RETURN_IF_ERROR(SetParam(b, "max_depth", std::to_string(options.max_depth)));
    if (options.booster == "rf") {
      APX_RETURN_IF_ERROR(SetParam(b, "num_parallel_tree", std::to_string(options.num_trees)));
      APX_RETURN_IF_ERROR(SetParam(b, "subsample", "0.8"));
      APX_RETURN_IF_ERROR(SetParam(b, "colsample_bynode", "0.8"));
      APX_RETURN_IF_ERROR(SetParam(b, "eta", "1"));
      rounds = 1;
    } else {
      APX_RETURN_IF_ERROR(SetParam(b, "eta", FormatDouble(options.eta)));
    }
  }
  for (int iter = 0; iter < rounds; ++iter) {
    APX_RETURN_IF_ERROR(XgbCall(XGBoosterUpdateOneIter(b, iter, dtrain.get()),
                                "XGBoosterUpdateOneIter(" + std::to_string(iter) + ")"));
  }
  auto model = std::make_unique<XGBoostModel>(XGBoostModel::ConstructionKey{}, std::move(booster),
                                              options.task);
  APX_RETURN_IF_ERROR(model->Init());
  return model;
}

}  // namespace apx::model
