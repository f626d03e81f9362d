#include "model/mlp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "model/linear_model.h"
#include "model/loader.h"

namespace apx::model {
namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// Small networks and few epochs keep the whole file well under a second.
MlpOptions SmallOptions(uint64_t seed = 1) {
  MlpOptions o;
  o.hidden = {16, 16};
  o.max_epochs = 150;
  o.batch_size = 64;
  o.seed = seed;
  return o;
}

// n x 2 uniform points in [-1, 1]^2.
std::vector<float> Points(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> X(n * 2);
  for (float& x : X) x = u(rng);
  return X;
}

// XOR of the signs: no linear model does better than chance.
std::vector<float> XorLabels(const std::vector<float>& X) {
  std::vector<float> y(X.size() / 2);
  for (size_t i = 0; i < y.size(); ++i) y[i] = (X[2 * i] > 0) != (X[2 * i + 1] > 0) ? 1.0f : 0.0f;
  return y;
}

std::vector<float> PredictAll(const Model& model, const std::vector<float>& rows) {
  const size_t n = rows.size() / model.num_features();
  std::vector<float> out(n);
  const Status s = model.Predict(rows, n, out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

double Accuracy(const std::vector<float>& p, const std::vector<float>& y) {
  size_t hits = 0;
  for (size_t i = 0; i < y.size(); ++i) hits += (p[i] >= 0.5f) == (y[i] == 1.0f);
  return static_cast<double>(hits) / static_cast<double>(y.size());
}

std::unique_ptr<Model> Compile(const std::string& json, Task task) {
  auto model = CompileModel(json, task);  // through the loader's detection
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return model.ok() ? std::move(model).value() : nullptr;
}

// The network evaluated naively in double from its JSON: the reference for Predict.
std::vector<double> Reference(const std::string& json, const std::vector<float>& rows, Task task) {
  const nlohmann::json body = nlohmann::json::parse(json)["apxserve_mlp"];
  const std::vector<double> mean = body["input_mean"], scale = body["input_scale"];
  const size_t d = mean.size();
  std::vector<double> out;
  for (size_t r = 0; r * d < rows.size(); ++r) {
    std::vector<double> h(d);
    for (size_t c = 0; c < d; ++c) {
      const float x = rows[r * d + c];
      h[c] = std::isnan(x) ? 0.0 : (x - mean[c]) / scale[c];
    }
    const size_t n_layers = body["layers"].size();
    for (size_t l = 0; l < n_layers; ++l) {
      const nlohmann::json& layer = body["layers"][l];
      const size_t rows_l = layer["rows"], cols_l = layer["cols"];
      const std::vector<double> w = layer["weights"], b = layer["bias"];
      std::vector<double> next(b);
      for (size_t i = 0; i < rows_l; ++i) {
        for (size_t j = 0; j < cols_l; ++j) next[j] += h[i] * w[i * cols_l + j];
      }
      if (l + 1 < n_layers) {
        for (double& v : next) v = std::max(v, 0.0);
      }
      h = next;
    }
    out.push_back(task == Task::kBinary ? 1.0 / (1.0 + std::exp(-h[0])) : h[0]);
  }
  return out;
}

TEST(MlpTest, LearnsXorWhereALinearModelCannot) {
  const std::vector<float> X = Points(1000, 1), y = XorLabels(X);
  const std::vector<float> X_test = Points(500, 2), y_test = XorLabels(X_test);
  int epochs = 0;
  MlpOptions options = SmallOptions();
  options.on_epoch = [&](int epoch, double loss) {
    EXPECT_EQ(epoch, epochs + 1);
    EXPECT_TRUE(std::isfinite(loss));
    epochs = epoch;
  };
  auto json = TrainMlp(X, 1000, 2, y, Task::kBinary, options);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_GT(epochs, 10);
  auto model = Compile(*json, Task::kBinary);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->num_features(), 2u);
  EXPECT_EQ(model->task(), Task::kBinary);
  EXPECT_EQ(model->linear(), nullptr);
  EXPECT_EQ(model->Describe(), "mlp: 2-16-16-1, relu, sigmoid output");
  const std::vector<float> p = PredictAll(*model, X_test);
  for (float v : p) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
  EXPECT_GT(Accuracy(p, y_test), 0.95);

  // The same task with no hidden layer (logistic regression) stays near chance.
  MlpOptions linear = SmallOptions();
  linear.hidden = {};
  auto lin_json = TrainMlp(X, 1000, 2, y, Task::kBinary, linear);
  ASSERT_TRUE(lin_json.ok()) << lin_json.status().ToString();
  auto lin = Compile(*lin_json, Task::kBinary);
  ASSERT_NE(lin, nullptr);
  EXPECT_EQ(lin->Describe(), "mlp: 2-1, sigmoid output");
  EXPECT_LT(Accuracy(PredictAll(*lin, X_test), y_test), 0.7);
}

TEST(MlpTest, FitsASmoothRegressionOnRawScales) {
  // y = sin(x0) * x1 scaled to hundreds, with inputs on very different scales: the
  // standardisation of inputs and label must make that irrelevant.
  const size_t n = 1000, n_test = 400;
  auto make = [](size_t count, uint64_t seed, std::vector<float>* X, std::vector<float>* y) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    X->resize(count * 3);
    y->resize(count);
    for (size_t i = 0; i < count; ++i) {
      const float a = u(rng), b = u(rng);
      (*X)[3 * i] = 1000.0f * a;   // thousands
      (*X)[3 * i + 1] = 0.01f * b;  // hundredths
      (*X)[3 * i + 2] = u(rng);     // noise feature
      (*y)[i] = 300.0f + 200.0f * std::sin(a) * b;
    }
  };
  std::vector<float> X, y, X_test, y_test;
  make(n, 3, &X, &y);
  make(n_test, 4, &X_test, &y_test);
  auto json = TrainMlp(X, n, 3, y, Task::kRegression, SmallOptions());
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  auto model = Compile(*json, Task::kRegression);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Describe(), "mlp: 3-16-16-1, relu");
  const std::vector<float> p = PredictAll(*model, X_test);
  double ss_res = 0, ss_tot = 0, mean = 0;
  for (float v : y_test) mean += v / static_cast<double>(n_test);
  for (size_t i = 0; i < n_test; ++i) {
    ss_res += (p[i] - y_test[i]) * (p[i] - y_test[i]);
    ss_tot += (y_test[i] - mean) * (y_test[i] - mean);
  }
  EXPECT_GT(1.0 - ss_res / ss_tot, 0.9);
}

TEST(MlpTest, PredictMatchesTheJsonAndSurvivesRoundTrips) {
  const std::vector<float> X = Points(300, 5), y = XorLabels(X);
  MlpOptions options = SmallOptions();
  options.max_epochs = 5;
  auto json = TrainMlp(X, 300, 2, y, Task::kBinary, options);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  // 600 rows: more than one of Predict's 256-row blocks, and a partial last block.
  const std::vector<float> rows = Points(600, 6);
  auto model = Compile(*json, Task::kBinary);
  ASSERT_NE(model, nullptr);
  const std::vector<float> p = PredictAll(*model, rows);
  const std::vector<double> want = Reference(*json, rows, Task::kBinary);
  ASSERT_EQ(p.size(), want.size());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], want[i], 1e-5) << "row " << i;
  // Re-serialised (pretty-printed, through double) the JSON gives identical predictions.
  const std::string again = nlohmann::json::parse(*json).dump(2);
  auto model2 = CompileMlpModel(again, Task::kBinary);
  ASSERT_TRUE(model2.ok()) << model2.status().ToString();
  EXPECT_EQ(PredictAll(**model2, rows), p);
  // Predicting row by row gives the batch's outputs up to float rounding (Eigen sums a
  // one-row product in another order than a blocked matrix product).
  for (size_t i = 0; i < 600; i += 97) {
    float one = 0;
    ASSERT_TRUE(model->Predict(std::span<const float>(rows).subspan(2 * i, 2), 1,
                               std::span<float>(&one, 1))
                    .ok());
    EXPECT_NEAR(one, p[i], 1e-6) << "row " << i;
  }
}

TEST(MlpTest, DeterministicForASeed) {
  const std::vector<float> X = Points(200, 7), y = XorLabels(X);
  MlpOptions options = SmallOptions(42);
  options.max_epochs = 5;
  auto a = TrainMlp(X, 200, 2, y, Task::kBinary, options);
  auto b = TrainMlp(X, 200, 2, y, Task::kBinary, options);
  options.seed = 43;
  auto c = TrainMlp(X, 200, 2, y, Task::kBinary, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
}

TEST(MlpTest, EarlyStopWhenTheLossStopsImproving) {
  // A constant label is learnt at once; then no epoch improves by tol and training stops
  // after patience + 1 epochs without improvement.
  const std::vector<float> X = Points(100, 8);
  const std::vector<float> y(100, 5.0f);
  int epochs = 0;
  MlpOptions options = SmallOptions();
  options.max_epochs = 1000;
  options.on_epoch = [&](int epoch, double) { epochs = epoch; };
  auto json = TrainMlp(X, 100, 2, y, Task::kRegression, options);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_LT(epochs, 100);
  auto model = Compile(*json, Task::kRegression);
  ASSERT_NE(model, nullptr);
  for (float v : PredictAll(*model, Points(10, 9))) EXPECT_NEAR(v, 5.0f, 0.1f);
}

TEST(MlpTest, MissingInputsAreTheTrainingMean) {
  // A hand-built network: z = (x - mean) / scale, one hidden ReLU unit h = max(z0 + z1, 0),
  // output h + 0.5 (regression).
  const std::string json = R"({"apxserve_mlp": {"version": 1, "task": "regression",
      "input_mean": [10, -2], "input_scale": [2, 0.5],
      "layers": [{"rows": 2, "cols": 1, "weights": [1, 1], "bias": [0]},
                 {"rows": 1, "cols": 1, "weights": [1], "bias": [0.5]}]}})";
  auto model = Compile(json, Task::kRegression);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Describe(), "mlp: 2-1-1, relu");
  const std::vector<float> rows = {14, -1,     // z = (2, 2): 4.5
                                   kNan, -1,   // z = (0, 2): 2.5
                                   14, kNan,   // z = (2, 0): 2.5
                                   kNan, kNan, // z = 0: 0.5
                                   0, -4};     // z = (-5, -4): ReLU gives 0.5
  EXPECT_EQ(PredictAll(*model, rows), (std::vector<float>{4.5f, 2.5f, 2.5f, 0.5f, 0.5f}));

  // Training accepts missing values and predicts finite outputs for them.
  std::vector<float> X = Points(200, 10), y = XorLabels(X);
  for (size_t i = 0; i < X.size(); i += 7) X[i] = kNan;
  MlpOptions options = SmallOptions();
  options.max_epochs = 3;
  auto trained = TrainMlp(X, 200, 2, y, Task::kBinary, options);
  ASSERT_TRUE(trained.ok()) << trained.status().ToString();
  auto m = Compile(*trained, Task::kBinary);
  ASSERT_NE(m, nullptr);
  for (float v : PredictAll(*m, {kNan, kNan, kNan, 0.3f})) EXPECT_TRUE(std::isfinite(v));
}

TEST(MlpTest, TrainingErrors) {
  const std::vector<float> X = Points(10, 11);
  std::vector<float> y(10, 1.0f);
  const MlpOptions o = SmallOptions();
  auto code = [](const Result<std::string>& r) { return r.status().code(); };
  EXPECT_EQ(code(TrainMlp(X, 0, 2, y, Task::kBinary, o)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TrainMlp(X, 10, 0, y, Task::kBinary, o)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TrainMlp(X, 11, 2, y, Task::kBinary, o)), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(TrainMlp(X, 10, 2, std::span<const float>(y).first(5), Task::kBinary, o)),
            StatusCode::kInvalidArgument);
  MlpOptions bad = o;
  bad.hidden = {16, 0};
  EXPECT_EQ(code(TrainMlp(X, 10, 2, y, Task::kBinary, bad)), StatusCode::kInvalidArgument);
  bad = o;
  bad.learning_rate = 0;
  EXPECT_EQ(code(TrainMlp(X, 10, 2, y, Task::kBinary, bad)), StatusCode::kInvalidArgument);
  y[3] = 2.0f;
  auto not01 = TrainMlp(X, 10, 2, y, Task::kBinary, o);
  ASSERT_FALSE(not01.ok());
  EXPECT_NE(not01.status().message().find("row 3"), std::string::npos);
  y[3] = kNan;
  EXPECT_EQ(code(TrainMlp(X, 10, 2, y, Task::kRegression, o)), StatusCode::kInvalidArgument);
  y[3] = 0.0f;
  std::vector<float> X_inf = X;
  X_inf[5] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(code(TrainMlp(X_inf, 10, 2, y, Task::kRegression, o)), StatusCode::kInvalidArgument);
}

TEST(MlpTest, MalformedJsonIsDataLossNamingTheField) {
  const std::string good = R"({"apxserve_mlp": {"version": 1, "task": "binary",
      "input_mean": [0, 0], "input_scale": [1, 1],
      "layers": [{"rows": 2, "cols": 3, "weights": [1, 2, 3, 4, 5, 6], "bias": [0, 0, 0]},
                 {"rows": 3, "cols": 1, "weights": [1, 1, 1], "bias": [0]}]}})";
  ASSERT_NE(Compile(good, Task::kBinary), nullptr);
  auto expect = [&](const std::string& from, const std::string& to, const std::string& needle,
                    StatusCode want = StatusCode::kDataLoss) {
    std::string s = good;
    const size_t pos = s.find(from);
    ASSERT_NE(pos, std::string::npos) << from;
    s.replace(pos, from.size(), to);
    auto model = CompileModel(s, Task::kBinary);
    ASSERT_FALSE(model.ok()) << "expected an error mentioning " << needle;
    EXPECT_EQ(model.status().code(), want) << model.status().ToString();
    EXPECT_NE(model.status().message().find(needle), std::string::npos)
        << model.status().message() << "\n  should mention: " << needle;
  };
  expect(R"("layers": [)", R"("nolayers": [)", "apxserve_mlp.layers must be a non-empty array");
  expect("[1, 2, 3, 4, 5, 6]", "[1, 2, 3, 4, 5]", "layers[0].weights has 5 values, expected 6");
  expect(R"("rows": 3, "cols": 1)", R"("rows": 4, "cols": 1)", "layers[1].rows is 4, expected 3");
  expect(R"("bias": [0]})", R"("bias": [0, 1]})", "layers[1].bias has 2 values");
  expect(R"("rows": 3, "cols": 1, "weights": [1, 1, 1], "bias": [0]})",
         R"("rows": 3, "cols": 2, "weights": [1, 1, 1, 1, 1, 1], "bias": [0, 0]})",
         "expected 1 output");
  expect("[1, 2, 3, 4, 5, 6]", "[1, 2, 3, 4, 5, \"x\"]", "layers[0].weights[5] is not a finite");
  expect("[1, 2, 3, 4, 5, 6]", "[1, 2, 3, 4, 5, 1e300]", "layers[0].weights[5] is not a finite");
  expect(R"("input_scale": [1, 1])", R"("input_scale": [1, 0])", "input_scale[1] must be > 0");
  expect(R"("input_scale": [1, 1])", R"("input_scale": [1])", "input_scale has 1 values");
  expect(R"("version": 1)", R"("version": 2)", "version must be 1");
  expect(R"("cols": 3)", R"("cols": -3)", "layers[0].cols must be a positive integer");
  expect(R"("task": "binary")", R"("task": "regression")", "model is for task 'regression'",
         StatusCode::kInvalidArgument);
  EXPECT_EQ(CompileMlpModel(R"({"apxserve_mlp": 1})", Task::kBinary).status().code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(CompileMlpModel("{not json", Task::kBinary).status().code(), StatusCode::kDataLoss);
}

TEST(MlpTest, PredictChecksSizes) {
  auto model = Compile(R"({"apxserve_mlp": {"version": 1, "task": "regression",
      "input_mean": [0, 0], "input_scale": [1, 1],
      "layers": [{"rows": 2, "cols": 1, "weights": [1, 1], "bias": [0]}]}})",
                       Task::kRegression);
  ASSERT_NE(model, nullptr);
  std::vector<float> out(2);
  EXPECT_EQ(model->Predict(std::vector<float>(3), 2, out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(model->Predict(std::vector<float>(4), 2, std::span<float>(out).first(1)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(model->Predict({}, 0, {}).ok());
}

}  // namespace
}  // namespace apx::model
