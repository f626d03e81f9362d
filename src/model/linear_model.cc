#include "model/linear_model.h"

#include <cmath>
#include <vector>

#include "model/xgboost_json_internal.h"

namespace apx::model {
namespace {

using internal::Link;

class LinearModel final : public Model {
 public:
  LinearModel(Task task, Link link, std::vector<float> weights, float bias_margin,
              std::string objective)
      : task_(task),
        link_(link),
        weights_(std::move(weights)),
        bias_margin_(bias_margin),
        objective_(std::move(objective)) {
    form_.weights.assign(weights_.begin(), weights_.end());
    form_.bias = bias_margin_;
  }

  Task task() const override { return task_; }
  size_t num_features() const override { return weights_.size(); }
  const LinearForm* linear() const override { return &form_; }

  std::string Describe() const override {
    return "linear model (" + objective_ + "): " + std::to_string(weights_.size()) + " features";
  }

  Status Predict(std::span<const float> rows, size_t n_rows, std::span<float> out) const override {
    const size_t n_features = weights_.size();
    if (rows.size() < n_rows * n_features) {
      return Status::InvalidArgument("Predict: rows holds " + std::to_string(rows.size()) +
                                     " values, need " + std::to_string(n_rows) + " x " +
                                     std::to_string(n_features));
    }
    if (out.size() < n_rows) {
      return Status::InvalidArgument("Predict: out holds " + std::to_string(out.size()) +
                                     " values, need " + std::to_string(n_rows));
    }
    const float* __restrict w = weights_.data();
    for (size_t row_idx = 0; row_idx < n_rows; ++row_idx) {
      const float* __restrict x = rows.data() + row_idx * n_features;
      // XGBoost 1.7 GBLinear::Pred: psum = bias + base; psum += fvalue * weight per present
      // entry. Built with -ffp-contract=off (src/model/CMakeLists.txt) so the product is
      // rounded before the sum, as in XGBoost's generic x86-64 build.
      float margin = bias_margin_;
      for (size_t col_idx = 0; col_idx < n_features; ++col_idx) {
        if (!std::isnan(x[col_idx])) margin += x[col_idx] * w[col_idx];
      }
      out[row_idx] = link_ == Link::kSigmoid ? internal::Sigmoid(margin) : margin;
    }
    return Status::Ok();
  }

 private:
  Task task_;
  Link link_;
  std::vector<float> weights_;
  float bias_margin_;  // gblinear bias + base margin, summed in float as XGBoost does
  std::string objective_;
  LinearForm form_;
};

}  // namespace

Result<std::unique_ptr<Model>> CompileLinearModel(const std::string& xgboost_json, Task task) {
  APX_ASSIGN_OR_RETURN(const nlohmann::json root, internal::ParseJson(xgboost_json, "model"));
  APX_ASSIGN_OR_RETURN(const internal::LearnerInfo info, internal::ReadLearner(root, task));
  if (info.booster != "gblinear") {
    return Status::InvalidArgument("linear model needs a gblinear booster, got '" + info.booster +
                                   "'");
  }
  const nlohmann::json* weights =
      info.booster_model ? internal::Find(*info.booster_model, "weights") : nullptr;
  if (weights == nullptr || !weights->is_array()) {
    return Status::DataLoss("missing learner.gradient_booster.model.weights");
  }
  // One output group: num_feature weights, then the bias.
  if (weights->size() != info.num_features + 1) {
    return Status::DataLoss(
        "gblinear weights has " + std::to_string(weights->size()) +
        " entries, expected num_feature + 1 = " + std::to_string(info.num_features + 1));
  }
  std::vector<float> w(info.num_features);
  for (size_t i = 0; i <= info.num_features; ++i) {
    const nlohmann::json& value = (*weights)[i];
    if (!value.is_number()) {
      return Status::DataLoss("gblinear weights[" + std::to_string(i) + "] is not a number");
    }
    const float f = static_cast<float>(value.get<double>());
    if (i < info.num_features) w[i] = f;
  }
  const float bias = static_cast<float>((*weights)[info.num_features].get<double>());
  const float bias_margin = bias + info.base_margin;
  return std::unique_ptr<Model>(
      std::make_unique<LinearModel>(task, info.link, std::move(w), bias_margin, info.objective));
}

}  // namespace apx::model
