// model/linear_model.h
//
// XGBoost gblinear models compiled to a LinearForm: margin = bias + sum_i w[i] * x[i], where
// bias already includes the learner's base_score moved to margin space; regression output is
// the margin, binary output sigmoid(margin). Model::linear() exposes the form so that uq/ can
// propagate normal input distributions analytically.
//
// Equivalence with XGBoost 1.7 (checked in model/linear_model_test.cc): the margin is
// accumulated in float exactly as gblinear's predictor does it (bias + base_margin first, then
// feature by feature in index order, product then sum), so outputs match bit for bit.
// Missing values: a NaN feature contributes nothing (XGBoost drops missing entries from the
// sparse row, i.e. treats them as a 0 contribution, not as x = 0 with its own weight rule).
// Infinite features are not special: +-inf * w gives +-inf (NaN if w == 0), as in XGBoost.
//
// Thread safety: the compiled model is immutable; Predict may be called concurrently.
#ifndef APX_MODEL_LINEAR_MODEL_H_
#define APX_MODEL_LINEAR_MODEL_H_

#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "model/model.h"

namespace apx::model {

// Compiles an XGBoost JSON model with a gblinear booster for `task`.
// Errors: DataLoss if the text is not a well-formed XGBoost JSON model or the weight vector
// has the wrong length; InvalidArgument for another booster, a multiclass model or an
// objective that does not fit `task`.
Result<std::unique_ptr<Model>> CompileLinearModel(const std::string& xgboost_json, Task task);

// Ordinary least squares (the published Tick-Price pipeline's LinearRegression), for
// regression: minimises Σ (y − b − w·x)² with a vanishing ridge (1e-10 relative to each
// standardised feature's variance) for numerical safety, solved with Eigen (LDLT on the
// standardised normal equations, so that nearly collinear price levels stay well conditioned).
// NaN features contribute 0, as at prediction time. X is n_rows x n_features, row-major.
// InvalidArgument for sizes, non-finite labels, or fewer rows than features + 1.
Result<LinearForm> FitLeastSquares(std::span<const float> X, size_t n_rows, size_t n_features,
                                   std::span<const float> y);

// apxserve's own JSON for a linear model: {"apxserve_linear": {"version": 1, "task": ...,
// "weights": [...], "bias": b}}. LoadModel (model/loader.h) reads it.
std::string LinearModelJson(const LinearForm& form, Task task);
// Builds the model from that JSON. DataLoss when it is malformed.
Result<std::unique_ptr<Model>> CompileApxLinearModel(const std::string& json, Task task);

}  // namespace apx::model

#endif  // APX_MODEL_LINEAR_MODEL_H_
