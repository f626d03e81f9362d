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
#include <string>

#include "common/status.h"
#include "model/model.h"

namespace apx::model {

// Compiles an XGBoost JSON model with a gblinear booster for `task`.
// Errors: DataLoss if the text is not a well-formed XGBoost JSON model or the weight vector
// has the wrong length; InvalidArgument for another booster, a multiclass model or an
// objective that does not fit `task`.
Result<std::unique_ptr<Model>> CompileLinearModel(const std::string& xgboost_json, Task task);

}  // namespace apx::model

#endif  // APX_MODEL_LINEAR_MODEL_H_
