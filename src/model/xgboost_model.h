// model/xgboost_model.h
//
// The XGBoost adapter: trains, loads, saves and predicts with an XGBoost 1.7 booster through
// its C API. This file and xgboost_model.cc are the only place apxserve talks to XGBoost;
// <xgboost/c_api.h> is included by xgboost_model.cc alone. Every C API return code is checked
// and turned into a Status carrying XGBGetLastError().
//
// XGBoost's own predict is the reference the compiled evaluators (model/flat_forest.h,
// model/linear_model.h) are tested against; serving uses the compiled ones (model/loader.h).
//
// Thread safety: const methods (Predict, Save, ToJson, Describe) may be called concurrently;
// they serialise on an internal mutex because XGBoost 1.7 does not promise that concurrent
// predictions on one booster are safe. Non-const methods need external synchronisation.
#ifndef APX_MODEL_XGBOOST_MODEL_H_
#define APX_MODEL_XGBOOST_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "common/status.h"
#include "model/model.h"

namespace apx::model {

// Training parameters. Defaults follow XGBoost's own where it has one.
struct TrainOptions {
  Task task = Task::kRegression;  // regression: reg:squarederror; binary: binary:logistic
  // "gbtree": num_trees boosting rounds of one tree each.
  // "rf": random-forest mode: one round of num_trees parallel trees (num_parallel_tree), row
  //       subsample 0.8, colsample_bynode 0.8, eta 1 (the `eta` field is ignored).
  // "gblinear": num_trees rounds of deterministic coordinate descent (max_depth is ignored).
  std::string booster = "gbtree";
  int num_trees = 100;  // boosting rounds (gbtree, gblinear) or forest size (rf)
  int max_depth = 6;    // tree depth limit (gbtree, rf)
  double eta = 0.1;     // learning rate (gbtree, gblinear)
  int nthread = 2;      // XGBoost threads for training and for this booster's predictions
  uint64_t seed = 0;    // XGBoost's `seed` (row/column subsampling)
  double lambda = 1.0;  // L2 regularisation on leaf weights / linear weights
  // Binary only: weight of positive examples (XGBoost `scale_pos_weight`); about
  // #negatives / #positives balances an imbalanced label so that p >= 0.5 finds positives.
  double scale_pos_weight = 1.0;
  // Names of the n_features columns, stored in the model (learner.feature_names) so that a
  // model trained on other features is refused at load (model/loader.h ModelFeatureNames).
  // Empty: none stored.
  std::vector<std::string> feature_names;
};

// Deleters for the opaque C API handles (BoosterHandle and DMatrixHandle are void*).
struct XGBoosterDeleter {
  void operator()(void* handle) const;
};
struct XGDMatrixDeleter {
  void operator()(void* handle) const;
};

class XGBoostModel final : public Model {
 private:
  using BoosterPtr = std::unique_ptr<void, XGBoosterDeleter>;
  // Only the factories (Load, FromJson, TrainXGBoost) can name the key, so only they can
  // construct, and they can still use make_unique.
  struct ConstructionKey {};

 public:
  XGBoostModel(ConstructionKey, BoosterPtr booster, Task task)
      : booster_(std::move(booster)), task_(task) {}
  XGBoostModel(const XGBoostModel&) = delete;
  XGBoostModel& operator=(const XGBoostModel&) = delete;
  ~XGBoostModel() override;

  // Loads a model saved in XGBoost's JSON format (Save, or xgboost's save_model("*.json")).
  // The loaded booster predicts with one XGBoost thread (see SetNumThreads).
  // `task` must agree with the stored objective (binary: binary:logistic; regression: reg:*).
  // Errors: NotFound (no such file), IoError (unreadable), DataLoss (not a valid XGBoost JSON
  // model; the message names the path and the parser's complaint), InvalidArgument (objective
  // does not fit `task`).
  static Result<std::unique_ptr<XGBoostModel>> Load(const std::string& path, Task task);

  // As Load, from the JSON text itself.
  static Result<std::unique_ptr<XGBoostModel>> FromJson(const std::string& json, Task task);

  Task task() const override { return task_; }
  size_t num_features() const override { return num_features_; }

  // XGBoost's own prediction: XGBoosterPredictFromDense (gbtree, rf) or, for gblinear, which
  // 1.7 cannot predict in place, a DMatrix and XGBoosterPredictFromDMatrix. NaN = missing.
  // Errors: InvalidArgument on size mismatch, or for gblinear when a value is +-inf (XGBoost's
  // DMatrix refuses it; trees accept +-inf); Internal if XGBoost fails or returns an output
  // whose shape is not n_rows values (`out` is then left unspecified).
  Status Predict(std::span<const float> rows, size_t n_rows, std::span<float> out) const override;

  // "xgboost gbtree (binary:logistic): 8 features, 100 rounds".
  std::string Describe() const override;
  std::string_view family() const override { return booster_name_ == "gblinear" ? "linear" : "trees"; }

  // Writes the model as XGBoost JSON to `path`, via a temporary file in the same directory
  // renamed over `path`, so a reader never sees a half-written model. Errors: IoError.
  Status Save(const std::string& path) const;

  // The model in XGBoost's JSON format (what Save writes). Errors: Internal.
  Result<std::string> ToJson() const;

  // "gbtree" (also random-forest mode), "gblinear" or "dart".
  const std::string& booster_name() const { return booster_name_; }

  // Sets the number of threads XGBoost uses for this booster's predictions (serialised with
  // Predict on the same mutex). Errors: InvalidArgument if nthread < 1, Internal if XGBoost
  // refuses.
  Status SetNumThreads(int nthread);

 private:
  friend Result<std::unique_ptr<XGBoostModel>> TrainXGBoost(std::span<const float>, size_t, size_t,
                                                            std::span<const float>,
                                                            const TrainOptions&);

  // Reads the booster's configuration (booster name, objective, feature count) and checks the
  // objective against task_. Called once by every factory.
  Status Init();

  mutable std::mutex mu_;  // serialises every C API call on booster_ after construction
  BoosterPtr booster_;     // GUARDED_BY(mu_)
  const Task task_;
  size_t num_features_ = 0;  // set by Init, then constant
  std::string booster_name_;
  std::string objective_;
};

// Trains a model on `X` (n_rows x n_features, row-major; NaN = missing) with labels `y`.
// Errors: InvalidArgument when sizes disagree, n_rows or n_features is 0, a label is NaN or
// infinite (or not 0/1 for Task::kBinary), a feature is infinite, or an option is out of range
// (the message names the row, column or option); Internal if XGBoost fails.
Result<std::unique_ptr<XGBoostModel>> TrainXGBoost(std::span<const float> X, size_t n_rows,
                                                   size_t n_features, std::span<const float> y,
                                                   const TrainOptions& options);

}  // namespace apx::model

#endif  // APX_MODEL_XGBOOST_MODEL_H_
