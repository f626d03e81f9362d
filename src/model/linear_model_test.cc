#include "model/linear_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model/loader.h"
#include "model/model_test_util.h"
#include "model/xgboost_model.h"

namespace apx::model {
namespace {

using test_util::ExpectClose;
using test_util::ExpectIdentical;
using test_util::PredictAll;
using test_util::RandomRows;
using test_util::TrainSmall;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// A gblinear model written by hand: margin = base_margin + bias + w . x.
std::string LinearJson(const std::string& objective, const std::string& base_score,
                       const std::string& weights, int num_feature) {
  return R"({"learner": {"attributes": {}, "feature_names": [], "feature_types": [],
    "gradient_booster": {"model": {"boosted_rounds": 1, "weights": [)" +
         weights + R"(]}, "name": "gblinear"},
    "learner_model_param": {"base_score": ")" +
         base_score + R"(", "boost_from_average": "1", "num_class": "0", "num_feature": ")" +
         std::to_string(num_feature) + R"(", "num_target": "1"},
    "objective": {"name": ")" +
         objective + R"(", "reg_loss_param": {"scale_pos_weight": "1"}}},
    "version": [1, 7, 4]})";
}

class LinearDiffTest : public ::testing::TestWithParam<Task> {};

TEST_P(LinearDiffTest, MatchesXGBoostGblinear) {
  const Task task = GetParam();
  const size_t n_features = 7;
  auto trained = TrainSmall("gblinear", task, n_features, /*num_trees=*/15);
  ASSERT_NE(trained.model, nullptr);
  auto json = trained.model->ToJson();
  ASSERT_TRUE(json.ok());
  auto linear = CompileLinearModel(*json, task);
  ASSERT_TRUE(linear.ok()) << linear.status().ToString();
  ASSERT_NE((*linear)->linear(), nullptr);

  std::vector<float> rows = RandomRows(1000, n_features, 4, 0.2);
  // Edge rows XGBoost's DMatrix accepts (it refuses +-inf): all missing, huge, zero, tiny.
  for (const float special :
       {kNan, 1e30f, -1e30f, std::numeric_limits<float>::max(), 0.0f, -0.0f, 1e-40f}) {
    for (size_t col_idx = 0; col_idx < n_features; ++col_idx) rows.push_back(special);
    for (size_t col_idx = 0; col_idx < n_features; ++col_idx) {
      rows.push_back(col_idx % 2 ? special : 0.25f * col_idx);
    }
  }
  const std::vector<float> want = PredictAll(*trained.model, rows);
  const std::vector<float> got = PredictAll(**linear, rows);
  ExpectClose(want, got, 1e-5, "gblinear");
  ExpectIdentical(want, got, "gblinear");
}

INSTANTIATE_TEST_SUITE_P(Tasks, LinearDiffTest, ::testing::Values(Task::kRegression, Task::kBinary),
                         [](const auto& info) { return std::string(TaskName(info.param)); });

TEST(LinearModelTest, HandBuiltModelHasKnownAnswers) {
  // weights (2, -1), bias 0.5, base_score 0.25 (identity link): margin = 0.75 + 2 x0 - x1.
  auto model = CompileLinearModel(LinearJson("reg:squarederror", "2.5E-1", "2, -1, 0.5", 2),
                                  Task::kRegression);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const LinearForm* form = (*model)->linear();
  ASSERT_NE(form, nullptr);
  EXPECT_EQ(form->weights, (std::vector<double>{2.0, -1.0}));
  EXPECT_DOUBLE_EQ(form->bias, 0.75);
  EXPECT_NE((*model)->Describe().find("linear"), std::string::npos);

  const std::vector<float> rows = {1.0f, 1.0f,   // 0.75 + 2 - 1
                                   kNan, 3.0f,   // missing x0 contributes 0
                                   kNan, kNan,   // bias only
                                   kInf, 0.0f,   // +inf
                                   0.0f, kInf};  // -inf
  const std::vector<float> out = PredictAll(**model, rows);
  EXPECT_EQ(out, (std::vector<float>{1.75f, -2.25f, 0.75f, kInf, -kInf}));
}

TEST(LinearModelTest, BinaryAppliesSigmoidToTheMargin) {
  // base_score 0.5 is margin 0; weights (1), bias 0 -> p = sigmoid(x0).
  auto model = CompileLinearModel(LinearJson("binary:logistic", "5E-1", "1, 0", 1), Task::kBinary);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_DOUBLE_EQ((*model)->linear()->bias, 0.0);
  const std::vector<float> out = PredictAll(**model, {0.0f, 2.0f, -kInf, kNan});
  EXPECT_FLOAT_EQ(out[0], 0.5f);
  EXPECT_NEAR(out[1], 1.0 / (1.0 + std::exp(-2.0)), 1e-7);
  EXPECT_GT(out[2], 0.0f);  // XGBoost clamps the exponent at 88.7: 1 / e^88.7 = 3.0e-39
  EXPECT_LT(out[2], 1e-38f);
  EXPECT_FLOAT_EQ(out[3], 0.5f);
}

TEST(LinearModelTest, Errors) {
  // Wrong booster.
  auto trees = TrainSmall("gbtree", Task::kRegression, 3, 2, 2);
  ASSERT_NE(trees.model, nullptr);
  auto json = trees.model->ToJson();
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(CompileLinearModel(*json, Task::kRegression).status().code(),
            StatusCode::kInvalidArgument);
  // Weight vector of the wrong length.
  EXPECT_EQ(CompileLinearModel(LinearJson("reg:squarederror", "5E-1", "1, 2", 2), Task::kRegression)
                .status()
                .code(),
            StatusCode::kDataLoss);
  // Objective that does not fit the task.
  EXPECT_EQ(CompileLinearModel(LinearJson("reg:squarederror", "5E-1", "1, 2", 1), Task::kBinary)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // Not JSON.
  EXPECT_EQ(CompileLinearModel("{weights", Task::kRegression).status().code(),
            StatusCode::kDataLoss);
  // Wrong-size inputs.
  auto model =
      CompileLinearModel(LinearJson("reg:squarederror", "5E-1", "1, 2, 0", 2), Task::kRegression);
  ASSERT_TRUE(model.ok());
  std::vector<float> out(2);
  EXPECT_EQ((*model)->Predict(std::vector<float>(3), 2, out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*model)->Predict(std::vector<float>(4), 2, std::span<float>(out).first(1)).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apx::model

namespace apx::model {
namespace {

TEST(LeastSquaresTest, RecoversKnownWeightsOnNearlyCollinearLevels) {
  // Price-like levels around 1.1 that differ by ~1e-3, and y = 0.5 x0 - 0.7 x1 + 0.2 x2 + 3e-4
  // plus small noise: the fit must resolve the differences, not just the level.
  std::mt19937_64 rng(301);
  std::normal_distribution<double> step(0, 1e-3), noise(0, 1e-6);
  const size_t n = 2000, d = 3;
  std::vector<float> X(n * d), y(n);
  double level = 1.1;
  for (size_t r = 0; r < n; ++r) {
    level += step(rng);
    const double x0 = level + step(rng), x1 = level + step(rng), x2 = level + step(rng);
    X[r * d] = static_cast<float>(x0);
    X[r * d + 1] = static_cast<float>(x1);
    X[r * d + 2] = static_cast<float>(x2);
    y[r] = static_cast<float>(0.5 * X[r * d] - 0.7 * X[r * d + 1] + 0.2 * X[r * d + 2] + 3e-4 +
                              noise(rng));
  }
  auto form = FitLeastSquares(X, n, d, y);
  ASSERT_TRUE(form.ok()) << form.status().ToString();
  EXPECT_NEAR(form->weights[0], 0.5, 0.01);
  EXPECT_NEAR(form->weights[1], -0.7, 0.01);
  EXPECT_NEAR(form->weights[2], 0.2, 0.01);

  // Round trip through apxserve's JSON and the loader.
  auto model = CompileModel(LinearModelJson(*form, Task::kRegression), Task::kRegression);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_NE((*model)->linear(), nullptr);
  float out = 0;
  ASSERT_TRUE((*model)->Predict(std::span<const float>(X.data(), d), 1, std::span<float>(&out, 1)).ok());
  EXPECT_NEAR(out, y[0], 1e-5);
  // Wrong task, malformed JSON, too few rows, non-finite labels.
  EXPECT_FALSE(CompileModel(LinearModelJson(*form, Task::kRegression), Task::kBinary).ok());
  EXPECT_FALSE(CompileModel(R"({"apxserve_linear": {"weights": "no"}})", Task::kRegression).ok());
  EXPECT_FALSE(FitLeastSquares(X, 3, d, y).ok());
  y[5] = std::numeric_limits<float>::quiet_NaN();
  auto bad = FitLeastSquares(X, n, d, y);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("row 5"), std::string::npos);
}

}  // namespace
}  // namespace apx::model
