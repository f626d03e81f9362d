// model/model.h
//
// The model interface apxserve propagates uncertainty through: a batch predictor over dense
// row-major float rows. Implementations: the XGBoost adapter (model/xgboost_model.h) and the
// fast compiled evaluators built from it (flat tree forest, linear model).
//
// Thread safety: Predict() is const and may be called concurrently from several threads.
#ifndef APX_MODEL_MODEL_H_
#define APX_MODEL_MODEL_H_

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace apx::model {

enum class Task {
  kRegression,  // output: predicted value
  kBinary,      // output: probability of class 1; the predicted class is (p >= 0.5)
};

std::string_view TaskName(Task task);
Result<Task> ParseTask(std::string_view name);  // "regression" | "binary"

// A model that is linear in its features before its link function:
// margin = bias + sum_i weights[i] * x[i]; regression output = margin,
// binary output = sigmoid(margin). Lets uq/ propagate normal inputs analytically.
struct LinearForm {
  std::vector<double> weights;
  double bias = 0.0;
};

// The size checks every Predict() implementation starts with: InvalidArgument unless rows
// holds n_rows x n_features values and out holds n_rows.
Status CheckPredictArgs(std::span<const float> rows, size_t n_rows, size_t n_features,
                        std::span<float> out);

class Model {
 public:
  virtual ~Model() = default;

  virtual Task task() const = 0;
  virtual size_t num_features() const = 0;

  // Predicts n_rows rows. `rows` holds n_rows * num_features() floats, row-major; NaN means
  // missing. Writes n_rows outputs to `out` (see Task for their meaning).
  // REQUIRES: rows.size() >= n_rows * num_features(), out.size() >= n_rows.
  // Returns InvalidArgument on size mismatch, Internal when the backing library fails.
  virtual Status Predict(std::span<const float> rows, size_t n_rows,
                         std::span<float> out) const = 0;

  // Non-null when the model is linear in its features (see LinearForm). The pointer stays
  // valid as long as the model.
  virtual const LinearForm* linear() const { return nullptr; }

  // Short human-readable description, e.g. "flat forest: 100 trees, depth <= 6".
  virtual std::string Describe() const = 0;

  // The model family: "trees", "linear" or "mlp" ("" when unknown). Lets a pipeline notice a
  // saved model that does not match its spec's booster.
  virtual std::string_view family() const { return ""; }
};

}  // namespace apx::model

#endif  // APX_MODEL_MODEL_H_
