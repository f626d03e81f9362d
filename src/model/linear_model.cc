#include "model/linear_model.h"

#include <Eigen/Dense>

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

  std::string_view family() const override { return "linear"; }
  std::string Describe() const override {
    return "linear model (" + objective_ + "): " + std::to_string(weights_.size()) + " features";
  }

  Status Predict(std::span<const float> rows, size_t n_rows, std::span<float> out) const override {
    const size_t n_features = weights_.size();
    APX_RETURN_IF_ERROR(CheckPredictArgs(rows, n_rows, n_features, out));
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

Result<LinearForm> FitLeastSquares(std::span<const float> X, size_t n_rows, size_t n_features,
                                   std::span<const float> y) {
  if (X.size() < n_rows * n_features || y.size() < n_rows) {
    return Status::InvalidArgument("least squares: X or y is smaller than n_rows x n_features");
  }
  if (n_rows < n_features + 1) {
    return Status::InvalidArgument("least squares needs more rows (" + std::to_string(n_rows) +
                                   ") than features + 1 (" + std::to_string(n_features + 1) + ")");
  }
  for (size_t r = 0; r < n_rows; ++r) {
    if (!std::isfinite(y[r])) {
      return Status::InvalidArgument("least squares: label of row " + std::to_string(r) +
                                     " is not finite");
    }
  }
  const Eigen::Index n = static_cast<Eigen::Index>(n_rows), d = static_cast<Eigen::Index>(n_features);
  Eigen::MatrixXd A(n, d);
  Eigen::VectorXd b(n);
  for (Eigen::Index r = 0; r < n; ++r) {
    b(r) = y[static_cast<size_t>(r)];
    for (Eigen::Index c = 0; c < d; ++c) {
      const float v = X[static_cast<size_t>(r) * n_features + static_cast<size_t>(c)];
      A(r, c) = std::isnan(v) ? 0.0 : static_cast<double>(v);
    }
  }
  // Standardise: x' = (x − mean) / sd, so that the fit is well conditioned.
  const Eigen::RowVectorXd mean = A.colwise().mean();
  A.rowwise() -= mean;
  Eigen::RowVectorXd sd = (A.colwise().squaredNorm() / static_cast<double>(n)).cwiseSqrt();
  for (Eigen::Index c = 0; c < d; ++c) {
    if (!(sd(c) > 0)) sd(c) = 1.0;  // a constant column gets weight 0
  }
  for (Eigen::Index c = 0; c < d; ++c) A.col(c) /= sd(c);
  const double y_mean = b.mean();
  b.array() -= y_mean;
  Eigen::MatrixXd gram = A.transpose() * A;
  gram.diagonal().array() += 1e-10 * static_cast<double>(n);
  const Eigen::VectorXd w_std = gram.ldlt().solve(A.transpose() * b);
  LinearForm form;
  form.weights.resize(n_features);
  double bias = y_mean;
  for (Eigen::Index c = 0; c < d; ++c) {
    const double w = w_std(c) / sd(c);
    form.weights[static_cast<size_t>(c)] = w;
    bias -= w * mean(c);
  }
  form.bias = bias;
  for (double w : form.weights) {
    if (!std::isfinite(w)) return Status::Internal("least squares: the solution is not finite");
  }
  return form;
}

std::string LinearModelJson(const LinearForm& form, Task task) {
  nlohmann::json j;
  j["apxserve_linear"] = {{"version", 1},
                          {"task", std::string(TaskName(task))},
                          {"weights", form.weights},
                          {"bias", form.bias}};
  return j.dump();
}

Result<std::unique_ptr<Model>> CompileApxLinearModel(const std::string& json, Task task) {
  APX_ASSIGN_OR_RETURN(const nlohmann::json root, internal::ParseJson(json, "model"));
  const nlohmann::json* body = internal::Find(root, "apxserve_linear");
  if (body == nullptr || !body->is_object()) return Status::DataLoss("missing apxserve_linear");
  const nlohmann::json* weights = internal::Find(*body, "weights");
  const nlohmann::json* bias = internal::Find(*body, "bias");
  const nlohmann::json* task_name = internal::Find(*body, "task");
  if (weights == nullptr || !weights->is_array() || bias == nullptr || !bias->is_number() ||
      task_name == nullptr || !task_name->is_string()) {
    return Status::DataLoss("apxserve_linear needs weights (array), bias (number) and task");
  }
  if (task_name->get<std::string>() != TaskName(task)) {
    return Status::InvalidArgument("model is for task '" + task_name->get<std::string>() +
                                   "', the pipeline is '" + std::string(TaskName(task)) + "'");
  }
  std::vector<float> w;
  for (const nlohmann::json& v : *weights) {
    if (!v.is_number()) return Status::DataLoss("apxserve_linear weights must be numbers");
    w.push_back(static_cast<float>(v.get<double>()));
  }
  const Link link = task == Task::kBinary ? Link::kSigmoid : Link::kIdentity;
  return std::unique_ptr<Model>(std::make_unique<LinearModel>(
      task, link, std::move(w), static_cast<float>(bias->get<double>()), "least squares"));
}

}  // namespace apx::model
